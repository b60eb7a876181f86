"""Tests for the conv_net and vision_transformer builders."""

from __future__ import annotations

import doctest
import itertools
import json
import math

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops import SqueezeExcitation

from neuromosaic_optuna.models import (
    ArchitectureError,
    BuildContext,
    convnet,
    get_builder,
    list_models,
    vit,
)
from neuromosaic_optuna.models.convnet import (
    EFFICIENTNET_B0_STAGES,
    BlockArgs,
    build_conv_net,
    decode_block,
    encode_block,
)
from neuromosaic_optuna.models.vit import build_vision_transformer


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _se_squeeze_widths(model: nn.Module) -> list[int]:
    return [m.fc1.out_channels for m in model.modules() if isinstance(m, SqueezeExcitation)]


def test_builders_are_registered():
    assert {"conv_net", "vision_transformer"} <= set(list_models())
    assert get_builder("conv_net") is build_conv_net
    assert get_builder("vision_transformer") is build_vision_transformer


@pytest.mark.parametrize("module", [convnet, vit])
def test_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# --- conv_net ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("width", "depth", "weights"), [
    (1.0, 1.0, torchvision.models.EfficientNet_B0_Weights),
    (1.0, 1.1, torchvision.models.EfficientNet_B1_Weights),
    (1.1, 1.2, torchvision.models.EfficientNet_B2_Weights),
    (1.2, 1.4, torchvision.models.EfficientNet_B3_Weights),
    (1.4, 1.8, torchvision.models.EfficientNet_B4_Weights),
])
def test_conv_net_matches_torchvision_efficientnet_param_counts(width, depth, weights):
    built = build_conv_net({"depth_multiplier": depth, "width_multiplier": width,
                            "se_ratio": 0.25}, BuildContext(num_classes=1000, resolution=224))
    expected = weights.IMAGENET1K_V1.meta["num_params"]
    assert _num_params(built.model) == expected
    assert built.input_size == (3, 224, 224)


def test_conv_net_b0_literal_count_and_summary():
    built = build_conv_net({"depth_multiplier": 1.0, "width_multiplier": 1.0, "se_ratio": 0.25,
                            "resolution": 224}, BuildContext(num_classes=1000, resolution=224))
    assert _num_params(built.model) == 5_288_548
    assert built.summary == {
        "family": "efficientnet", "depth_multiplier": 1.0, "width_multiplier": 1.0,
        "se_ratio": 0.25, "stem_channels": 32,
        "stage_channels": [16, 24, 40, 80, 112, 192, 320],
        "stage_depths": [1, 2, 2, 3, 3, 4, 1], "head_channels": 1280, "total_blocks": 16,
        "stages": ["ds_r1_k3_s1_c16_se0.25", "ir_r2_k3_s2_e6_c24_se0.25",
                   "ir_r2_k5_s2_e6_c40_se0.25", "ir_r3_k3_s2_e6_c80_se0.25",
                   "ir_r3_k5_s1_e6_c112_se0.25", "ir_r4_k5_s2_e6_c192_se0.25",
                   "ir_r1_k3_s1_e6_c320_se0.25"],
    }
    assert json.loads(json.dumps(built.summary)) == built.summary
    # squeeze width = max(1, int(block input channels * 0.25)): first block sees the 32-channel stem
    assert _se_squeeze_widths(built.model)[:4] == [8, 4, 6, 6]


def test_conv_net_is_torchvision_b0_layer_for_layer():
    """Same state-dict layout as torchvision's efficientnet_b0, and the same function."""
    ours = build_conv_net({"se_ratio": 0.25}, BuildContext(num_classes=7, resolution=64)).model
    reference = torchvision.models.efficientnet_b0(weights=None, num_classes=7)
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), reference.eval()(x))


