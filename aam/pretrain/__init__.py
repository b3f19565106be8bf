"""Self-supervised pretraining of the ASV and sample encoders on unlabeled tables (`aam pretrain`), and the
encoder file that `aam train --pretrained-encoder` starts from.

Public API: `PretrainConfig` and its parts, `pretrain(config)`, `read_encoder`, `apply_encoder_config`,
`load_encoder_weights`.
"""

from aam.pretrain.config import CorpusConfig, ObjectiveConfig, PretrainConfig
from aam.pretrain.encoder_file import apply_encoder_config, load_encoder_weights, read_encoder
from aam.pretrain.run import pretrain

__all__ = ["CorpusConfig", "ObjectiveConfig", "PretrainConfig", "apply_encoder_config", "load_encoder_weights",
           "pretrain", "read_encoder"]
