"""Tests of fluxbridge.models.network."""

from __future__ import annotations

import pytest
import torch

from fluxbridge.models.network import NEENet


def _inputs(n: int = 32, f: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, f, generator=g), torch.randint(0, 17, (n,), generator=g)


def test_output_shape_and_dtype():
    torch.manual_seed(0)
    net = NEENet(5, width=16, depth=2, dropout=0.1)
    x, c = _inputs()
    out = net(x, c)
    assert out.shape == (32,)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_target_scaling_makes_outputs_physical():
    torch.manual_seed(0)
    net = NEENet(5, width=16, depth=2).eval()
    x, c = _inputs()
    with torch.no_grad():
        raw = net(x, c)
        net.set_target_scaling(-1.5, 3.0)
        scaled = net(x, c)
    torch.testing.assert_close(scaled, -1.5 + 3.0 * raw)
    assert float(net.y_mean) == -1.5 and float(net.y_scale) == 3.0
    # the scaling is part of the state, so a saved network reproduces physical outputs
    clone = NEENet(**net.arch).eval()
    clone.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(clone(x, c), scaled)
    with pytest.raises(ValueError):
        net.set_target_scaling(0.0, 0.0)


def test_vegetation_class_changes_output_and_out_of_range_is_clipped():
    torch.manual_seed(0)
    net = NEENet(3, n_classes=17, width=8, depth=1, embed_dim=4).eval()
    x = torch.zeros(2, 3)
    with torch.no_grad():
        out = net(x, torch.tensor([1, 2]))
        assert out[0] != out[1]
        torch.testing.assert_close(net(x, torch.tensor([16, 99])), net(x, torch.tensor([16, 16])))


def test_no_embedding_ignores_class_and_bad_activation():
    net = NEENet(3, embed_dim=0, width=8, depth=1).eval()
    x, _ = _inputs(4, 3)
    with torch.no_grad():
        torch.testing.assert_close(net(x, torch.zeros(4, dtype=torch.long)),
                                   net(x, torch.full((4,), 5)))
    with pytest.raises(ValueError, match="activation"):
        NEENet(3, activation="sigmoidish")