def test_se_ratio_zero_or_missing_has_no_se_layer():
    ctx = BuildContext(num_classes=10, resolution=32)
    with_se = build_conv_net({"se_ratio": 0.25}, ctx)
    for params in ({"se_ratio": 0.0}, {}):
        built = build_conv_net(params, ctx)
        assert _se_squeeze_widths(built.model) == []
        assert built.summary["se_ratio"] == 0.0
        assert _num_params(built.model) < _num_params(with_se.model)
    assert len(_se_squeeze_widths(with_se.model)) == with_se.summary["total_blocks"] == 16


def test_se_ratio_sets_squeeze_width():
    built = build_conv_net({"se_ratio": 0.1}, BuildContext(num_classes=10, resolution=32))
    # block inputs: stem 32, then 16, 24, 24, 40, ...: int(c * 0.1), at least 1
    assert _se_squeeze_widths(built.model)[:5] == [3, 1, 2, 2, 4]


@pytest.mark.parametrize("resolution", [32, 64])
def test_conv_net_forward_shape(resolution):
    built = build_conv_net({"depth_multiplier": 0.5, "width_multiplier": 0.5, "se_ratio": 0.25},
                           BuildContext(num_classes=10, resolution=resolution))
    assert built.input_size == (3, resolution, resolution)
    out = built.model.eval()(torch.rand(2, 3, resolution, resolution))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("depth", "width", "se"),
                         list(itertools.product([0.5, 2.0], [0.5, 2.0], [0.0, 0.25])))
def test_seed_space_corners_build(depth, width, se):
    built = build_conv_net({"depth_multiplier": depth, "width_multiplier": width, "se_ratio": se,
                            "resolution": 320}, BuildContext(num_classes=10, resolution=32))
    base = [1, 2, 2, 3, 3, 4, 1]
    assert built.summary["stage_depths"] == [math.ceil(r * depth) for r in base]
    assert built.summary["stem_channels"] == (16 if width == 0.5 else 64)
    assert bool(_se_squeeze_widths(built.model)) == (se > 0)
    with torch.no_grad():
        assert built.model.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_depth_and_width_rounding():
    built = build_conv_net({"depth_multiplier": 1.1, "width_multiplier": 0.25},
                           BuildContext(num_classes=10, resolution=32))
    # ceil(r * 1.1); channels rounded to multiples of 8, never below 8 nor 10 % under the target
    assert built.summary["stage_depths"] == [2, 3, 3, 4, 4, 5, 2]
    assert built.summary["stage_channels"] == [8, 8, 16, 24, 32, 48, 80]
    assert built.summary["head_channels"] == 320


def test_unknown_param_is_rejected_by_name():
    with pytest.raises(ArchitectureError, match="'depth_multiplyer'"):
        build_conv_net({"depth_multiplyer": 1.0}, BuildContext(num_classes=10, resolution=32))


@pytest.mark.parametrize(("params", "message"), [
    ({"depth_multiplier": 0}, "depth_multiplier must be > 0"),
    ({"width_multiplier": -1.0}, "width_multiplier must be > 0"),
    ({"se_ratio": 1.5}, "se_ratio must be >= 0 and <= 1"),
    ({"se_ratio": "0.25"}, "se_ratio must be a number"),
    ({"kernel_size": 4}, "kernel size must be odd"),
    ({"kernel_size": 3.5}, "kernel_size must be an integer"),
])
def test_conv_net_rejects_bad_values(params, message):
    with pytest.raises(ArchitectureError, match=message):
        build_conv_net(params, BuildContext(num_classes=10, resolution=32))


def test_kernel_and_expand_overrides():
    ctx = BuildContext(num_classes=10, resolution=32)
    built = build_conv_net({"kernel_size": 3, "expand_ratio": 4}, ctx)
    assert built.summary["stages"][0] == "ds_r1_k3_s1_c16"  # ds stages keep no expansion
    assert built.summary["stages"][1:3] == ["ir_r2_k3_s2_e4_c24", "ir_r2_k3_s2_e4_c40"]
    kernels = {m.kernel_size for m in built.model.modules()
               if isinstance(m, nn.Conv2d) and m.groups > 1}
    assert kernels == {(3, 3)}
    assert _num_params(built.model) < _num_params(build_conv_net({}, ctx).model)


