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


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"expected 0..1000, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected 0..65535, got {value}")
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
    _add_device_arg(run)
    run.add_argument("--devices", metavar="cuda:0,cuda:1",
                     help="with --workers: place the workers round-robin on these devices "
                     "(default: every CUDA GPU when there are several and the device is auto "
                     "or cuda)")
    _add_heartbeat_args(run)
    _add_artifact_arg(run)
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    worker = sub.add_parser("worker", help="join a running study from another shell or "
                            "machine and work on its open trial slots")
    worker.add_argument("study_file", metavar="STUDY.toml")
    worker.add_argument("--storage", help="the shared study's storage URL (default: "
                        "$NEUROMOSAIC_STORAGE)")
    worker.add_argument("--study-name", help="default: the study's name and budget")
    worker.add_argument("--budget", help="a [budget.<name>] preset of the study file")
    worker.add_argument("--seed", type=_seed, help="seed of sampler, splits and training")
    _add_heartbeat_args(worker)
    _add_artifact_arg(worker)
    _add_device_arg(worker)

    pareto = sub.add_parser("pareto", help="print a study's Pareto front, knee, hypervolume "
                            "and an operating point")
    _add_study_args(pareto)
    pareto.add_argument("--operating-point", metavar="METRIC<=BOUND", action="append",
                        default=[], help='e.g. "latency<=20ms" or "params<=1M" (repeatable)')

    robust = sub.add_parser("robustness", help="evaluate trained trials of a study under the "
                            "study's perturbations, without retraining")
    _add_study_args(robust)
    _add_artifact_arg(robust)
    _add_device_arg(robust)
    robust.add_argument("--trials", default="pareto", metavar="pareto|best|N,M",
                        help="which trials: the Pareto front (default), the best one, or "
                        "trial numbers")
    robust.add_argument("--split", choices=("val", "test"), default="val",
                        help="validation split (default: what the search measured and "
                        "optimised) or the test split (reported only, never searched on)")

    transfer = sub.add_parser("transfer", help="warm-start a target study from an existing "
                              "source study, then run the target")
    transfer.add_argument("--from", dest="source", required=True, metavar="SOURCE_STUDY",
                          help="name of the source study")
    transfer.add_argument("--to", dest="study_file", required=True, metavar="TARGET.toml")
    transfer.add_argument("--source-storage", help="storage of the source study (default: "
                          "the target's)")
    transfer.add_argument("--storage", help="target storage URL (default: "
                          "$NEUROMOSAIC_STORAGE, else sqlite:///neuromosaic.db)")
    transfer.add_argument("--study-name", help="target study name")
    transfer.add_argument("--budget", help="a [budget.<name>] preset of the target file")
    transfer.add_argument("--seed", type=_seed)
    transfer.add_argument("--n-trials", type=_positive_int)
    transfer.add_argument("--workers", type=_positive_int, default=1)
    transfer.add_argument("--selection", default="surrogate",
                          help="pareto, best, diverse or surrogate (default)")
    transfer.add_argument("--top-k", type=_positive_int, default=10,
                          help="trials enqueued from the source (default 10)")
    transfer.add_argument("--no-progress", action="store_true")
    _add_heartbeat_args(transfer)

    report = sub.add_parser("report", help="write a self-contained HTML report of a study")
    _add_study_args(report)
    report.add_argument("--out", default="report.html", help="output file (report.html)")
    report.add_argument("--operating-point", metavar="METRIC<=BOUND",
                        help='mark the best trial under a bound, e.g. "latency<=20ms"')

    dashboard = sub.add_parser("dashboard", help="annotate a study and open optuna-dashboard "
                               "on it (127.0.0.1)")
    _add_study_args(dashboard)
    _add_artifact_arg(dashboard)
    dashboard.add_argument("--host", default="127.0.0.1",
                           help="address to listen on (default 127.0.0.1: this machine only)")
    dashboard.add_argument("--port", type=_port, default=8080)

    sub.add_parser("studies", help="list the shipped study files")
    return parser


