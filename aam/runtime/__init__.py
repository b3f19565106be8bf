"""What training and prediction share at run time: checkpoint files and the device choice.

- `Checkpoint` (checkpoint.py): what model.pt and last.pt hold, with `save(path)` / `load(path)`;
  `save_checkpoint`, `load_checkpoint`, `atomic_write`: atomic, weights-only checkpoint files.
- `resolve_device`, `compute_dtype`, `autocast` (device.py): auto/cpu/cuda, --precision and the mixed-precision
  context.
- `session`, `is_main_process`, collectives (distributed.py): data-parallel runs under torchrun.
"""
