"""Our FLOP and parameter counts against torchvision's published figures.

For five torchvision models (built with ``weights=None``; only the weights' metadata is read,
nothing is downloaded) prints, in GMACs at 224x224: torchvision's ``_ops`` metadata (the
"GFLOPS" column of its docs, shown there rounded to 2 decimals), our count, the relative
error, a plain ``FlopCounterMode`` count in eval mode (which misses the fused attention
kernel), thop's count, the parameter counts, activation memory and the time our count takes.

Run: ``python benchmarks/flops_check.py``
"""

from __future__ import annotations

import time

import torch
import torchvision.models as tvm
from torch.utils.flop_counter import FlopCounterMode

from neuromosaic_optuna.profiling import count_flops, count_params, measure_activation_memory

MODELS = [
    ("efficientnet_b0", tvm.efficientnet_b0, tvm.EfficientNet_B0_Weights.IMAGENET1K_V1),
    ("resnet50", tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V1),
    ("mobilenet_v3_large", tvm.mobilenet_v3_large, tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V1),
    ("vit_b_16", tvm.vit_b_16, tvm.ViT_B_16_Weights.IMAGENET1K_V1),
    ("vit_b_32", tvm.vit_b_32, tvm.ViT_B_32_Weights.IMAGENET1K_V1),
]
SIZE = (3, 224, 224)


def naive_gmacs(model: torch.nn.Module) -> float:
    """Plain FlopCounterMode under inference mode, halved to MACs."""
    model.eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, *SIZE))
    return counter.get_total_flops() / 2e9


def main() -> None:
    torch.set_num_threads(1)
    print(f"{'model':20s} {'published':>9s} {'ours':>8s} {'error':>7s} {'naive':>7s} "
          f"{'thop':>7s} {'params ok':>9s} {'memory MB':>9s} {'time s':>6s}")
    for name, builder, weights in MODELS:
        model = builder(weights=None)
        started = time.perf_counter()
        ours = count_flops(model, SIZE) / 1e9
        seconds = time.perf_counter() - started
        published = weights.meta["_ops"]
        thop = count_flops(model, SIZE, backend="thop") / 1e9
        params_ok = count_params(model) == weights.meta["num_params"]
        memory = measure_activation_memory(model, SIZE) / 2**20
        print(f"{name:20s} {published:9.3f} {ours:8.4f} {(ours - published) / published:7.2%} "
              f"{naive_gmacs(model):7.3f} {thop:7.3f} {params_ok!s:>9s} {memory:9.2f} "
              f"{seconds:6.2f}")


if __name__ == "__main__":
    main()