DEFAULT_ARTIFACT_DIR = "neuromosaic-artifacts"


def _add_artifact_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artifact-dir", default=None, metavar="DIR",
                   help="where trained weights are kept as Optuna artifacts (default: the "
                   f"study file's artifact_dir, else ./{DEFAULT_ARTIFACT_DIR})")


def _add_heartbeat_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--heartbeat-interval", type=_positive_int, default=60, metavar="SECONDS",
                   help="heartbeat of running trials on database storages (default 60); a "
                   "trial silent for twice as long is failed and retried")
    p.add_argument("--max-retry", type=_non_negative_int, default=3,
                   help="how often a trial whose worker died is retried (default 3)")


def _storage_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"heartbeat_interval": args.heartbeat_interval, "max_retry": args.max_retry}


def _add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: "
                   "$NEUROMOSAIC_DEVICE, else the study file's device, else auto: the first "
                   "CUDA GPU, else MPS, else the CPU)")


def _devices(text: str | None) -> list[str] | None:
    """``--devices`` as a list, each checked to exist on this machine (before any storage)."""
    if not text:
        return None
    from neuromosaic_optuna.training import resolve_device

    out = []
    for spec in (s.strip().lower() for s in text.split(",")):
        try:
            resolve_device(spec)
        except ConfigError as exc:
            raise ConfigError("--devices", exc.message) from None
        out.append(spec)
    return out


def _add_study_args(p: argparse.ArgumentParser) -> None:
    """Arguments that locate an existing study: its file, storage, name and budget."""
    p.add_argument("study_file", metavar="STUDY.toml")
    p.add_argument("--storage", help="storage URL (default: $NEUROMOSAIC_STORAGE, else "
                   "sqlite:///neuromosaic.db)")
    p.add_argument("--study-name", help="default: the study's name and budget")
    p.add_argument("--budget", help="a [budget.<name>] preset of the study file")
    p.add_argument("--seed", type=_seed, help=argparse.SUPPRESS)


