"""--precision: which autocast dtype each setting gives where, and the error where bf16 cannot run."""

import pytest
import torch

from aam.errors import UserError
from aam.runtime import device as device_module
from aam.runtime.device import compute_dtype

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU


@pytest.mark.parametrize("device,precision,training,expected", [
    (CUDA, "auto", True, torch.bfloat16),
    (CUDA, "auto", False, torch.bfloat16),
    (CUDA, "bf16", True, torch.bfloat16),
    (CUDA, "fp32", True, None),
    (CUDA, "fp32", False, None),
    (CPU, "auto", True, None),
    (CPU, "fp32", True, None),
    (CPU, "auto", False, None),
    (CPU, "bf16", False, None),  # evaluation passes stay fp32 on the CPU
])
def test_compute_dtype(device, precision, training, expected):
    assert compute_dtype(device, precision, training) is expected


def test_cpu_bf16_training_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)
    assert compute_dtype(CPU, "bf16", training=True) is torch.bfloat16


def test_cpu_bf16_training_without_native_bf16_is_a_user_error(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(UserError, match="--precision bf16: this CPU has no native bf16"):
        compute_dtype(CPU, "bf16", training=True)


def test_unknown_precision_is_a_user_error():
    with pytest.raises(UserError, match="--precision must be one of auto, fp32, bf16"):
        compute_dtype(CPU, "fp16")
