"""NAS-Bench-201 cells as trainable networks, registered as ``nasbench201_net``.

The tabular backend ``nasbench201`` (:mod:`neuromosaic_optuna.models.nasbench201`) looks a
cell's results up; this builder makes the network NAS-Bench-201 trained for that cell, so the
same params (one op of :data:`~neuromosaic_optuna.models.nasbench201.OPS` per edge of
:data:`~neuromosaic_optuna.models.nasbench201.EDGES`) can also be built, profiled, trained
and scored by zero-cost proxies.

The macro skeleton follows NAS-Bench-201's ``TinyNetwork`` (Dong & Yang, ICLR 2020, and its
``infer`` models): a 3x3 convolution stem with ``C`` channels and batch norm; three stages of
``N`` cells with ``C``, ``2C`` and ``4C`` channels; between stages a residual reduction block
(two ReLU-Conv3x3-BN, the first with stride 2, plus a 2x2 average pool and a 1x1 convolution
on the shortcut); then batch norm, ReLU, global average pooling and a linear classifier.
Defaults ``C = 16``, ``N = 5``. Inside a cell, node ``i`` is the sum of its incoming edges'
ops applied to earlier nodes; node 3 is the output. Ops: ``none`` (zeros), ``skip_connect``
(identity), ``nor_conv_1x1`` and ``nor_conv_3x3`` (ReLU-Conv-BN), ``avg_pool_3x3`` (3x3
average pool, stride 1, padding excluded from the mean).

Every edge's op holds its parameters even when the edge cannot reach the output, as in
NAS-Bench-201, so the parameter count equals the table's ``params`` (its "model size in MB"
is parameters / 1e6 with six decimals, i.e. exact) for 10, 100 and 120 classes.

Study options (``ctx.options``): ``nb201_channels`` (``C``, 16) and ``nb201_cells_per_stage``
(``N``, 5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from neuromosaic_optuna.models._registry import (
    MAX_BLOCKS,
    ArchitectureError,
    BuildContext,
    BuiltModel,
    register_model,
)
from neuromosaic_optuna.models.nasbench201 import EDGES, OPS

__all__ = ["NASBench201Network", "build_nasbench201_net"]

_OPTIONS = ("nb201_channels", "nb201_cells_per_stage")
#: Largest stem width ``C`` accepted (the last stage has ``4C`` channels).
MAX_CHANNELS = 4096


class _ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out))


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return _Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return _ReLUConvBN(channels, channels, 1, 1)
    if name == "nor_conv_3x3":
        return _ReLUConvBN(channels, channels, 3, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ArchitectureError(f"unknown NAS-Bench-201 op {name!r}; choose one of {', '.join(OPS)}")


class _Cell(nn.Module):
    """One NAS-Bench-201 cell: a 4-node DAG with one op per edge, keeping the channels."""

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(_op(op, channels) for op in ops)
        # (to, from) of each edge, in EDGES order.
        self._pairs = [(int(e[5]), int(e[7])) for e in EDGES]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for to in (1, 2, 3):
            terms = [op(nodes[src]) for op, (dst, src) in
                     zip(self.edges, self._pairs, strict=True) if dst == to]
            node = terms[0]
            for term in terms[1:]:
                node = node + term
            nodes.append(node)
        return nodes[3]


class _ResidualReduction(nn.Module):
    """NAS-Bench-201's ``ResNetBasicblock`` with stride 2 between stages."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = _ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = _ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, stride=2),
                                        nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NASBench201Network(nn.Module):
    """NAS-Bench-201's macro skeleton around one cell genotype (see the module docstring).

    Args:
        ops: One op per edge, in :data:`~neuromosaic_optuna.models.nasbench201.EDGES` order.
        num_classes: Classifier outputs.
        channels: Stem width ``C``; stages have ``C``, ``2C``, ``4C`` channels.
        cells_per_stage: Cells per stage ``N``.
        in_channels: Input image channels.

    Example:
        >>> net = NASBench201Network(["nor_conv_3x3"] * 6, num_classes=10)
        >>> sum(p.numel() for p in net.parameters())  # the table's 1.531546 MB
        1531546
    """

    def __init__(self, ops: Sequence[str], *, num_classes: int, channels: int = 16,
                 cells_per_stage: int = 5, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        width = channels
        for stage in range(3):
            if stage:
                layers.append(_ResidualReduction(width, 2 * width))
                width *= 2
            layers.extend(_Cell(ops, width) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.global_pooling(self.lastact(self.cells(self.stem(x))))
        return self.classifier(out.flatten(1))


def _positive_int(value: Any, name: str, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ArchitectureError(f"{name} must be an integer in [1, {high}]; got {value!r}")
    return value


@register_model("nasbench201_net", params=(*EDGES, "resolution"), options=_OPTIONS)
def build_nasbench201_net(params: Mapping[str, Any], ctx: BuildContext) -> BuiltModel:
    """Build the NAS-Bench-201 network of one cell (the params of a ``nasbench201`` study).

    Args:
        params: One op of ``OPS`` for each edge of ``EDGES``; ``resolution`` is ignored.
        ctx: Classes, input resolution and channels; options ``nb201_channels`` (16) and
            ``nb201_cells_per_stage`` (5).

    Returns:
        The freshly initialised network, its input size and a summary with the cell's
        architecture string, ``C`` and ``N``.

    Raises:
        ArchitectureError: A missing or unknown edge, an unknown op, or a bad option.

    Example:
        >>> from neuromosaic_optuna.models.nasbench201 import EDGES
        >>> cell = dict.fromkeys(EDGES, "skip_connect")
        >>> built = build_nasbench201_net(cell, BuildContext(num_classes=100, resolution=32))
        >>> tuple(built.model.eval()(torch.zeros(2, 3, 32, 32)).shape)
        (2, 100)
        >>> built.summary["arch_str"].count("skip_connect")
        6
    """
    from neuromosaic_optuna.models.nasbench201 import to_arch_str

    unknown = sorted(set(params) - {*EDGES, "resolution"})
    if unknown:
        raise ArchitectureError(f"nasbench201_net has no param(s) {', '.join(unknown)}; "
                                f"it reads {', '.join(EDGES)}")
    arch_str = to_arch_str(params)  # checks every edge is present and every op is known
    channels = _positive_int(ctx.options.get("nb201_channels", 16), "nb201_channels",
                             MAX_CHANNELS)
    cells = _positive_int(ctx.options.get("nb201_cells_per_stage", 5),
                          "nb201_cells_per_stage", MAX_BLOCKS // 3)
    ops = [str(params[edge]) for edge in EDGES]
    model = NASBench201Network(ops, num_classes=ctx.num_classes, channels=channels,
                               cells_per_stage=cells, in_channels=ctx.in_channels)
    return BuiltModel(model, (ctx.in_channels, ctx.resolution, ctx.resolution),
                      {"arch_str": arch_str, "channels": channels, "cells_per_stage": cells})
