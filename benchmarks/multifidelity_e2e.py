"""One real seed of multi-fidelity search against full fidelity, through ``neuromosaic run``.

A small Fashion-MNIST study (the quickstart's EfficientNet-style ``conv_net`` space, accuracy vs
FLOPs, ``ParetoSampler``) is run twice with the same seed, each in its own SQLite file:

* **full**: ``--trials`` trials, every one trained to ``--epochs`` epochs (``[pruner] name =
  "NopPruner"``: without it the default dominance pruner would stop some): the epoch budget
  ``B = trials x epochs``;
* **fidelity**: the same study file plus ``[fidelity]`` (``min = 1``, ``max = --epochs``,
  ``reduction_factor = 3``, ``brackets = --brackets``): ``neuromosaic run --n-trials N`` is
  called again with a larger ``N`` while budget is left, each call adding at most
  ``(B - epochs used) // epochs`` trials, so it never trains more than ``B`` epochs.

Every epoch trained counts, stopped trials' included (read from the trials' reported curves).
Printed per run: epochs trained, wall time (the CLI processes, start-up included), trials
complete / stopped, and the hypervolume of the front of the COMPLETE (full-fidelity) trials in
(accuracy, FLOPs) with one reference point for both runs (the worst accuracy among them less
1% of the span, the largest FLOPs plus 1%), scored on the **test** accuracy the report stores
(never read by the search) and, for comparison, on the validation accuracy the search saw.

Data: a stratified subset of Fashion-MNIST (Debian's ``dataset-fashion-mnist``, or
``--dataset-path``) written as MNIST-format files, so validation (10% of ``--train-file``
images) and test (``--test`` images) stay small enough for a 2-core machine.

Run: ``python benchmarks/multifidelity_e2e.py [--trials 6] [--epochs 6] [--train-file 400]
[--test 1000] [--resolution 16] [--seed 0] [--brackets 1] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import gzip
import os
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from neuromosaic_optuna._idx import IDX_FILES, read_idx_split
from neuromosaic_optuna.pareto import hypervolume
from neuromosaic_optuna.pruners import intermediate_values
from neuromosaic_optuna.record import metric_value

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
DIRECTIONS = ["maximize", "minimize"]
STUDY = """\
[experiment]
name = "mf_e2e"
architecture_type = "conv_net"
objectives = ["accuracy", "flops"]
dataset = "fashion_mnist"
max_trials = {trials}

[experiment.search_space]
depth_multiplier = [0.5, 2.0]
width_multiplier = [0.25, 1.5]
se_ratio = [0.0, 0.25]

[defaults]
dataset_path = "{data}"
resolution = {resolution}
epochs = {epochs}
batch_size = 64
learning_rate = 0.005
population_size = {population}

