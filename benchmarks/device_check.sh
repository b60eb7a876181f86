#!/usr/bin/env bash
# One pass of every check that needs a GPU or many cores (issues 16 and 21), for a borrowed
# CUDA machine: the CUDA tests, benchmarks/gpu.py (ours vs a bare loop, a CIFAR-10 epoch, a
# 10-trial vit_search study) and benchmarks/parallel.py at 1-16 workers on the CPU cores.
# Logs go to the folder given as $1 (default ./device-logs). Each step has its own time limit
# so one slow step cannot starve the others. Run from the repository root:
#   bash benchmarks/device_check.sh /tmp/logs
set -u
out="${1:-device-logs}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
unset NEUROMOSAIC_CIFAR10_DIR
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  python3 -c "import torch, torchvision, optuna; print('torch', torch.__version__,
'torchvision', torchvision.__version__, 'optuna', optuna.__version__)"; } 2>&1 | tee "$out/machine.txt"
timeout 100 python3 -m pytest -q -rs -p no:cacheprovider tests/test_gpu.py \
    tests/test_precision.py tests/test_device.py tests/test_latency_device.py \
    tests/test_device_data.py 2>&1 | tail -30 | tee "$out/gpu_tests.txt"
timeout "${GPU_BENCH_S:-210}" python3 benchmarks/gpu.py --device cuda --study-epochs 1 2>&1 \
    | tee "$out/gpu_bench.txt"
timeout "${PARALLEL_S:-200}" python3 benchmarks/parallel.py --storages journal,sqlite \
    --workers 1,4,16 --train-workers 1,4,8 --window 6 --train-window 8 2>&1 \
    | tee "$out/parallel.txt"
