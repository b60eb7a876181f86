"""Which precision and memory format trains each architecture family fastest (issue 16).

``precision = "auto"`` picks a precision per architecture family on CUDA
(:data:`neuromosaic_optuna.training.AUTO_PRECISION`). This script is the measurement behind
that table: for the architectures of ``benchmarks/gpu.py`` (built by our registry), it trains
with the bare plain-torch loop of ``benchmarks/gpu.py`` (no code of ours in the loop) on
device-resident, CIFAR-10-shaped random data in fp32, bf16 and fp16 autocast, each with and
without ``channels_last``, and prints images/second and the ratio to fp32 (the baseline,
measured in the same run). One warm-up epoch precedes each timed run.

On a CPU (``--quick``) only fp32 and bf16 are tried on small architectures: the figures say
nothing about a GPU, but the script is exercised.

Run: ``python benchmarks/precision.py [--quick] [--device cuda:0]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu import FULL, QUICK, _build, bare_loop  # noqa: E402

from neuromosaic_optuna.training import resolve_device  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small architectures on CPU")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    archs = QUICK if args.quick else FULL
    n = args.images or (512 if args.quick else 5000)
    batch, epochs = (64, 1) if args.quick else (256, 2)
    precisions = ["fp32", "bf16", "fp16"] if cuda else ["fp32", "bf16"]
    print(f"device {device}, torch {torch.__version__}, {n} images, batch {batch}, "
          f"{epochs} timed epochs after one warm-up epoch; bare plain-torch loop")
    for name, arch, params, res, head_dim in archs:
        gen = torch.Generator().manual_seed(1)
        x = torch.rand(n, 3, res, res, generator=gen).to(device)
        y = torch.randint(0, 10, (n,), generator=gen).to(device)
        baseline = None
        for precision in precisions:
            for channels_last in (False, True):
                model, family = _build(arch, params, res, head_dim, device)
                xs = x.contiguous(memory_format=torch.channels_last) if channels_last else x
                if channels_last:
                    model = model.to(memory_format=torch.channels_last)
                bare_loop(model, xs, y, epochs=1, batch_size=batch, precision=precision)
                seconds = bare_loop(model, xs, y, epochs=epochs, batch_size=batch,
                                    precision=precision)
                ips = n * epochs / seconds
                baseline = baseline or ips
                label = precision + (" channels_last" if channels_last else "")
                print(f"{name:42s} [{family}] {label:20s} {ips:10.1f} img/s  "
                      f"{ips / baseline:5.2f}x fp32")
                del model
                if cuda:
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
