"""Vision Transformer built on torchvision's ``VisionTransformer``, registered as
``vision_transformer``.

Params: ``num_layers`` (12), ``num_heads`` (12), ``mlp_ratio`` (4.0), ``patch_size`` (16),
``dropout`` (0.0), ``attention_dropout`` (0.0) and ``resolution`` (ignored: the input size is
``ctx.resolution``); defaults are ViT-B/16's. The width is ``num_heads * head_dim`` with
``head_dim = ctx.options.get("head_dim", 64)``, so every head keeps its size while the search
varies the head count, and the MLP width is ``round(mlp_ratio * hidden_dim)``. With head_dim 64,
12 heads, 12 layers, mlp_ratio 4 at 224 pixels the model has exactly the parameters of
torchvision's ``vit_b_16`` (patch 16) and ``vit_b_32`` (patch 32). Any other param raises
:class:`ArchitectureError`, as does a patch size that does not divide the input resolution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import nn
from torchvision.models import VisionTransformer

from neuromosaic_optuna.models._registry import (
    MAX_BLOCKS,
    ArchitectureError,
    BuildContext,
    BuiltModel,
    register_model,
)

__all__ = ["build_vision_transformer"]

_KNOWN_PARAMS = ("num_layers", "num_heads", "mlp_ratio", "patch_size", "dropout",
                 "attention_dropout", "resolution")


def _integer(value: Any, name: str, *, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()):
        raise ArchitectureError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ArchitectureError(f"{name} must be >= {low}, got {int(value)}")
    return int(value)


def _fraction(params: Mapping[str, Any], name: str) -> float:
    value = params.get(name, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ArchitectureError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


@register_model("vision_transformer", params=_KNOWN_PARAMS, options=("head_dim", "embed_dim"))
def build_vision_transformer(params: Mapping[str, Any], ctx: BuildContext) -> BuiltModel:
    """Build a Vision Transformer for ``ctx.resolution``-pixel square images.

    The patch size is checked before anything is allocated, so an impossible combination
    costs nothing.

    Args:
        params: ``num_layers``, ``num_heads``, ``mlp_ratio``, ``patch_size`` and optionally
            ``dropout`` and ``attention_dropout``; ``resolution`` is ignored.
        ctx: Classes, input resolution and channels; ``ctx.options["head_dim"]`` (default 64),
            or ``ctx.options["embed_dim"]``: a fixed width split into ``num_heads`` heads
            (``head_dim = embed_dim / num_heads``), so heads can be varied at a fixed width.

    Returns:
        The freshly initialised model, its input size and a summary (layers, heads, head_dim,
        hidden_dim, mlp_dim, patch_size, image_size, tokens, seq_length).

    Raises:
        ArchitectureError: An unknown param, a value out of range, or a patch size that does
            not divide the resolution.

    Example:
        >>> import torch
        >>> ctx = BuildContext(num_classes=10, resolution=32, options={"head_dim": 8})
        >>> built = build_vision_transformer(
        ...     {"num_layers": 2, "num_heads": 4, "mlp_ratio": 2.0, "patch_size": 8}, ctx)
        >>> built.summary["hidden_dim"], built.summary["mlp_dim"], built.summary["tokens"]
        (32, 64, 16)
        >>> tuple(built.model(torch.zeros(1, 3, 32, 32)).shape)
        (1, 10)
        >>> fixed = BuildContext(10, 32, options={"embed_dim": 48})
        >>> [build_vision_transformer({"num_layers": 1, "num_heads": h, "patch_size": 8},
        ...                           fixed).summary["hidden_dim"] for h in (2, 3, 4)]
        [48, 48, 48]
        >>> build_vision_transformer({"patch_size": 32}, BuildContext(10, 48))
        Traceback (most recent call last):
        ...
        neuromosaic_optuna.exceptions.ArchitectureError: patch_size 32 does not divide the input resolution 48
    """  # noqa: E501
    unknown = sorted(set(params) - set(_KNOWN_PARAMS))
    if unknown:
        raise ArchitectureError(
            f"vision_transformer has no param(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(_KNOWN_PARAMS)}")
    num_layers = _integer(params.get("num_layers", 12), "num_layers")
    num_heads = _integer(params.get("num_heads", 12), "num_heads")
    patch_size = _integer(params.get("patch_size", 16), "patch_size")
    head_dim = _integer(ctx.options.get("head_dim", 64), "head_dim")
    if ctx.options.get("embed_dim") is not None:
        embed_dim = _integer(ctx.options["embed_dim"], "embed_dim")
        if embed_dim % num_heads:
            raise ArchitectureError(f"embed_dim {embed_dim} is not divisible by num_heads "
                                    f"{num_heads}; choose heads that divide it")
        head_dim = embed_dim // num_heads
    if num_layers > MAX_BLOCKS:
        raise ArchitectureError(f"num_layers must be <= {MAX_BLOCKS}, got {num_layers}")
    if num_heads * head_dim > 65536:
        raise ArchitectureError(f"num_heads x head_dim = {num_heads * head_dim}, more than 65536")
    mlp_ratio = params.get("mlp_ratio", 4.0)
    if (isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, (int, float))
            or not mlp_ratio > 0 or math.isinf(mlp_ratio)):
        raise ArchitectureError(f"mlp_ratio must be a positive number, got {mlp_ratio!r}")
    dropout = _fraction(params, "dropout")
    attention_dropout = _fraction(params, "attention_dropout")
    resolution = ctx.resolution
    if patch_size > resolution:
        raise ArchitectureError(
            f"patch_size {patch_size} is larger than the input resolution {resolution}")
    if resolution % patch_size:
        raise ArchitectureError(
            f"patch_size {patch_size} does not divide the input resolution {resolution}")
    hidden_dim = num_heads * head_dim
    mlp_dim = max(1, round(mlp_ratio * hidden_dim))

    model = VisionTransformer(
        image_size=resolution, patch_size=patch_size, num_layers=num_layers,
        num_heads=num_heads, hidden_dim=hidden_dim, mlp_dim=mlp_dim, dropout=dropout,
        attention_dropout=attention_dropout, num_classes=ctx.num_classes)
    if ctx.in_channels != 3:
        model.conv_proj = nn.Conv2d(ctx.in_channels, hidden_dim, kernel_size=patch_size,
                                    stride=patch_size)
        fan_in = ctx.in_channels * patch_size * patch_size
        nn.init.trunc_normal_(model.conv_proj.weight, std=math.sqrt(1 / fan_in))
        nn.init.zeros_(model.conv_proj.bias)
    tokens = (resolution // patch_size) ** 2
    summary: dict[str, Any] = {
        "family": "vit",
        "num_layers": num_layers,
        "num_heads": num_heads,
        "head_dim": head_dim,
        "hidden_dim": hidden_dim,
        "mlp_ratio": float(mlp_ratio),
        "mlp_dim": mlp_dim,
        "patch_size": patch_size,
        "image_size": resolution,
        "tokens": tokens,
        "seq_length": tokens + 1,
    }
    return BuiltModel(model, (ctx.in_channels, resolution, resolution), summary)