[defaults.model_options]
convnet_stages = ["ds_r1_k3_s1_e1_c16", "ir_r2_k3_s2_e6_c24", "ir_r2_k5_s2_e6_c40", \
"ir_r2_k3_s1_e6_c80"]
convnet_head_channels = 256
"""
NO_PRUNING = """
[defaults.pruner]
name = "NopPruner"
"""
FIDELITY = """
[fidelity]
min = 1
max = {epochs}
reduction_factor = 3
brackets = {brackets}
"""


def _stratified(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices, the same number from every class (within one), in a shuffled order."""
    classes = np.unique(labels)
    picked = [rng.permutation(np.flatnonzero(labels == c))[: n // len(classes) + 1]
              for c in classes]
    out = np.concatenate(picked)
    return rng.permutation(out)[:n]


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                      *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_subset(source: Path, target: Path, n_train: int, n_test: int, seed: int) -> None:
    """A stratified subset of an MNIST-format folder, as an MNIST-format folder."""
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = read_idx_split(source, split)
        keep = _stratified(y, n, rng)
        _write_idx(target / f"{IDX_FILES[(split, 'images')]}.gz", x[keep])
        _write_idx(target / f"{IDX_FILES[(split, 'labels')]}.gz", y[keep])


@dataclass
class Outcome:
    """What one run measured."""

    label: str
    epochs: int
    wall: float
    complete: int
    stopped: int
    test: np.ndarray  # (n, 2): test accuracy, FLOPs of COMPLETE trials
    val: np.ndarray  # (n, 2): validation accuracy, FLOPs


def _read(storage: str) -> tuple[list[optuna.trial.FrozenTrial], int]:
    study = optuna.load_study(study_name="mf_e2e", storage=storage)
    trials = study.get_trials(deepcopy=False)
    return trials, sum(len(intermediate_values(t, "accuracy")) for t in trials)


def _run_cli(study_file: Path, storage: str, n_trials: int, seed: int) -> None:
    cmd = [sys.executable, "-m", "neuromosaic_optuna.cli", "run", str(study_file), "--storage",
           storage, "--n-trials", str(n_trials), "--seed", str(seed), "--no-progress"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}")


def _outcome(label: str, storage: str, wall: float) -> Outcome:
    trials, epochs = _read(storage)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    test = np.array([[metric_value(t, "test_accuracy") or 0.0, t.values[1]] for t in done])
    val = np.array([[t.values[0], t.values[1]] for t in done])
    return Outcome(label, epochs, wall, len(done),
                   sum(t.state == TrialState.PRUNED for t in trials),
                   test.reshape(-1, 2), val.reshape(-1, 2))


def run_full(study_file: Path, storage: str, trials: int, seed: int) -> Outcome:
    start = time.perf_counter()
    _run_cli(study_file, storage, trials, seed)
    return _outcome("full", storage, time.perf_counter() - start)


def run_fidelity(study_file: Path, storage: str, budget: int, epochs: int,
                 seed: int) -> Outcome:
    start = time.perf_counter()
    finished, used = 0, 0
    while (budget - used) // epochs >= 1:
        finished += (budget - used) // epochs
        _run_cli(study_file, storage, finished, seed)
        trials, used = _read(storage)
        finished = sum(t.state.is_finished() for t in trials)
    return _outcome("fidelity", storage, time.perf_counter() - start)


def _reference(points: list[np.ndarray]) -> np.ndarray:
    allp = np.vstack(points)
    span = allp.max(axis=0) - allp.min(axis=0)
    return np.array([allp[:, 0].min() - 0.01 * span[0], allp[:, 1].max() + 0.01 * span[1]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train-file", type=int, default=400,
                        help="training-file images (10%% become the validation split)")
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--brackets", type=int, default=1)
    parser.add_argument("--dataset-path", type=Path, default=DEBIAN)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mf_e2e_"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    write_subset(args.dataset_path, data, args.train_file, args.test, args.seed)
    text = STUDY.format(trials=args.trials, data=data, resolution=args.resolution,
                        epochs=args.epochs, population=args.trials)
    full_file, fid_file = work / "full.toml", work / "fidelity.toml"
    full_file.write_text(text + NO_PRUNING)
    fid_file.write_text(text + FIDELITY.format(epochs=args.epochs, brackets=args.brackets))
    budget = args.trials * args.epochs
    print(f"Fashion-MNIST subset: {args.train_file} training-file images (90% train, 10% "
          f"validation), {args.test} test, {args.resolution}x{args.resolution}; seed "
          f"{args.seed}; budget B = {args.trials} trials x {args.epochs} epochs = {budget} "
          f"epochs; [fidelity] min 1, reduction_factor 3, brackets {args.brackets}; "
          f"work dir {work}", flush=True)
    full = run_full(full_file, f"sqlite:///{work / 'full.db'}", args.trials, args.seed)
    print(f"  ran full: {full.wall:.0f} s", flush=True)
    ours = run_fidelity(fid_file, f"sqlite:///{work / 'fidelity.db'}", full.epochs,
                        args.epochs, args.seed)
    print(f"  ran fidelity: {ours.wall:.0f} s", flush=True)
    ref_test, ref_val = _reference([full.test, ours.test]), _reference([full.val, ours.val])
    hv = {o.label: (hypervolume(o.test, DIRECTIONS, ref_test),
                    hypervolume(o.val, DIRECTIONS, ref_val)) for o in (full, ours)}
    print(f"reference point: test accuracy {ref_test[0]:.4f} / validation {ref_val[0]:.4f}, "
          f"FLOPs {ref_test[1]:.4g}")
    print(f"{'run':<10} {'epochs':>7} {'wall s':>7} {'complete':>9} {'stopped':>8} "
          f"{'HV (test)':>11} {'HV (val)':>11}")
    for o in (full, ours):
        print(f"{o.label:<10} {o.epochs:>7} {o.wall:>7.0f} {o.complete:>9} {o.stopped:>8} "
              f"{hv[o.label][0]:>11.5g} {hv[o.label][1]:>11.5g}")
    test_ratio = hv["fidelity"][0] / hv["full"][0] if hv["full"][0] > 0 else float("nan")
    val_ratio = hv["fidelity"][1] / hv["full"][1] if hv["full"][1] > 0 else float("nan")
    print(f"fidelity / full: epochs {ours.epochs / full.epochs:.2f}, wall "
          f"{ours.wall / full.wall:.2f}, hypervolume {test_ratio:.3f} (test), "
          f"{val_ratio:.3f} (validation)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
