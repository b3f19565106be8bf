"""AAM data layer: readers, tokenizer, dataset and batching, simulator.

Public API (each module documents its part):

- `Batch` (batch.py): the tensors of one mini-batch; the contract with the model.
- `load_study(table, sequences=None, metadata=None, target_columns=(), categorical_columns=(),
  group_column=None, require_targets=True) -> Study` (study.py): read, check and join a study.
- Readers: `read_table` (BIOM HDF5/JSON, .qza) -> FeatureTable, `read_sequences` (FASTA, .qza)
  -> {id: seq}, `read_metadata` (QIIME 2 TSV) -> Metadata.
- Tokenizer (tokenizer.py): `tokenize(sequences, max_bp, start_token=False)` -> uint8 [n, L];
  ids PAD=0, A/C/G/T=1..4, other IUPAC=5, START=6, VOCAB_SIZE=7.
- `CategoryEncoder`, `TargetScaler` (encoders.py): fitted on training samples, `to_dict`/`from_dict`.
- `decide_split(study, test_size, seed, group_column=None, given=None, within=None) -> (train_idx, val_idx)`:
  the one place a split is decided (seeded, saved sample IDs, or inside a cross-validation fold), from
  `split_samples`, `positions_of` and `inner_split`; `write_split(dir, study, train_idx, val_idx)`,
  `read_sample_list` (split.py).
- `load_training_study(DataConfig)`, `prepare_data(study, split, DataConfig, seed) -> PreparedData` (datasets
  and transforms of a loaded study), `load_prepared(DataConfig, seed)` (both for one run) (prepared.py).
- `AAMDataset(study, indices, *, max_bp, token_limit, asv_sampling, train, encoders, start_token, seed,
  rarefy, asv_dropout)`, `collate`, `make_loader(dataset, batch_size, shuffle, seed, num_workers=0)` (dataset.py).
"""

from aam.data.batch import Batch
from aam.data.dataset import AAMDataset, SampleItem, collate, make_loader
from aam.data.encoders import CategoryEncoder, TargetScaler
from aam.data.fasta import read_sequences
from aam.data.metadata import Metadata, read_metadata
from aam.data.split import decide_split, positions_of, read_sample_list, split_samples, write_split
from aam.data.study import Study, load_study
from aam.data.table import FeatureTable, read_table
from aam.data.tokenizer import PAD, START, VOCAB_SIZE, tokenize

__all__ = [
    "AAMDataset", "Batch", "CategoryEncoder", "FeatureTable", "Metadata", "PAD", "START", "SampleItem", "Study",
    "TargetScaler", "VOCAB_SIZE", "collate", "decide_split", "load_study", "make_loader", "positions_of", "read_metadata",
    "read_sample_list", "read_sequences", "read_table", "split_samples", "tokenize", "write_split",
]