def test_custom_stages_from_options():
    ctx = BuildContext(num_classes=5, resolution=32, in_channels=1, options={
        "convnet_stages": ["ds_r1_k3_s1_c8", "ir_r2_k5_s2_e4_c16_se0.5"],
        "convnet_stem_channels": 16, "head_dim": 16})
    built = build_conv_net({"width_multiplier": 1.0}, ctx)
    assert built.summary["stage_channels"] == [8, 16]
    assert built.summary["stage_depths"] == [1, 2]
    assert built.summary["stem_channels"] == 16
    assert built.summary["head_channels"] == 64
    # without the param, each block string's own se applies
    assert built.summary["se_ratio"] == [0.0, 0.5]
    assert _se_squeeze_widths(built.model) == [4, 8]
    assert built.input_size == (1, 32, 32)
    assert built.model.eval()(torch.rand(3, 1, 32, 32)).shape == (3, 5)
    overridden = build_conv_net({"se_ratio": 0.0}, ctx)
    assert _se_squeeze_widths(overridden.model) == []


def test_decode_block_round_trip_and_errors():
    args = decode_block("ir_r3_k5_s2_e6_c40_se0.25")
    assert args == BlockArgs("ir", 3, 5, 2, 6.0, 40, 0.25)
    assert encode_block(args) == "ir_r3_k5_s2_e6_c40_se0.25"
    assert all(encode_block(decode_block(s)) == s for s in EFFICIENTNET_B0_STAGES)
    for bad, message in [("xx_r1_k3_s1_c16", "unknown block type"),
                         ("ir_r1_k3_s1_c16_n4", "cannot read option"),
                         ("ir_r1_k3_c16", "missing option"),
                         ("ir_r1_k3_s3_c16", "stride must be 1 or 2"),
                         ("ds_r1_k3_s1_e6_c16", "no expansion"),
                         ("ir_r1.5_k3_s1_c16", "must be integers")]:
        with pytest.raises(ArchitectureError, match=message):
            decode_block(bad)
    with pytest.raises(ArchitectureError, match="unknown block type"):
        build_conv_net({}, BuildContext(10, 32, options={"convnet_stages": ["mb_r1_k3_s1_c8"]}))


def test_conv_net_summary_is_deterministic():
    ctx = BuildContext(num_classes=10, resolution=32)
    params = {"depth_multiplier": 0.7, "width_multiplier": 1.3, "se_ratio": 0.25}
    assert build_conv_net(params, ctx).summary == build_conv_net(dict(params), ctx).summary


# --- vision_transformer ------------------------------------------------------------------------

def test_vit_matches_torchvision_vit_b_param_counts():
    """Build ViT-B once per patch size (a few seconds each)."""
    ctx = BuildContext(num_classes=1000, resolution=224, options={"head_dim": 64})
    params = {"num_layers": 12, "num_heads": 12, "mlp_ratio": 4.0, "patch_size": 16}
    b16 = build_vision_transformer(params, ctx)
    assert _num_params(b16.model) == 86_567_656
    assert _num_params(b16.model) == torchvision.models.ViT_B_16_Weights.IMAGENET1K_V1.meta[
        "num_params"]
    assert b16.summary == {"family": "vit", "num_layers": 12, "num_heads": 12, "head_dim": 64,
                           "hidden_dim": 768, "mlp_ratio": 4.0, "mlp_dim": 3072,
                           "patch_size": 16, "image_size": 224, "tokens": 196, "seq_length": 197}
    del b16
    b32 = build_vision_transformer({**params, "patch_size": 32}, ctx)
    assert _num_params(b32.model) == 88_224_232
    assert b32.summary["tokens"] == 49