def _open_study(args: argparse.Namespace) -> tuple[Any, StudyConfig, str]:
    """Load the existing study a command inspects (never creates one)."""
    config = _load(args)
    import optuna

    from neuromosaic_optuna.storage import make_storage, mask_url, resolve_storage_url
    from neuromosaic_optuna.study import study_name_for

    url = resolve_storage_url(args.storage)
    name = args.study_name or study_name_for(config)
    storage = make_storage(url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise ConfigError("--study-name", f"no study {name!r} in {mask_url(url)}; run "
                          f"`neuromosaic run {args.study_file}` first or pass --study-name") \
            from None
    return study, config, url


def _load(args: argparse.Namespace) -> StudyConfig:
    overrides: dict[str, Any] = {"max_trials": getattr(args, "n_trials", None),
                                 "seed": args.seed,
                                 "artifact_dir": getattr(args, "artifact_dir", None),
                                 "device": getattr(args, "device", None)}
    config = load_study_file(args.study_file, budget=args.budget, overrides=overrides)
    if hasattr(args, "artifact_dir") and config.artifact_dir is None:
        config = config.with_overrides(artifact_dir=DEFAULT_ARTIFACT_DIR)
    return config


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
    if len(study.directions) > 1:
        _print_front(study, config)
        print(f"\nStored in {mask_url(storage_url)} as study {study.study_name!r}.")
        print(f"Inspect it: {dashboard_command(storage_url)}")
        return
    front = best_or_front(study)
    title = "Best trial"
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
    devices = _devices(args.devices)
    objective.preflight()  # a missing dataset fails before any storage is touched
    storage = make_storage(url, **_storage_options(args))
    print(objective.device_line(), file=sys.stderr)
    import optuna

    from neuromosaic_optuna.study import run_study, run_workers

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.workers > 1 and isinstance(storage, optuna.storages.InMemoryStorage):
        raise ConfigError("--storage", "an in-memory database cannot be shared by workers")
    if config.transfer_strategy:
        return _transfer(args, config, url, storage, source=None)
    if args.workers > 1:
        study = run_workers(config, storage_url=url, study_name=args.study_name,
                            workers=args.workers, storage_options=_storage_options(args),
                            objective=objective, devices=devices)
    else:
        study = run_study(config, storage=storage, study_name=args.study_name,
                          objective=objective, show_progress_bar=not args.no_progress)
    _print_results(study, config, url)
    return 0


def _transfer(args: argparse.Namespace, config: StudyConfig, url: str, storage: Any, *,
              source: str | None, source_storage: str | None = None,
              selection: str = "surrogate", top_k: int = 10) -> int:
    from neuromosaic_optuna.objective import Objective
    from neuromosaic_optuna.warmstart import SELECTIONS, run_transfer, source_config

    if selection not in SELECTIONS:
        raise ConfigError("--selection", f"expected one of {', '.join(SELECTIONS)}, got "
                          f"{selection!r}")
    if source is None:
        Objective(source_config(config)).preflight()
    result = run_transfer(config, storage=url if args.workers > 1 else storage,
                          study_name=args.study_name, source=source,
                          source_storage=source_storage, selection=selection, top_k=top_k,
                          workers=args.workers, show_progress_bar=not args.no_progress)
    print(result.report.summary())
    _print_results(result.target, config, url)
    return 0


def _cmd_transfer(args: argparse.Namespace) -> int:
    config = _load(args)
    from neuromosaic_optuna.objective import Objective
    from neuromosaic_optuna.storage import make_storage, resolve_storage_url

    if not config.transfer_strategy:
        config = config.with_overrides(transfer_strategy="warm_start")
    url = resolve_storage_url(args.storage)
    Objective(config).preflight()
    storage = make_storage(url, **_storage_options(args))
    source_storage = None
    if args.source_storage:
        source_storage = resolve_storage_url(args.source_storage)
        make_storage(source_storage)  # an unreachable source fails here, in one line
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return _transfer(args, config, url, storage, source=args.source,
                     source_storage=source_storage, selection=args.selection,
                     top_k=args.top_k)


def _cmd_report(args: argparse.Namespace) -> int:
    study, config, _ = _open_study(args)
    from neuromosaic_optuna.report import write_report

    path = write_report(study, args.out, config=config, operating_point=args.operating_point)
    print(f"wrote {path} (self-contained: open it in any browser, offline)")
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    study, config, url = _open_study(args)
    from neuromosaic_optuna.report import annotate_dashboard, serve_dashboard

    annotate_dashboard(study, config=config)
    artifact_dir = Path(config.artifact_dir or DEFAULT_ARTIFACT_DIR)
    serve_dashboard(url, host=args.host, port=args.port,
                    artifact_dir=artifact_dir if artifact_dir.is_dir() else None)
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
    study = create_study(config, storage=make_storage(url, **_storage_options(args)),
                         study_name=args.study_name)
    print(objective.device_line(), file=sys.stderr)
    from neuromosaic_optuna.study import with_pruning

    ran = work(study, objective, callbacks=with_pruning(config, study, objective))
    print(f"worker ran {ran} trial(s) of study {study.study_name!r} in {mask_url(url)}; "
          "no open slot is left")
    return 0


def _print_front(study: Any, config: StudyConfig, points: Sequence[str] = ()) -> None:
    """The front with ranks and the knee, the hypervolume, infeasible counts, operating points."""
    from neuromosaic_optuna.pareto import operating_point, pareto_info, parse_operating_point

    parsed = [parse_operating_point(p) for p in points]  # bad text fails before printing
    info = pareto_info(study)
    names = info.metric_names
    extra = [m for m in ("accuracy", "flops", "params", "latency", "memory") if m not in names]
    rows = [["trial", "rank", *names, *extra, ""]]
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    for i in info.front:
        number = int(info.trial_numbers[i])
        metrics = by_number[number].user_attrs.get("metrics", {})
        rows.append([str(number), str(int(info.ranks[i])),
                     *(_fmt(m, v) for m, v in zip(names, info.values[i], strict=True)),
                     *(_fmt(m, metrics.get(m)) for m in extra),
                     "knee" if number == info.knee_trial else ""])
    n = len(info.trial_numbers)
    infeasible = int((~info.feasible).sum())
    print(f"Pareto front of {study.study_name!r}: {len(info.front)} of {n} completed trials "
          f"({infeasible} infeasible, {int(info.dominated.sum())} feasible but dominated)")
    if len(info.front):
        print(_table(rows))
        ref = ", ".join(_fmt(m, v) for m, v in zip(names, info.reference_point, strict=True))
        print(f"knee: trial {info.knee_trial}; hypervolume: {info.hypervolume:.6g} "
              f"(reference point: {ref})")
    for point in parsed:
        best = operating_point(study, point)
        if best is None:
            print(f"operating point {point}: no feasible trial meets it")
        else:
            shown = ", ".join(f"{m}={_fmt(m, v)}" for m, v in
                              zip(names, best.values, strict=True))
            print(f"operating point {point}: trial {best.number} ({shown})")


def _cmd_pareto(args: argparse.Namespace) -> int:
    study, config, _ = _open_study(args)
    _print_front(study, config, args.operating_point)
    return 0


def _select_trials(study: Any, spec: str) -> list[Any]:
    from optuna.trial import TrialState

    from neuromosaic_optuna.study import best_or_front

    done = {t.number: t for t in study.get_trials(states=(TrialState.COMPLETE,))}
    if spec == "pareto":
        return best_or_front(study)
    if spec == "best":
        return best_or_front(study)[:1]
    try:
        numbers = [int(n) for n in spec.split(",") if n.strip()]
    except ValueError:
        raise ConfigError("--trials", f"expected pareto, best or trial numbers like 3,7; "
                          f"got {spec!r}") from None
    missing = [n for n in numbers if n not in done]
    if missing or not numbers:
        raise ConfigError("--trials", f"no completed trial numbered {missing or spec}")
    return [done[n] for n in numbers]


def _cmd_robustness(args: argparse.Namespace) -> int:
    study, config, _ = _open_study(args)
    from neuromosaic_optuna.data import split_tensors
    from neuromosaic_optuna.objective import DEFAULT_PERTURBATIONS, Objective

    objective = Objective(config)
    trials = _select_trials(study, args.trials)
    if not trials:
        raise ConfigError("--trials", "the study has no completed feasible trial yet")
    models = [(t, objective.load_model(t)) for t in trials]  # fail before any evaluation
    from neuromosaic_optuna.robustness import evaluate_robustness

    perturbations = config.perturbations or DEFAULT_PERTURBATIONS
    names = ["clean_accuracy", "noise_accuracy", "corrupt_accuracy", "adversarial_accuracy",
             "corruption_resistance", "adversarial_robustness", "stability_index"]
    rows = [["trial", *names]]
    for trial, model in models:
        splits = objective.dataset(objective.input_resolution(trial.params))
        x, y = split_tensors(splits.val if args.split == "val" else splits.test,
                             seed=config.seed)
        result = evaluate_robustness(model, x, y, perturbations, seed=config.seed)
        key = "robustness" if args.split == "val" else "robustness:test"
        study.set_user_attr(f"{key}:{trial.number}",
                            {"metrics": dict(result.metrics), "details": dict(result.details)})
        rows.append([str(trial.number), *(f"{result.metrics[n]:.4f}" if n in result.metrics
                                          else "-" for n in names)])
    split, key = (("validation", "robustness") if args.split == "val"
                  else ("test", "robustness:test"))
    print(f"Robustness of {len(models)} trial(s) of {study.study_name!r} on the {split} split "
          f"(stored as study user attributes {key}:<trial>):")
    print(_table(rows))
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


_COMMANDS = {"run": _cmd_run, "worker": _cmd_worker, "pareto": _cmd_pareto,
             "robustness": _cmd_robustness, "transfer": _cmd_transfer, "report": _cmd_report,
             "dashboard": _cmd_dashboard, "studies": _cmd_studies}


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
