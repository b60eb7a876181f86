"""Parallel workers: steady-state throughput for 1..16 workers, and where each trial's time goes.

Two forms, each a fresh study per (storage, worker count) with the quickstart search
(``studies/quickstart.toml``: conv_net on digits, the default NSGA-II sampler and pruner,
every cost profiled with latency timing):

(a) coordination only: training (and the test evaluation) is replaced by a sleep of
    ``--sleep`` seconds inside this benchmark's worker processes; sampling, building,
    profiling and every storage write (epoch reports included) run as usual; the pruner is
    ``NopPruner``, as a sleep has no learning curve to judge. Storages: SQLite, journal file and
    PostgreSQL (a throwaway cluster from ``tests/pg.py``; skipped with a note on a machine
    without ``/usr/lib/postgresql``).
(b) real training (journal storage): one worker with all cores is the baseline; N workers
    get ``cores // N`` torch threads each.

Steady state: each run starts its workers, waits until every worker has finished a trial
(warm-up: spawn, imports, dataset load), then counts the trials whose stored completion time
falls in a window of at least ``--window`` seconds and at least 8 trials per worker.
Throughput is that count over the window; efficiency is throughput over N times the one-worker
throughput of the same form and storage; our overhead per trial is the time a worker spends
per trial beyond the (sleep or real) training phase. The per-trial timeline
(:func:`neuromosaic_optuna.record.timeline_summary`) is printed per run: median and p90 in ms.

Goals: (a) efficiency >= 0.9 up to 16 workers on PostgreSQL and journal; (b) throughput
>= 0.8 x min(N, cores) x one worker, and 8 workers never slower than 4.

Run: ``python benchmarks/parallel.py`` (full: 1, 2, 4, 8, 16 workers; estimated 4-5 minutes
on a 16-core machine without PostgreSQL, about 1.5 more with it), or
``python benchmarks/parallel.py --quick`` (1 and 2 workers for (a) and (b), SQLite
and journal: about 2 minutes on 2 cores). ``--storages``, ``--workers``, ``--train-workers``,
``--window`` and ``--skip-train``/``--skip-coordination`` choose parts.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import neuromosaic_optuna as nm  # noqa: E402
from neuromosaic_optuna.record import PHASES, timeline_of, timeline_summary  # noqa: E402
from neuromosaic_optuna.storage import make_storage  # noqa: E402
from neuromosaic_optuna.study import open_slots  # noqa: E402

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SHORT = {"queue_wait": "queue", "claim": "claim", "sample": "sample", "build": "build",
         "profile": "profile", "latency_lock_wait": "lock", "train": "train",
         "record": "record", "tell": "tell"}


def _sleep_instead_of_training(seconds: float) -> None:
    """In this (worker) process, training sleeps ``seconds`` (split over the epochs, each
    reported as usual) and the test evaluation returns at once."""
    from neuromosaic_optuna import training

    def train_model(model: Any, train: Any, val: Any, *, epochs: int, on_epoch: Any = None,
                    **_: Any) -> training.TrainResult:
        for epoch in range(epochs):
            time.sleep(seconds / epochs)
            if on_epoch is not None:
                on_epoch(epoch, {"accuracy": 0.5, "loss": 1.0})
        return training.TrainResult(epochs=epochs, train_loss=1.0, val_accuracy=0.5,
                                    train_time=seconds)

    training.train_model = train_model  # type: ignore[assignment]
    training.evaluate_accuracy = lambda model, data, **_: 0.5  # type: ignore[assignment]


def _worker(config: nm.StudyConfig, url: str, name: str, threads: int,
            sleep: float | None) -> None:
    """One worker process: what ``run_workers`` spawns, with the optional sleep."""
    from neuromosaic_optuna.study import (
        Interrupted,
        TrialsFailedError,
        raise_on_sigterm,
        with_pruning,
        work,
        worker_threads,
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if sleep is not None:
        _sleep_instead_of_training(sleep)
    with contextlib.suppress(KeyboardInterrupt, Interrupted, TrialsFailedError), \
            worker_threads(threads), raise_on_sigterm():
        study = nm.create_study(config, storage=make_storage(url), study_name=name)
        objective = nm.Objective(config)
        work(study, objective, callbacks=with_pruning(config, study, objective))


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def _measure(config: nm.StudyConfig, url: str, workers: int, threads: int,
             sleep: float | None, window: float, per_worker: int) -> dict[str, Any]:
    """One run: N spawned workers on a fresh study at ``url``; steady-state numbers."""
    name = f"bench-{workers}w"
    study = nm.create_study(config, storage=make_storage(url), study_name=name)
    open_slots(study, workers * per_worker)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(config, url, name, threads, sleep), daemon=True)
             for _ in range(workers)]
    started = time.time()
    for p in procs:
        p.start()
    t0 = t1 = None
    note = ""
    limit = started + 120 + 6 * window
    try:
        while time.time() < limit:
            time.sleep(0.5)
            now = time.time()
            done = _finished(study)
            if t0 is None:
                if len({t.user_attrs.get("worker") for t in done}) >= workers:
                    t0 = now  # every worker is past its start-up
                continue
            counted = sum(t.datetime_complete is not None
                          and t.datetime_complete.timestamp() >= t0 for t in done)
            left = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
            if counted >= 8 * workers and now - t0 >= window:
                t1 = now
                break
            if left == 0:
                t1, note = now, " (slots ran out)"
                break
        else:
            note = " (timed out)"
            t1 = time.time()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(timeout=20)
            if p.is_alive():
                p.kill()
    if t0 is None:
        return {"workers": workers, "throughput": 0.0, "note": " (never warmed up)",
                "summary": {}, "overhead_ms": float("nan"), "count": 0, "window": 0.0}
    assert t1 is not None
    inside = [t for t in _finished(study) if t.datetime_complete is not None
              and t0 <= t.datetime_complete.timestamp() <= t1]
    span = t1 - t0
    trains = [timeline_of(t).get("train", 0.0) for t in inside]
    per_trial = workers * span / max(len(inside), 1)
    overhead = (per_trial - sum(trains) / max(len(trains), 1)) * 1e3
    return {"workers": workers, "throughput": len(inside) / span, "count": len(inside),
            "window": span, "overhead_ms": overhead, "note": note,
            "summary": timeline_summary(inside), "warmup": t0 - started}


def _urls(kind: str, tmp: Path, server: Any, tag: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / (tag + '.db')}"
    if kind == "journal":
        return str(tmp / (tag + ".log"))
    return str(server.create_database(tag.replace("-", "_")))


def _print_run(label: str, result: dict[str, Any], base: float) -> None:
    n = result["workers"]
    eff = result["throughput"] / (n * base) if base > 0 else float("nan")
    print(f"{label:<11} {n:>3}  {result['throughput']:8.2f}  {result['count']:>5} in "
          f"{result['window']:5.1f} s   {eff:5.2f}   {result['overhead_ms']:8.0f}"
          f"{result['note']}")


def _print_timelines(results: list[tuple[str, dict[str, Any]]]) -> None:
    print("  per-trial timeline, median/p90 ms: " + ", ".join(
        f"{SHORT[p]}={p}" for p in PHASES if SHORT[p] != p))
    print(f"  {'run':<14}" + "".join(f"{SHORT[p]:>14}" for p in PHASES))
    for label, result in results:
        row = result["summary"]
        cells = [f"{row[p]['median_ms']:.0f}/{row[p]['p90_ms']:.0f}" if p in row else "-"
                 for p in PHASES]
        print(f"  {label:<14}" + "".join(f"{c:>14}" for c in cells))


def _coordination(config: nm.StudyConfig, storages: list[str], counts: list[int],
                  args: argparse.Namespace, tmp: Path, server: Any) -> None:
    print(f"\n(a) coordination only: training = {args.sleep:g} s sleep; quickstart search "
          "(default sampler, pruner, build, profiling with latency timing)")
    print(f"{'storage':<11} {'N':>3}  {'trials/s':>8}  {'counted':>14}   {'eff.':>5}   "
          f"{'overhead ms/trial':>8}")
    timelines = []
    for kind in storages:
        base = 0.0
        for n in counts:
            url = _urls(kind, tmp, server, f"a-{kind}-{n}-{int(time.time())}")
            result = _measure(config, url, n, max(1, args.cores // n), args.sleep, args.window,
                              per_worker=int(1.5 * args.window / args.sleep) + 14)
            if n == counts[0]:  # the baseline of this storage
                base = result["throughput"]
            _print_run(kind, result, base)
            timelines.append((f"{kind} N={n}", result))
            sys.stdout.flush()
        if kind in ("journal", "postgresql") and base:
            worst = min((r["throughput"] / (r["workers"] * base), r["workers"])
                        for label, r in timelines if label.startswith(kind))
            met = "met" if worst[0] >= 0.9 else "NOT met"
            print(f"{'':<11} goal efficiency >= 0.9 up to N={max(counts)} on {kind}: {met} "
                  f"(lowest {worst[0]:.2f} at N={worst[1]})")
    _print_timelines(timelines)


def _training(config: nm.StudyConfig, counts: list[int], args: argparse.Namespace,
              tmp: Path) -> None:
    cores = args.cores
    print(f"\n(b) real training ({config.epochs} epoch(s) on {config.max_train_samples} "
          f"digits images at {config.resolution} px), journal storage, {cores} cores: "
          "1 worker x all cores, N workers x cores/N threads")
    print(f"{'threads':<11} {'N':>3}  {'trials/s':>8}  {'counted':>14}   {'speedup':>5}   "
          f"{'overhead ms/trial':>8}")
    results = []
    base = 0.0
    for n in counts:
        threads = cores if n == 1 else max(1, cores // n)
        url = _urls("journal", tmp, None, f"b-{n}-{int(time.time())}")
        result = _measure(config, url, n, threads, None, args.train_window, per_worker=40)
        if n == counts[0]:  # the baseline (1 worker x all cores), even when it measured 0
            base = result["throughput"]
        speedup = result["throughput"] / base if base else float("nan")
        print(f"{threads:<11} {n:>3}  {result['throughput']:8.2f}  {result['count']:>5} in "
              f"{result['window']:5.1f} s   {speedup:5.2f}x  {result['overhead_ms']:8.0f}"
              f"{result['note']}   goal >= {0.8 * min(n, cores):.1f}x: "
              f"{'met' if speedup >= 0.8 * min(n, cores) else 'NOT met'}")
        results.append((f"N={n} x {threads}t", result))
        sys.stdout.flush()
    by_n = {r["workers"]: r["throughput"] for _, r in results}
    if 4 in by_n and 8 in by_n:
        print(f"{'':<11} goal 8 workers never slower than 4: "
              f"{'met' if by_n[8] >= by_n[4] else 'NOT met'} "
              f"({by_n[8]:.2f} vs {by_n[4]:.2f} trials/s)")
    _print_timelines(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 and 2 workers on SQLite and journal; (b) with 1 and 2")
    parser.add_argument("--storages", default=None,
                        help="comma list of sqlite, journal, postgresql (default: all three)")
    parser.add_argument("--workers", default=None, help="(a) worker counts, e.g. 1,2,4,8,16")
    parser.add_argument("--train-workers", default=None, help="(b) worker counts")
    parser.add_argument("--window", type=float, default=None,
                        help="(a) least seconds counted after warm-up (default 8)")
    parser.add_argument("--train-window", type=float, default=None,
                        help="(b) least seconds counted after warm-up (default 10)")
    parser.add_argument("--sleep", type=float, default=1.0, help="(a) seconds per 'training'")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu",
                        help="the study's device (default cpu: the question is CPU scaling)")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-coordination", action="store_true")
    args = parser.parse_args()
    quick = args.quick
    storages = (args.storages or ("sqlite,journal" if quick else
                                  "sqlite,journal,postgresql")).split(",")
    counts = [int(n) for n in (args.workers or ("1,2" if quick else "1,2,4,8,16")).split(",")]
    train_counts = [int(n) for n in (args.train_workers or ("1,2" if quick else "1,2,4,8,16")
                                     ).split(",")]
    args.window = args.window or 8.0
    args.train_window = args.train_window or 10.0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = nm.load_study_file(ROOT / "studies" / "quickstart.toml").with_overrides(
        device=args.device)
    # (a): the quickstart's search, a full-size run; (b): trials of about a second on a core
    # a sleep has no learning curve to prune: no pruner in (a) (epochs are still reported)
    coordination = base.with_overrides(max_trials=10_000, pruner={"name": "NopPruner"})
    training = base.with_overrides(max_trials=10_000, epochs=1, max_train_samples=256,
                                   resolution=16)
    started = time.time()
    print(f"parallel benchmark: {args.cores} cores, python {sys.version.split()[0]}, "
          f"optuna {optuna.__version__}, device {args.device}")
    with tempfile.TemporaryDirectory(prefix="nm-parallel-") as folder, \
            contextlib.ExitStack() as stack:
        tmp = Path(folder)
        server = None
        if "postgresql" in storages and not args.skip_coordination:
            from pg import PostgresServer, PostgresUnavailable

            if not Path("/usr/lib/postgresql").exists() and "NEUROMOSAIC_PG_BIN" not in \
                    os.environ:
                print("note: no /usr/lib/postgresql on this machine: PostgreSQL skipped")
                storages.remove("postgresql")
            else:
                try:
                    server = stack.enter_context(PostgresServer())
                except PostgresUnavailable as exc:
                    print(f"note: PostgreSQL skipped ({exc})")
                    storages.remove("postgresql")
        if not args.skip_coordination:
            _coordination(coordination, storages, counts, args, tmp, server)
        if not args.skip_train:
            _training(training, train_counts, args, tmp)
    print(f"\nbenchmark ran {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
