"""What training and prediction share at run time: checkpoint files and the device choice.

- `save_checkpoint`, `load_checkpoint`, `atomic_write` (checkpoint.py): atomic, weights-only checkpoints.
- `resolve_device`, `compute_dtype`, `autocast` (device.py): auto/cpu/cuda, --precision and the mixed-precision
  context.
- `session`, `is_main_process`, collectives (distributed.py): data-parallel runs under torchrun.
"""
