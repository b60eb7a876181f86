"""The ``neuromosaic`` command. Thin: parses arguments, calls the library, prints.

Every bad input (study file, flag, storage URL, dataset path) ends as one line on stderr,
``neuromosaic: error: <field>: <what to do>``, and exit code 2, before anything is written
to a storage.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from neuromosaic_optuna import __version__
from neuromosaic_optuna.config import ConfigError, StudyConfig, load_study_file

__all__ = ["main"]

STUDIES_DIR = Path(__file__).resolve().parent.parent / "studies"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage too)
        raise _UsageError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1 or value > 1_000_000:
        raise argparse.ArgumentTypeError(f"expected 1..1000000, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected 0..2**32-1, got {value}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="neuromosaic", description="Neural architecture search as Optuna "
                     "studies. Study files live in studies/.")
    parser.add_argument("--version", action="version", version=f"neuromosaic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run (or resume) the study of a study file")
    run.add_argument("study_file", metavar="STUDY.toml")
    run.add_argument("--storage", help="Optuna storage URL (default: $NEUROMOSAIC_STORAGE, "
                     "else sqlite:///neuromosaic.db)")
    run.add_argument("--study-name", help="default: the study's name and budget")
    run.add_argument("--n-trials", type=_positive_int,
                     help="total finished trials the study should have")
    run.add_argument("--budget", help="a [budget.<name>] preset of the study file")
    run.add_argument("--seed", type=_seed, help="seed of sampler, splits and training")
    run.add_argument("--workers", type=_positive_int, default=1,
                     help="worker processes sharing the study (default 1)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    worker = sub.add_parser("worker", help="join a running study from another shell or "
                            "machine and work on its open trial slots")
    worker.add_argument("study_file", metavar="STUDY.toml")
    worker.add_argument("--storage", help="the shared study's storage URL (default: "
                        "$NEUROMOSAIC_STORAGE)")
    worker.add_argument("--study-name", help="default: the study's name and budget")
    worker.add_argument("--budget", help="a [budget.<name>] preset of the study file")
    worker.add_argument("--seed", type=_seed, help="seed of sampler, splits and training")

    sub.add_parser("studies", help="list the shipped study files")
    return parser


def _load(args: argparse.Namespace) -> StudyConfig:
    overrides: dict[str, Any] = {"max_trials": getattr(args, "n_trials", None),
                                 "seed": args.seed}
    return load_study_file(args.study_file, budget=args.budget, overrides=overrides)


def _fmt(metric: str, value: Any) -> str:
    if value is None:
        return "-"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    from neuromosaic_optuna.metrics import METRICS

    unit = METRICS[metric].unit if metric in METRICS else ""
    if unit == "fraction":
        return f"{value:.4f}"
    if unit == "seconds":
        return f"{value * 1e3:.2f}ms"
    if unit in ("count", "bytes"):
        for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
            if abs(value) >= div:
                return f"{value / div:.3g}{suffix}" + ("B" if unit == "bytes" else "")
        return f"{value:.0f}" + ("B" if unit == "bytes" else "")
    return f"{value:.4g}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                       enumerate(zip(r, widths, strict=True))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _print_results(study: Any, config: StudyConfig, storage_url: str) -> None:
    from neuromosaic_optuna.storage import dashboard_command, mask_url
    from neuromosaic_optuna.study import best_or_front, summary_counts

    counts = summary_counts(study)
    states = ", ".join(f"{n} {s}" for s, n in sorted(counts["states"].items()))
    print(f"\nStudy {study.study_name!r}: {states}")
    front = best_or_front(study)
    title = "Best trial" if len(study.directions) == 1 else "Pareto-optimal feasible trials"
    shown = list(dict.fromkeys([*config.metric_names, "accuracy", "flops", "params",
                                "latency", "memory"]))
    if front:
        print(f"{title} ({len(front)}):")
        rows = [["trial", *shown]]
        for t in front:
            metrics = {**t.user_attrs.get("metrics", {}),
                       **dict(zip(config.metric_names, t.values or [], strict=False))}
            rows.append([str(t.number), *(_fmt(m, metrics.get(m)) for m in shown)])
        print(_table(rows))
    else:
        print(f"{title}: none yet (no feasible completed trial)")
    print(f"\nStored in {mask_url(storage_url)} as study {study.study_name!r}.")
    print(f"Inspect it: {dashboard_command(storage_url)}")


def _cmd_run(args: argparse.Namespace) -> int:
    config = _load(args)
    from neuromosaic_optuna.objective import Objective
    from neuromosaic_optuna.storage import make_storage, resolve_storage_url

    url = resolve_storage_url(args.storage)
    objective = Objective(config)
    objective.preflight()  # a missing dataset fails before any storage is touched
    storage = make_storage(url)
    import optuna

    from neuromosaic_optuna.study import run_study, run_workers

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.workers > 1:
        if url.startswith("sqlite:///:memory:"):
            raise ConfigError("--storage", "an in-memory database cannot be shared by workers")
        study = run_workers(config, storage_url=url, study_name=args.study_name,
                            workers=args.workers)
    else:
        study = run_study(config, storage=storage, study_name=args.study_name,
                          objective=objective, show_progress_bar=not args.no_progress)
    _print_results(study, config, url)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    config = _load(args)
    from neuromosaic_optuna.objective import Objective
    from neuromosaic_optuna.storage import make_storage, mask_url, resolve_storage_url
    from neuromosaic_optuna.study import create_study, work

    url = resolve_storage_url(args.storage)
    objective = Objective(config)
    objective.preflight()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = create_study(config, storage=make_storage(url), study_name=args.study_name)
    ran = work(study, objective)
    print(f"worker ran {ran} trial(s) of study {study.study_name!r} in {mask_url(url)}; "
          "no open slot is left")
    return 0


def _cmd_studies(args: argparse.Namespace) -> int:
    files = sorted(STUDIES_DIR.glob("*.toml"))
    rows = [["study file", "description"]]
    for f in files:
        try:
            description = load_study_file(f).description
        except ConfigError as exc:
            description = f"(invalid: {exc})"
        rows.append([str(f.relative_to(STUDIES_DIR.parent)), description])
    print(_table(rows))
    return 0


_COMMANDS = {"run": _cmd_run, "worker": _cmd_worker, "studies": _cmd_studies}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neuromosaic`` command; returns the exit code.

    Example:
        >>> main(["run", "studies/no-such-file.toml"])
        2
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
        if args.command is None:
            parser.print_help()
            return 2
        return _COMMANDS[args.command](args)
    except _UsageError as exc:
        print(f"neuromosaic: error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"neuromosaic: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neuromosaic: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