@pytest.mark.parametrize(("patch", "resolution", "message"), [
    (32, 48, "patch_size 32 does not divide the input resolution 48"),
    (16, 40, "patch_size 16 does not divide the input resolution 40"),
    (64, 32, "patch_size 64 is larger than the input resolution 32"),
])
def test_vit_rejects_patch_before_building(monkeypatch, patch, resolution, message):
    def _fail(*args, **kwargs):
        raise AssertionError("VisionTransformer must not be constructed")

    monkeypatch.setattr(vit, "VisionTransformer", _fail)
    with pytest.raises(ArchitectureError, match=message):
        build_vision_transformer({"num_layers": 4, "num_heads": 4, "mlp_ratio": 2.0,
                                  "patch_size": patch}, BuildContext(10, resolution))


@pytest.mark.parametrize(("layers", "heads", "mlp_ratio", "patch"),
                         [(4, 4, 2.0, 8), (2, 16, 4.0, 16), (1, 4, 3.0, 32)])
def test_small_vit_forward_shape(layers, heads, mlp_ratio, patch):
    ctx = BuildContext(num_classes=10, resolution=32, options={"head_dim": 8})
    built = build_vision_transformer({"num_layers": layers, "num_heads": heads,
                                      "mlp_ratio": mlp_ratio, "patch_size": patch,
                                      "resolution": 224}, ctx)
    hidden = heads * 8
    assert built.summary["hidden_dim"] == hidden
    assert built.summary["mlp_dim"] == round(mlp_ratio * hidden)
    assert built.summary["tokens"] == (32 // patch) ** 2
    assert built.input_size == (3, 32, 32)
    assert len(built.model.encoder.layers) == layers
    with torch.no_grad():
        out = built.model.eval()(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_vit_options_and_optional_params():
    ctx = BuildContext(num_classes=4, resolution=16, in_channels=1, options={"head_dim": 4})
    built = build_vision_transformer({"num_layers": 1, "num_heads": 2, "mlp_ratio": 2.5,
                                      "patch_size": 4, "dropout": 0.1,
                                      "attention_dropout": 0.2}, ctx)
    assert built.summary["mlp_dim"] == 20
    assert built.model.encoder.dropout.p == 0.1
    assert built.model.encoder.layers[0].self_attention.dropout == 0.2
    assert built.model.conv_proj.in_channels == 1
    assert built.model(torch.rand(2, 1, 16, 16)).shape == (2, 4)
    default_width = build_vision_transformer({"num_layers": 1, "num_heads": 2, "patch_size": 8},
                                             BuildContext(4, 16))
    assert default_width.summary["hidden_dim"] == 128  # head_dim defaults to 64


@pytest.mark.parametrize(("params", "message"), [
    ({"num_heads": 0}, "num_heads must be >= 1"),
    ({"num_layers": 2.5}, "num_layers must be an integer"),
    ({"mlp_ratio": 0.0}, "mlp_ratio must be a positive number"),
    ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
    ({"hidden_dim": 64}, "has no param"),
])
def test_vit_rejects_bad_values(params, message):
    with pytest.raises(ArchitectureError, match=message):
        build_vision_transformer({"patch_size": 8, **params}, BuildContext(10, 32))


def test_vit_embed_dim_fixes_the_width_while_heads_vary() -> None:
    from neuromosaic_optuna.models import ArchitectureError, BuildContext, get_builder

    build = get_builder("vision_transformer")
    ctx = BuildContext(10, 32, options={"head_dim": 16, "embed_dim": 96})
    widths = {h: build({"num_layers": 1, "num_heads": h, "patch_size": 8}, ctx).summary
              for h in (2, 4, 6)}
    assert [s["hidden_dim"] for s in widths.values()] == [96, 96, 96]
    assert [s["head_dim"] for s in widths.values()] == [48, 24, 16]
    with pytest.raises(ArchitectureError, match="embed_dim 96 is not divisible by num_heads 5"):
        build({"num_layers": 1, "num_heads": 5, "patch_size": 8}, ctx)
