"""EfficientNet-style ConvNet of MBConv blocks, registered as ``conv_net``.

The genotype is a list of timm-style block strings, one per stage, e.g.
``ir_r2_k3_s2_e6_c24`` (inverted residual, 2 repeats, 3x3 depthwise kernel, stride 2,
expansion 6, 24 output channels). The trial's params scale that base network the way
EfficientNet does: channels are ``_make_divisible(channels * width_multiplier, 8)`` (as in
torchvision and timm), repeats are ``ceil(repeats * depth_multiplier)``, and every block gets a
squeeze-excitation layer with ``max(1, int(block_input_channels * se_ratio))`` squeeze channels.
With the default stages (EfficientNet-B0's), ``se_ratio=0.25`` and the multipliers of B0..B4,
the network has exactly the parameters of torchvision's ``efficientnet_b0`` .. ``_b4``.

Params (all optional): ``depth_multiplier`` (1.0), ``width_multiplier`` (1.0), ``se_ratio``
(0 = no squeeze-excitation), ``kernel_size`` (overrides every stage's depthwise kernel),
``expand_ratio`` (overrides the expansion of every ``ir`` stage), ``dropout`` (0.2, before the
classifier), ``stochastic_depth_prob`` (0.2, scaled linearly over the blocks as torchvision does)
and ``resolution`` (ignored: the input size is ``ctx.resolution``). Any other param raises
:class:`ArchitectureError`, so a misspelt search-space key does not go unnoticed.

Study options (``ctx.options``): ``convnet_stages`` (list of block strings; default
:data:`EFFICIENTNET_B0_STAGES`), ``convnet_stem_channels`` (32) and ``convnet_head_channels``
(default four times the last stage's scaled channels, as torchvision's EfficientNet-B*).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import torch
from torch import nn
from torchvision.models._utils import _make_divisible
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation, StochasticDepth

from neuromosaic_optuna.models._registry import (
    MAX_BLOCKS,
    ArchitectureError,
    BuildContext,
    BuiltModel,
    register_model,
)

__all__ = [
    "EFFICIENTNET_B0_STAGES",
    "BlockArgs",
    "ConvNet",
    "MBConv",
    "build_conv_net",
    "decode_block",
    "encode_block",
]

#: EfficientNet-B0's stages (Tan & Le 2019, table 1) without squeeze-excitation; the ``se_ratio``
#: param adds it to every block.
EFFICIENTNET_B0_STAGES: tuple[str, ...] = (
    "ds_r1_k3_s1_c16",
    "ir_r2_k3_s2_e6_c24",
    "ir_r2_k5_s2_e6_c40",
    "ir_r3_k3_s2_e6_c80",
    "ir_r3_k5_s1_e6_c112",
    "ir_r4_k5_s2_e6_c192",
    "ir_r1_k3_s1_e6_c320",
)

_BLOCK_TYPES = ("ds", "ir")
_OPTION = re.compile(r"^(se|r|k|s|e|c)(\d+(?:\.\d+)?)$")
_OPTIONS = ("convnet_stages", "convnet_stem_channels", "convnet_head_channels", "head_dim")
#: Largest channel count of a stage (after scaling), kernel size and expansion ratio.
MAX_CHANNELS = 16384
MAX_KERNEL = 31
MAX_EXPAND = 64
_KNOWN_PARAMS = ("depth_multiplier", "width_multiplier", "se_ratio", "kernel_size",
                 "expand_ratio", "dropout", "stochastic_depth_prob", "resolution")


@dataclass(frozen=True)
class BlockArgs:
    """One stage of MBConv blocks, decoded from a block string.

    Attributes:
        block_type: ``"ir"`` (inverted residual: expand, depthwise, project) or ``"ds"``
            (depthwise separable: no expansion).
        repeats: Blocks in the stage; only the first one has the stage's stride.
        kernel_size: Depthwise kernel size (odd).
        stride: Stride of the stage's first block (1 or 2).
        expand_ratio: Width of the depthwise conv relative to the block input.
        channels: Output channels.
        se_ratio: Squeeze-excitation ratio written in the string, ``None`` when absent.
    """

    block_type: str
    repeats: int
    kernel_size: int
    stride: int
    expand_ratio: float
    channels: int
    se_ratio: float | None = None


def decode_block(block: str) -> BlockArgs:
    """Decode a timm-style block string such as ``ir_r2_k3_s2_e6_c24_se0.25``.

    Recognised options: ``r`` repeats, ``k`` kernel size, ``s`` stride, ``e`` expansion ratio
    (default 1; ``ds`` blocks only allow 1), ``c`` output channels, ``se`` squeeze-excitation
    ratio. ``r``, ``k``, ``s`` and ``c`` are required.

    Args:
        block: The block string.

    Returns:
        The decoded stage.

    Raises:
        ArchitectureError: Unknown block type or option, a missing or out-of-range value.

    Example:
        >>> decode_block("ir_r2_k5_s2_e6_c40_se0.25")
        BlockArgs(block_type='ir', repeats=2, kernel_size=5, stride=2, expand_ratio=6.0, channels=40, se_ratio=0.25)
    """  # noqa: E501
    if not isinstance(block, str):
        raise ArchitectureError(f"block string must be a str, got {block!r}")
    block_type, *tokens = block.split("_")
    if block_type not in _BLOCK_TYPES:
        raise ArchitectureError(f"block {block!r}: unknown block type {block_type!r}; "
                                f"use one of {', '.join(_BLOCK_TYPES)}")
    options: dict[str, str] = {}
    for token in tokens:
        match = _OPTION.match(token)
        if match is None:
            raise ArchitectureError(f"block {block!r}: cannot read option {token!r}; options are "
                                    "r<repeats>, k<kernel>, s<stride>, e<expand>, c<channels>, "
                                    "se<ratio>")
        key, value = match.groups()
        if key in options:
            raise ArchitectureError(f"block {block!r}: option {key!r} is given twice")
        options[key] = value
    missing = [key for key in ("r", "k", "s", "c") if key not in options]
    if missing:
        raise ArchitectureError(f"block {block!r}: missing option(s) {', '.join(missing)}")
    try:
        args = BlockArgs(
            block_type=block_type,
            repeats=int(options["r"]),
            kernel_size=int(options["k"]),
            stride=int(options["s"]),
            expand_ratio=float(options.get("e", "1")),
            channels=int(options["c"]),
            se_ratio=float(options["se"]) if "se" in options else None,
        )
    except ValueError:
        raise ArchitectureError(f"block {block!r}: r, k, s and c must be integers") from None
    _check_block(args, block)
    return args


def encode_block(args: BlockArgs) -> str:
    """Write a stage back as a block string (the inverse of :func:`decode_block`).

    Example:
        >>> encode_block(decode_block("ir_r2_k3_s2_e6_c24_se0.25"))
        'ir_r2_k3_s2_e6_c24_se0.25'
    """
    text = f"{args.block_type}_r{args.repeats}_k{args.kernel_size}_s{args.stride}"
    if args.block_type == "ir":
        text += f"_e{args.expand_ratio:g}"
    text += f"_c{args.channels}"
    if args.se_ratio:
        text += f"_se{args.se_ratio:g}"
    return text


def _check_block(args: BlockArgs, where: str) -> None:
    problems = []
    if not 1 <= args.repeats <= MAX_BLOCKS:
        problems.append(f"repeats must be in 1..{MAX_BLOCKS}, got {args.repeats}")
    if args.kernel_size < 1 or args.kernel_size % 2 == 0 or args.kernel_size > MAX_KERNEL:
        problems.append(f"kernel size must be odd, in 1..{MAX_KERNEL}, got {args.kernel_size}")
    if args.stride not in (1, 2):
        problems.append(f"stride must be 1 or 2, got {args.stride}")
    if not 0 < args.expand_ratio <= MAX_EXPAND:
        problems.append(f"expand ratio must be > 0 and <= {MAX_EXPAND}, got "
                        f"{args.expand_ratio:g}")
    if args.block_type == "ds" and args.expand_ratio != 1:
        problems.append("a ds (depthwise separable) block has no expansion; use ir")
    if not 1 <= args.channels <= MAX_CHANNELS:
        problems.append(f"channels must be in 1..{MAX_CHANNELS}, got {args.channels}")
    if args.se_ratio is not None and not 0 <= args.se_ratio <= 1:
        problems.append(f"se ratio must be in [0, 1], got {args.se_ratio:g}")
    if problems:
        raise ArchitectureError(f"block {where!r}: " + "; ".join(problems))


class MBConv(nn.Module):
    """Mobile inverted bottleneck (EfficientNet's block) with a configurable SE ratio.

    Same layers and order as torchvision's ``MBConv`` (1x1 expand, depthwise, squeeze-excitation,
    1x1 project, stochastic depth on the residual), except that the squeeze width is
    ``max(1, int(in_channels * se_ratio))`` and ``se_ratio=0`` leaves the SE layer out.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Depthwise kernel size.
        stride: Depthwise stride.
        expand_ratio: Expanded width relative to ``in_channels`` (rounded to a multiple of 8).
        se_ratio: Squeeze-excitation ratio relative to ``in_channels``; 0 for none.
        stochastic_depth_prob: Probability of dropping the residual branch while training.
        norm_layer: Normalisation layer factory.

    Example:
        >>> block = MBConv(16, 24, kernel_size=3, stride=2, expand_ratio=6, se_ratio=0.25,
        ...                stochastic_depth_prob=0.0)
        >>> tuple(block(torch.zeros(1, 16, 8, 8)).shape)
        (1, 24, 4, 4)
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int,
                 expand_ratio: float, se_ratio: float, stochastic_depth_prob: float,
                 norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and in_channels == out_channels
        expanded = (in_channels if expand_ratio == 1
                    else _make_divisible(in_channels * expand_ratio, 8))
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(Conv2dNormActivation(in_channels, expanded, kernel_size=1,
                                               norm_layer=norm_layer, activation_layer=nn.SiLU))
        layers.append(Conv2dNormActivation(expanded, expanded, kernel_size=kernel_size,
                                           stride=stride, groups=expanded, norm_layer=norm_layer,
                                           activation_layer=nn.SiLU))
        if se_ratio > 0:
            squeeze = max(1, int(in_channels * se_ratio))
            layers.append(SqueezeExcitation(expanded, squeeze,
                                            activation=partial(nn.SiLU, inplace=True)))
        layers.append(Conv2dNormActivation(expanded, out_channels, kernel_size=1,
                                           norm_layer=norm_layer, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out


class ConvNet(nn.Module):
    """Stem, stages of :class:`MBConv` blocks, 1x1 head conv, pooling and a linear classifier.

    The layout (``features``, ``avgpool``, ``classifier``) and the initialisation follow
    torchvision's ``EfficientNet``.

    Args:
        stages: Already scaled stages; each block's SE ratio is ``stage.se_ratio or 0``.
        num_classes: Classifier outputs.
        in_channels: Input image channels.
        stem_channels: Output channels of the 3x3 stride-2 stem.
        head_channels: Output channels of the 1x1 head conv.
        dropout: Dropout before the classifier.
        stochastic_depth_prob: Largest stochastic-depth probability (reached by the last block).

    Example:
        >>> net = ConvNet([decode_block("ds_r1_k3_s2_c8")], num_classes=10, in_channels=3,
        ...               stem_channels=8, head_channels=16)
        >>> tuple(net(torch.zeros(2, 3, 16, 16)).shape)
        (2, 10)
    """

    def __init__(self, stages: Sequence[BlockArgs], *, num_classes: int, in_channels: int,
                 stem_channels: int, head_channels: int, dropout: float = 0.2,
                 stochastic_depth_prob: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            Conv2dNormActivation(in_channels, stem_channels, kernel_size=3, stride=2,
                                 norm_layer=nn.BatchNorm2d, activation_layer=nn.SiLU)]
        total_blocks = sum(stage.repeats for stage in stages)
        block_id = 0
        channels = stem_channels
        for stage in stages:
            blocks: list[nn.Module] = []
            for index in range(stage.repeats):
                blocks.append(MBConv(
                    channels, stage.channels, kernel_size=stage.kernel_size,
                    stride=stage.stride if index == 0 else 1, expand_ratio=stage.expand_ratio,
                    se_ratio=stage.se_ratio or 0.0,
                    stochastic_depth_prob=stochastic_depth_prob * block_id / total_blocks))
                channels = stage.channels
                block_id += 1
            layers.append(nn.Sequential(*blocks))
        layers.append(Conv2dNormActivation(channels, head_channels, kernel_size=1,
                                           norm_layer=nn.BatchNorm2d, activation_layer=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True),
                                        nn.Linear(head_channels, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                init_range = 1.0 / math.sqrt(module.out_features)
                nn.init.uniform_(module.weight, -init_range, init_range)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _number(params: Mapping[str, Any], name: str, default: float, *, low: float,
            low_inclusive: bool, high: float | None = None) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ArchitectureError(f"{name} must be a number, got {value!r}")
    too_low = value < low if low_inclusive else value <= low
    if too_low or (high is not None and value > high):
        bounds = f"{'>=' if low_inclusive else '>'} {low:g}"
        if high is not None:
            bounds += f" and <= {high:g}"
        raise ArchitectureError(f"{name} must be {bounds}, got {value:g}")
    return float(value)


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()):
        raise ArchitectureError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _base_stages(options: Mapping[str, Any]) -> list[BlockArgs]:
    stages = options.get("convnet_stages") or EFFICIENTNET_B0_STAGES
    if isinstance(stages, str):
        stages = [stages]
    return [decode_block(stage) for stage in stages]


@register_model("conv_net", params=_KNOWN_PARAMS, options=_OPTIONS)
def build_conv_net(params: Mapping[str, Any], ctx: BuildContext) -> BuiltModel:
    """Build an EfficientNet-style ConvNet scaled by the trial's params.

    Args:
        params: ``depth_multiplier``, ``width_multiplier``, ``se_ratio`` and the optional
            overrides listed in the module docstring; ``resolution`` is ignored.
        ctx: Classes, input resolution and channels, study options (``convnet_stages``,
            ``convnet_stem_channels``, ``convnet_head_channels``).

    Returns:
        The freshly initialised model, its input size and a summary with the stage widths,
        depths and block strings after scaling.

    Raises:
        ArchitectureError: An unknown param, a value out of range, or an unreadable stage.

    Example:
        >>> ctx = BuildContext(num_classes=10, resolution=32)
        >>> built = build_conv_net({"depth_multiplier": 0.5, "width_multiplier": 0.5,
        ...                         "se_ratio": 0.25}, ctx)
        >>> built.summary["stage_depths"], built.summary["stage_channels"]
        ([1, 1, 1, 2, 2, 2, 1], [8, 16, 24, 40, 56, 96, 160])
        >>> tuple(built.model.eval()(torch.zeros(1, 3, 32, 32)).shape)
        (1, 10)
    """
    unknown = sorted(set(params) - set(_KNOWN_PARAMS))
    if unknown:
        raise ArchitectureError(f"conv_net has no param(s) {', '.join(map(repr, unknown))}; "
                                f"known: {', '.join(_KNOWN_PARAMS)}")
    depth = _number(params, "depth_multiplier", 1.0, low=0, low_inclusive=False)
    width = _number(params, "width_multiplier", 1.0, low=0, low_inclusive=False)
    dropout = _number(params, "dropout", 0.2, low=0, low_inclusive=True, high=1)
    sd_prob = _number(params, "stochastic_depth_prob", 0.2, low=0, low_inclusive=True, high=1)
    se_param = (None if params.get("se_ratio") is None
                else _number(params, "se_ratio", 0.0, low=0, low_inclusive=True, high=1))
    kernel = (None if params.get("kernel_size") is None
              else _integer(params["kernel_size"], "kernel_size"))
    expand = (None if params.get("expand_ratio") is None
              else _number(params, "expand_ratio", 1.0, low=0, low_inclusive=False))

    stages = []
    for base in _base_stages(ctx.options):
        stage = replace(
            base,
            repeats=int(math.ceil(base.repeats * depth)),
            channels=_make_divisible(base.channels * width, 8),
            kernel_size=base.kernel_size if kernel is None else kernel,
            expand_ratio=(expand if expand is not None and base.block_type == "ir"
                          else base.expand_ratio),
            se_ratio=base.se_ratio if se_param is None else se_param,
        )
        _check_block(stage, encode_block(stage))
        stages.append(stage)
    total = sum(stage.repeats for stage in stages)
    if total > MAX_BLOCKS:
        raise ArchitectureError(f"{total} blocks (depth_multiplier {depth:g}), more than "
                                f"{MAX_BLOCKS}")
    stem = _make_divisible(
        _integer(ctx.options.get("convnet_stem_channels", 32), "convnet_stem_channels") * width, 8)
    head_option = ctx.options.get("convnet_head_channels")
    for channels, what in ((stem, "convnet_stem_channels"), (
            0 if head_option is None else _integer(head_option, "convnet_head_channels") * width,
            "convnet_head_channels")):
        if not 0 <= channels <= 4 * MAX_CHANNELS:
            raise ArchitectureError(f"{what} scaled to {channels:g} channels, more than "
                                    f"{4 * MAX_CHANNELS}; lower it or width_multiplier")
    head_option = ctx.options.get("convnet_head_channels")
    head = (4 * stages[-1].channels if head_option is None
            else _make_divisible(_integer(head_option, "convnet_head_channels") * width, 8))

    model = ConvNet(stages, num_classes=ctx.num_classes, in_channels=ctx.in_channels,
                    stem_channels=stem, head_channels=head, dropout=dropout,
                    stochastic_depth_prob=sd_prob)
    se_ratios = sorted({stage.se_ratio or 0.0 for stage in stages})
    summary: dict[str, Any] = {
        "family": "efficientnet",
        "depth_multiplier": depth,
        "width_multiplier": width,
        "se_ratio": se_ratios[0] if len(se_ratios) == 1 else se_ratios,
        "stem_channels": stem,
        "stage_channels": [stage.channels for stage in stages],
        "stage_depths": [stage.repeats for stage in stages],
        "head_channels": head,
        "total_blocks": sum(stage.repeats for stage in stages),
        "stages": [encode_block(stage) for stage in stages],
    }
    return BuiltModel(model, (ctx.in_channels, ctx.resolution, ctx.resolution), summary)
