"""Foreign, tampered and corrupt model files give one line naming the file, never torch's hint
to reload them with ``weights_only=False``."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from fluxbridge.errors import InputError
from fluxbridge.models.artifact import load_model
from fluxbridge.models.torchfile import read_torch_file


def _foreign(path):
    torch.save({"weights": np.zeros(3)}, path)  # numpy arrays: not allowed by weights_only


def _tampered(path):
    torch.save({"hook": Fraction(1, 3)}, path)


def _truncated(path):
    torch.save({"weights": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:150])


def _text(path):
    path.write_text("a model, honest")


@pytest.mark.parametrize("make", [_foreign, _tampered, _truncated, _text])
def test_unreadable_model_file_is_one_line_naming_it(tmp_path, make):
    path = tmp_path / "model.pt"
    make(path)
    with pytest.raises(InputError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message and "\x1b" not in message
    assert "weights_only" not in message and "two options" not in message
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_readable_file_is_returned(tmp_path):
    payload = {"a": torch.ones(2), "b": "text", "c": [1, 2.5]}
    torch.save(payload, tmp_path / "ok.pt")
    out = read_torch_file(tmp_path / "ok.pt", expected="anything")
    assert out["b"] == "text" and out["c"] == [1, 2.5] and torch.equal(out["a"], payload["a"])
