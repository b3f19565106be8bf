"""AAM data layer: readers, tokenizer, dataset and batching, simulator.

Public API (each module documents its part):

- `Batch` (batch.py): the tensors of one mini-batch; the contract with the model.
"""

from aam.data.batch import Batch

__all__ = ["Batch"]
