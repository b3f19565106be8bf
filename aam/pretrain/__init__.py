"""Self-supervised pretraining of the ASV and sample encoders on unlabeled tables (`aam pretrain`), and the
encoder file that `aam train --pretrained-encoder` starts from.

Public API: `PretrainConfig` and its parts, `read_encoder`, `apply_encoder_config`, `load_encoder_weights`;
`aam.pretrain.run.pretrain(config)` runs a pretraining (imported from there: it needs `aam.training`, which
imports this package).
"""

from aam.pretrain.config import CorpusConfig, ObjectiveConfig, PretrainConfig
from aam.pretrain.encoder_file import apply_encoder_config, load_encoder_weights, read_encoder

__all__ = ["CorpusConfig", "ObjectiveConfig", "PretrainConfig", "apply_encoder_config", "load_encoder_weights",
           "read_encoder"]
