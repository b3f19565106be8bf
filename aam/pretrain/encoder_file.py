"""`encoder.pt`: the encoders `aam pretrain` trained, with the model settings they need, and how a
regression run starts from them (`aam train --pretrained-encoder`).

An encoder fixes the model's dimensions, its abundance input and the nucleotides per ASV (`max_bp`); a
run that starts from it takes them from the file, and a flag that sets one of them otherwise is an error.
An encoder pretrained with ASV identity vectors (`--asv-identity`) brings its vocabulary (the corpus's
frequent ASVs) and their vectors; without them, a run may still learn a vocabulary of its own study.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from aam.config import ModelConfig, RunConfig
from aam.errors import UserError
from aam.runtime.checkpoint import load_checkpoint, save_checkpoint

ENCODER_FILE = "encoder.pt"
BUILTIN = "builtin"  # --pretrained-encoder builtin: the encoder shipped in this package (docs/pretraining.md)
KIND = "aam-encoder"
IDENTITY = "asv_encoder.identity."
# ModelConfig fields an encoder fixes, with the flag that sets each
FIXED = {"embedding_dim": "--embedding-dim", "attention_heads": "--attention-heads", "asv_layers": "--asv-layers",
         "sample_layers": "--sample-layers", "feedforward_multiplier": None, "abundance": "--abundance",
         "max_bp": "--max-bp"}


def encoder_path(given: str) -> str:
    """The absolute path of a --pretrained-encoder value (`builtin`: the file shipped in the package)."""
    if given == BUILTIN:
        return str(Path(__file__).resolve().parent / "builtin" / ENCODER_FILE)
    return str(Path(given).resolve())


def save_encoder(path: Path, model: ModelConfig, state: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
    settings = {name: getattr(model, name) for name in (*FIXED, "asv_identity", "asv_vocabulary")}
    save_checkpoint(path, {"kind": KIND, "model": settings, "encoder_state": state, **extra})


def read_encoder(path: str | Path) -> dict[str, Any]:
    """The encoder file's payload; UserError naming the file when it is not one."""
    payload = load_checkpoint(path)
    if payload.get("kind") != KIND:
        raise UserError(f"--pretrained-encoder {path} is not an encoder written by aam pretrain (a model "
                        f"checkpoint? use the {ENCODER_FILE} of an aam pretrain output folder)")
    return payload


def apply_encoder_config(config: RunConfig, given: dict[str, Any]) -> RunConfig:
    """`config` with the model settings of its --pretrained-encoder. `given`: {field: value} of the model and
    data flags the user set; one that contradicts the encoder is an error naming the flag."""
    path = config.train.pretrained_encoder
    if path is None:
        return config
    settings = read_encoder(path)["model"]
    for name, flag in FIXED.items():
        if flag and name in given and given[name] != settings[name]:
            raise UserError(f"{flag} {given[name]} contradicts the pretrained encoder {path} ({flag} "
                            f"{settings[name]}); leave {flag} out, the encoder sets it")
    # ASV identity vectors: on when the encoder has them, unless --asv-identity says otherwise for the study
    identity = {"asv_identity": given.get("asv_identity", settings.get("asv_identity", 0))}
    fixed = {k: v for k, v in settings.items() if k in FIXED and k != "max_bp"}
    model = dataclasses.replace(config.model, **fixed, **identity)
    data = dataclasses.replace(config.data, max_bp=settings["max_bp"])
    return dataclasses.replace(config, model=model, data=data)


def encoder_vocabulary(path: str | Path) -> torch.Tensor | None:
    """The sorted ASV hashes of the encoder's identity vectors, None when it has none."""
    return read_encoder(path)["encoder_state"].get(IDENTITY + "hashes")


def load_encoder_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Copy the encoder file's weights into `model`'s two encoders (shapes must match the file's settings).
    The identity vectors of the encoder's ASVs go to the same ASVs of the model's vocabulary (which holds the
    encoder's, `aam.training.build`), and its row for other ASVs to the model's."""
    state = dict(read_encoder(path)["encoder_state"])
    identity = {k[len(IDENTITY):]: state.pop(k) for k in list(state) if k.startswith(IDENTITY)}
    own = {k for k in model.state_dict() if k.startswith(("asv_encoder.", "sample_encoder."))
           and not k.startswith(IDENTITY)}
    if identity and model.asv_encoder.identity is not None:
        model.asv_encoder.identity.take_vectors(identity["hashes"], identity["embedding.weight"])
    if set(state) != own:
        raise UserError(f"--pretrained-encoder {path}: its weights do not fit this model (run with the settings "
                        "the encoder was pretrained with)")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise UserError(f"--pretrained-encoder {path}: its weights do not fit this model "
                        f"({str(exc).splitlines()[-1].strip()})") from None
