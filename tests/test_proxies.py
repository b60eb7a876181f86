"""Zero-cost proxies: deterministic for a seed, invariant to batch order, sensible values."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
from doctests import run_doctests
from torch import nn

from neuromosaic_optuna import proxies
from neuromosaic_optuna.models import BuildContext
from neuromosaic_optuna.models.nasbench201 import EDGES
from neuromosaic_optuna.models.nasbench201_net import NASBench201Network
from neuromosaic_optuna.proxies import PROXIES, compute_proxies, score_architecture, synflow

_CELL = ["nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3",
         "skip_connect"]


def _net(seed: int, ops: list[str] = _CELL) -> nn.Module:
    torch.manual_seed(seed)
    return NASBench201Network(ops, num_classes=10, channels=8, cells_per_stage=1)


def _batch(seed: int = 7, size: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(size, 3, 16, 16, generator=generator),
            torch.randint(0, 10, (size,), generator=generator))


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    x, y = _batch()
    first = compute_proxies(_net(3), x, y)
    again = compute_proxies(_net(3), x, y)
    other = compute_proxies(_net(4), x, y)
    assert list(first) == list(PROXIES)
    assert first == again  # bit for bit
    for name in ("synflow", "jacob_cov", "naswot", "grad_norm", "snip"):
        assert math.isfinite(first[name]), name
        assert first[name] != other[name], name  # the weights matter
    assert first["params"] == other["params"] and first["flops"] == other["flops"]


def test_score_architecture_is_seeded_and_keeps_the_global_rng() -> None:
    x, y = _batch()
    ctx = BuildContext(num_classes=10, resolution=16,
                       options={"nb201_channels": 8, "nb201_cells_per_stage": 1})
    cell = dict(zip(EDGES, _CELL, strict=True))
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = score_architecture("nasbench201_net", cell, ctx, x, y, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert first == score_architecture("nasbench201_net", cell, ctx, x, y, seed=5)
    assert first["snip"] != score_architecture("nasbench201_net", cell, ctx, x, y,
                                               seed=6)["snip"]
    # The same network as built by hand under the seed.
    assert first == compute_proxies(_net(5), x, y)


def test_invariant_to_batch_order() -> None:
    x, y = _batch()
    net = _net(0)
    reference = compute_proxies(net, x, y)
    for seed in range(3):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        permuted = compute_proxies(net, x[order], y[order])
        for name in PROXIES:
            assert permuted[name] == pytest.approx(reference[name], rel=1e-5, abs=1e-6), name


def test_model_is_left_unchanged() -> None:
    x, y = _batch()
    net = _net(0).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    compute_proxies(net, x, y)
    assert not net.training
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert all(p.grad is None for p in net.parameters())


def test_values_follow_the_definitions() -> None:
    x, y = _batch()
    # synflow of a bias-free linear chain: sum |w| * grad over weights of the |w| network.
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4, bias=False),
                        nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        net[1].weight.fill_(-0.01)
        net[2].weight.fill_(0.5)
    # R = sum_out sum_hidden 0.5 * 0.01 * 768; each layer's saliency sum equals R.
    expected = 2 * (2 * 4 * 0.5 * 0.01 * 768)
    assert synflow(net, x) == pytest.approx(expected, rel=1e-6)  # float32 0.01
    # A cell whose output ignores its input: jacob_cov has nothing to measure (nan), and no
    # synaptic flow reaches the head (synflow 0) although the cell holds three convolutions.
    cut = ["nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "none", "none", "none"]
    scores = compute_proxies(_net(0, cut), x, y)
    assert math.isnan(scores["jacob_cov"])
    assert scores["synflow"] == 0.0 and scores["params"] > 50_000
    # More distinct inputs -> larger NASWOT kernel determinant.
    naswot_small = compute_proxies(_net(0), x[:6], y[:6], names=["naswot"])["naswot"]
    assert compute_proxies(_net(0), x, y, names=["naswot"])["naswot"] > naswot_small


def test_rank_correlations_of_a_perfect_and_a_reversed_proxy() -> None:
    truth = np.arange(10.0)
    result = proxies.proxy_rank_correlations({"up": truth, "down": -truth}, truth)
    assert result["up"] == pytest.approx((1.0, 1.0))
    assert result["down"] == pytest.approx((-1.0, -1.0))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"names": ["zen"]}, "names: unknown proxy 'zen'"),
    ({"inputs": torch.zeros(1, 3, 16, 16)}, "B >= 2"),
    ({"targets": torch.zeros(3, dtype=torch.long)}, "targets must have shape"),
])
def test_bad_input_names_the_field(kwargs: dict, message: str) -> None:
    x, y = _batch()
    arguments = {"model": _net(0), "inputs": x, "targets": y, **kwargs}
    with pytest.raises(ValueError, match=message):
        compute_proxies(**arguments)


def test_docstring_examples() -> None:
    result = run_doctests(proxies, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_shared_pass_equals_each_proxy_alone() -> None:
    x, y = _batch()
    net = _net(2)
    together = compute_proxies(net, x, y)
    for name in ("synflow", "jacob_cov", "naswot", "grad_norm", "snip"):
        assert getattr(proxies, name)(net, x, y) == pytest.approx(together[name], rel=1e-9)
