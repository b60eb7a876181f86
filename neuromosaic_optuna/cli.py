"""The ``neuromosaic`` command. Thin: parses arguments, calls the library, prints.

Every bad input (study file, flag, storage URL, dataset path) ends as one line on stderr,
``neuromosaic: error: <field>: <what to do>``, and exit code 2, before anything is written
to a storage. A run whose trials keep failing or diverging stops with one line naming the
likely cause and exit code 2 as well (the reason is stored on the study).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.resources
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from neuromosaic_optuna import __version__
from neuromosaic_optuna.config import ConfigError, StudyConfig, load_study_file

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["main"]


def _studies_dir() -> Traversable:
    """The shipped study files: package data ``neuromosaic_optuna.studies``, which the
    build maps to the repository's top-level ``studies/`` (pyproject ``package-dir``), so a
    wheel, an editable install and a source checkout read the same files."""
    try:
        return importlib.resources.files("neuromosaic_optuna.studies")
    except ModuleNotFoundError:  # a source checkout on sys.path, not installed
        return Path(__file__).resolve().parent.parent / "studies"


def _shipped_studies() -> list[Traversable]:
    folder = _studies_dir()
    if not folder.is_dir():
        return []
    return sorted((f for f in folder.iterdir()
                   if f.name.endswith(".toml") and f.is_file()), key=lambda f: f.name)


@contextlib.contextmanager
def _study_path(arg: str) -> Iterator[str | Path]:
    """A study file argument as a path: an existing path as given, else a bare name of a
    shipped study (``quickstart`` or ``quickstart.toml``), else the argument unchanged (the
    loader then names it as missing)."""
    if Path(arg).is_file() or "/" in arg or "\\" in arg:
        yield arg
        return
    for f in _shipped_studies():
        if arg in (f.name, f.name.removesuffix(".toml")):
            with importlib.resources.as_file(f) as path:
                yield path
            return
    yield arg


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
                     "studies. `neuromosaic studies` lists the shipped study files.")
    parser.add_argument("--version", action="version", version=f"neuromosaic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run (or resume) the study of a study file")
    run.add_argument("study_file", metavar="STUDY.toml")
    run.add_argument("--storage", help="Optuna storage URL (default: $NEUROMOSAIC_STORAGE, "
                     "else sqlite:///neuromosaic.db)")
    run.add_argument("--study-name", type=_study_name, help="default: the study's name and budget")
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
    _add_changed_space_arg(run)

    worker = sub.add_parser("worker", help="join a running study from another shell or "
                            "machine and work on its open trial slots")
    worker.add_argument("study_file", metavar="STUDY.toml")
    worker.add_argument("--storage", help="the shared study's storage URL (default: "
                        "$NEUROMOSAIC_STORAGE)")
    worker.add_argument("--study-name", type=_study_name,
                        help="default: the study's name and budget")
    worker.add_argument("--budget", help="a [budget.<name>] preset of the study file")
    worker.add_argument("--seed", type=_seed, help="seed of sampler, splits and training")
    worker.add_argument("--threads", type=_positive_int,
                        help="CPU threads of this worker's torch and BLAS pools (default: the "
                        "cores this process may run on); with N workers on one machine give "
                        "each cores / N")
    _add_heartbeat_args(worker)
    _add_artifact_arg(worker)
    _add_device_arg(worker)

    pareto = sub.add_parser("pareto", help="print a study's Pareto front, knee, hypervolume "
                            "and an operating point")
    _add_study_args(pareto)
    pareto.add_argument("--operating-point", metavar="METRIC<=BOUND", action="append",
                        default=[], help='e.g. "latency<=20ms" or "params<=1M" (repeatable)')

    insights = sub.add_parser("insights", help="the study's findings: effects with intervals, "
                              "claims only where they survive false-discovery control")
    _add_study_args(insights)
    insights.add_argument("--source-study", metavar="NAME",
                          help="for a transfer study: the source study's name in the same "
                          "storage (default: the study file's source study)")
    insights.add_argument("--bootstrap", type=_positive_int, default=1000, metavar="N",
                          help="bootstrap resamples and permutations per test (default 1000)")
    insights.add_argument("--json", action="store_true", help="print JSON instead of text")

    reeval = sub.add_parser("reevaluate", help="retrain the front's top trials with extra "
                            "seeds; store mean and spread; say whether the front changes")
    _add_study_args(reeval)
    reeval.add_argument("--top", type=_positive_int, default=5, metavar="K",
                        help="front trials to retrain, best first (default 5)")
    reeval.add_argument("--seeds", type=_positive_int, default=3, metavar="S",
                        help="extra training seeds per trial (default 3)")
    _add_device_arg(reeval)

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
    transfer.add_argument("--study-name", type=_study_name, help="target study name")
    transfer.add_argument("--budget", help="a [budget.<name>] preset of the target file")
    transfer.add_argument("--seed", type=_seed)
    transfer.add_argument("--n-trials", type=_positive_int)
    transfer.add_argument("--workers", type=_positive_int, default=1)
    transfer.add_argument("--selection", default="surrogate",
                          help="pareto, best, diverse, surrogate (default) or predictor (a "
                          "performance predictor on the cell encoding plus the target's "
                          "proxies; without proxies in the study file it ranks on the "
                          "encoding alone and says so)")
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


def _add_changed_space_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-changed-space", action="store_true",
                   help="run an existing study although the study file changed its search "
                   "space, objectives, dataset, resolution or model options (default: refused)")


def _add_heartbeat_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--heartbeat-interval", type=_positive_int, default=60, metavar="SECONDS",
                   help="heartbeat of running trials on databases and journal files (default "
                   "60); a "
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


def _study_name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("a study name cannot be empty; leave --study-name out "
                                         "for the study file's default")
    return text


def _add_study_args(p: argparse.ArgumentParser) -> None:
    """Arguments that locate an existing study: its file, storage, name and budget."""
    p.add_argument("study_file", metavar="STUDY.toml")
    p.add_argument("--storage", help="storage URL (default: $NEUROMOSAIC_STORAGE, else "
                   "sqlite:///neuromosaic.db)")
    p.add_argument("--study-name", type=_study_name, help="default: the study's name and budget")
    p.add_argument("--budget", help="a [budget.<name>] preset of the study file")
    p.add_argument("--seed", type=_seed, help=argparse.SUPPRESS)


def _open_study(args: argparse.Namespace) -> tuple[Any, StudyConfig, str]:
    """Load the existing study a command inspects (never creates one)."""
    config = _load(args)

    from neuromosaic_optuna.storage import resolve_storage_url
    from neuromosaic_optuna.study import study_name_for

    url = resolve_storage_url(args.storage)
    name = args.study_name or study_name_for(config)
    study = _load_existing(url, name, f"run `neuromosaic run {args.study_file}` first or "
                           "pass --study-name", _storage_options(args)
                           if hasattr(args, "heartbeat_interval") else {})
    return study, config, url


def _load_existing(url: str, name: str, fix: str, options: dict[str, Any],
                   field: str = "--storage") -> Any:
    """Load study ``name`` from ``url`` without creating the storage file or the study, and
    read every record once (a damaged storage is one line)."""
    import optuna

    from neuromosaic_optuna.storage import (
        make_storage,
        mask_url,
        sqlite_study_names,
        storage_file_missing,
    )

    missing = storage_file_missing(url)
    if missing is not None:
        raise ConfigError(field, f"{missing} does not exist (no study is stored there); "
                          "check the path")
    names = sqlite_study_names(url)
    if names is not None and name not in names:
        raise ConfigError("--study-name", f"no study {name!r} in {mask_url(url)}; {fix}")
    storage = make_storage(url, **options)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:  # (no dispose: a WAL checkpoint would rewrite the file's bytes)
        raise ConfigError("--study-name", f"no study {name!r} in {mask_url(url)}; {fix}") \
            from None
    except Exception as exc:  # noqa: BLE001 (damaged rows: every failure is one line)
        _close(storage)
        raise _damaged(url, name, exc) from None
    try:
        _read_all(study, url)
    except ConfigError:
        _close(storage)
        raise
    return study


def _close(storage: Any) -> None:
    """Close an RDB storage's connections (SQLite then removes its -wal/-shm files)."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def _damaged(url: str, name: str, exc: BaseException) -> ConfigError:
    from neuromosaic_optuna.storage import StorageError, _one_line, mask_url

    if isinstance(exc, ConfigError):
        return exc
    return StorageError(f"cannot read study {name!r} in {mask_url(url)} "
                        f"({exc.__class__.__name__}: {_one_line(exc, url)[:160]}); the storage "
                        "is damaged: restore it from a backup or choose another --storage")


def _read_all(study: Any, url: str) -> None:
    """Read every record of ``study`` once, so damaged rows (attribute JSON that does not
    parse, unknown states, broken distributions) fail here in one line, before any output
    or write."""
    from neuromosaic_optuna.storage import StorageError, mask_url

    try:
        n = len(study.directions)
        names = study.metric_names
        _ = study.user_attrs
        broken = (n == 0 or (names is not None and len(names) != n))
        for trial in study.get_trials(deepcopy=False):
            _ = (trial.params, trial.user_attrs, trial.system_attrs, trial.distributions,
                 trial.intermediate_values)
            broken = broken or (trial.values is not None and len(trial.values) != n)
    except Exception as exc:  # noqa: BLE001
        raise _damaged(url, study.study_name, exc) from None
    if broken:
        raise StorageError(f"cannot read study {study.study_name!r} in {mask_url(url)}: its "
                           "objectives and values do not match (the storage is damaged); "
                           "restore it from a backup or choose another --storage")


def _check_existing_study(storage: Any, url: str, name: str) -> None:
    """Before a run writes to an existing study, make sure its records can be read."""
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=storage)
        _read_all(study, url)
    except KeyError:
        return  # a new study
    except Exception as exc:  # noqa: BLE001
        _close(storage)
        raise _damaged(url, name, exc) from None


def _load(args: argparse.Namespace) -> StudyConfig:
    overrides: dict[str, Any] = {"max_trials": getattr(args, "n_trials", None),
                                 "seed": args.seed,
                                 "artifact_dir": getattr(args, "artifact_dir", None),
                                 "device": getattr(args, "device", None)}
    with _study_path(args.study_file) as path:
        config = load_study_file(path, budget=args.budget, overrides=overrides)
    if hasattr(args, "artifact_dir") and config.artifact_dir is None:
        config = config.with_overrides(artifact_dir=DEFAULT_ARTIFACT_DIR)
    return config


def _fmt(metric: str, value: Any) -> str:
    from neuromosaic_optuna.units import format_metric

    return format_metric(metric, value, compact=True)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                       enumerate(zip(r, widths, strict=True))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _print_results(study: Any, config: StudyConfig, storage_url: str) -> None:
    from neuromosaic_optuna.record import metric_value
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
            rows.append([str(t.number),
                         *(_fmt(m, metric_value(t, m, config.metric_names)) for m in shown)])
        print(_table(rows))
    else:
        print(f"{title}: none yet (no feasible completed trial)")
    print(f"\nStored in {mask_url(storage_url)} as study {study.study_name!r}.")
    print(f"Inspect it: {dashboard_command(storage_url)}")


def _cap_workers(args: argparse.Namespace, config: StudyConfig) -> None:
    """No more workers than trials; a warning (one line) above the CPU count."""
    from neuromosaic_optuna.study import usable_cores

    if args.workers > config.max_trials:
        args.workers = config.max_trials
    cpus = usable_cores()
    if args.workers > cpus:
        print(f"neuromosaic: warning: --workers {args.workers} is more than the {cpus} CPU "
              "cores; the workers will share them", file=sys.stderr)


def _cmd_run(args: argparse.Namespace) -> int:
    config = _load(args)
    from neuromosaic_optuna.storage import make_storage, resolve_storage_url
    from neuromosaic_optuna.study import preflight

    url = resolve_storage_url(args.storage)
    _cap_workers(args, config)
    devices = _devices(args.devices)
    objective = preflight(config)  # bad input fails before any storage is touched
    storage = make_storage(url, **_storage_options(args))
    print(objective.device_line(), flush=True)  # stdout: stderr is for the one-line errors
    import optuna

    from neuromosaic_optuna.study import run_study, run_workers, study_name_for

    _check_existing_study(storage, url, args.study_name or study_name_for(config))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.workers > 1 and isinstance(storage, optuna.storages.InMemoryStorage):
        raise ConfigError("--storage", "an in-memory database cannot be shared by workers")
    if config.transfer_strategy:
        return _transfer(args, config, url, storage, source=None)
    if args.workers > 1:
        study = run_workers(config, storage_url=url, study_name=args.study_name,
                            workers=args.workers, storage_options=_storage_options(args),
                            objective=objective,
                            allow_changed_space=args.allow_changed_space, devices=devices)
    else:
        study = run_study(config, storage=storage, study_name=args.study_name,
                          objective=objective, show_progress_bar=not args.no_progress,
                          allow_changed_space=args.allow_changed_space)
    _print_results(study, config, url)
    return 0


def _transfer(args: argparse.Namespace, config: StudyConfig, url: str, storage: Any, *,
              source: str | None, source_storage: str | None = None,
              selection: str = "surrogate", top_k: int = 10) -> int:
    from neuromosaic_optuna.objective import Objective
    from neuromosaic_optuna.transfer import run_transfer, source_config
    from neuromosaic_optuna.warmstart import SELECTIONS

    if selection not in SELECTIONS:
        raise ConfigError("--selection", f"expected one of {', '.join(SELECTIONS)}, got "
                          f"{selection!r}")
    if source is None:
        from neuromosaic_optuna.study import preflight

        preflight(source_config(config), Objective(source_config(config)))
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
    from neuromosaic_optuna.study import preflight

    url = resolve_storage_url(args.storage)
    _cap_workers(args, config)
    preflight(config, Objective(config))
    source_storage = None
    if args.source_storage:
        source_storage = resolve_storage_url(args.source_storage)
    # The source must exist before anything is written (an unreachable one fails in one line).
    _load_existing(source_storage or url, args.source, "name an existing study with --from "
                   "(and --source-storage if it lives elsewhere)", {},
                   "--source-storage" if args.source_storage else "--from")
    storage = make_storage(url, **_storage_options(args))
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return _transfer(args, config, url, storage, source=args.source,
                     source_storage=source_storage, selection=args.selection,
                     top_k=args.top_k)


def _cmd_report(args: argparse.Namespace) -> int:
    study, config, _ = _open_study(args)
    from neuromosaic_optuna.report import write_report

    try:
        path = write_report(study, args.out, config=config,
                            operating_point=args.operating_point)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise  # a full disk has its own line
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != args.out else ""
        raise ConfigError("--out", f"cannot write {args.out}{where}: "
                          f"{exc.strerror or exc.__class__.__name__}; choose another file, "
                          "e.g. --out report.html") from None
    print(f"wrote {path} (self-contained: open it in any browser, offline)")
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    _check_port_free(args.host, args.port)  # before the storage is opened or notes written
    study, config, url = _open_study(args)
    from neuromosaic_optuna.report import annotate_dashboard, serve_dashboard

    annotate_dashboard(study, config=config)
    artifact_dir = Path(config.artifact_dir or DEFAULT_ARTIFACT_DIR)
    serve_dashboard(url, host=args.host, port=args.port,
                    artifact_dir=artifact_dir if artifact_dir.is_dir() else None)
    return 0


def _check_port_free(host: str, port: int) -> None:
    """Raise a ConfigError when ``host:port`` cannot be bound (in use, or no such address)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError("--host", f"cannot use {host!r} ({exc.strerror or exc}); "
                          "e.g. 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError("--port", f"cannot listen on {host}:{port} "
                              f"({exc.strerror or exc}); choose another with --port") from None


def _cmd_worker(args: argparse.Namespace) -> int:
    config = _load(args)
    from neuromosaic_optuna.objective import Objective
    from neuromosaic_optuna.storage import make_storage, mask_url, resolve_storage_url
    from neuromosaic_optuna.study import (
        create_study,
        preflight,
        study_name_for,
        usable_cores,
        work,
        worker_threads,
    )

    url = resolve_storage_url(args.storage)
    objective = preflight(config, Objective(config))
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = args.study_name or study_name_for(config)
    # A worker joins a study that `run` made: it never creates a storage or a study.
    _load_existing(url, name, f"start it with `neuromosaic run {args.study_file}` (same "
                   "--storage and --study-name) first", _storage_options(args))
    study = create_study(config, storage=make_storage(url, **_storage_options(args)),
                         study_name=name)
    print(objective.device_line(), flush=True)  # stdout: stderr is for the one-line errors
    from neuromosaic_optuna.study import with_pruning

    with worker_threads(args.threads or usable_cores()):
        ran = work(study, objective, callbacks=with_pruning(config, study, objective))
    print(f"worker ran {ran} trial(s) of study {study.study_name!r} in {mask_url(url)}; "
          "no open slot is left")
    return 0


def _print_front(study: Any, config: StudyConfig, points: Sequence[str] = ()) -> None:
    """The front with ranks and the knee, the hypervolume, infeasible counts, operating points."""
    from neuromosaic_optuna.pareto import operating_point, pareto_info, parse_operating_point
    from neuromosaic_optuna.record import metrics_of

    parsed = [parse_operating_point(p) for p in points]  # bad text fails before printing
    info = pareto_info(study)
    names = info.metric_names
    extra = [m for m in ("accuracy", "flops", "params", "latency", "memory") if m not in names]
    rows = [["trial", "rank", *names, *extra, ""]]
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    for i in info.front:
        number = int(info.trial_numbers[i])
        metrics = metrics_of(by_number[number])
        rows.append([str(number), str(int(info.ranks[i])),
                     *(_fmt(m, v) for m, v in zip(names, info.values[i], strict=True)),
                     *(_fmt(m, metrics.get(m)) for m in extra),
                     "knee" if number == info.knee_trial else ""])
    n = len(info.trial_numbers)
    infeasible = int((~info.feasible).sum())
    print(f"Pareto front of {study.study_name!r}: {len(info.front)} of {n} completed trials "
          f"({infeasible} infeasible, {int(info.dominated.sum())} feasible but dominated)")
    from collections import Counter

    from neuromosaic_optuna.record import stopped_rung

    rungs = sorted(r for t in by_number.values() if (r := stopped_rung(t)) is not None)
    if rungs:
        at = ", ".join(f"{c} at epoch {r}" for r, c in sorted(Counter(rungs).items()))
        print(f"stopped early by successive halving (PRUNED, not on the front): {at}")
    if info.non_finite:
        print(f"note: {len(info.non_finite)} completed trial(s) left out because a value is "
              f"NaN or infinite: {', '.join(map(str, info.non_finite[:20]))}"
              + (" ..." if len(info.non_finite) > 20 else ""))
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


def _cmd_insights(args: argparse.Namespace) -> int:
    study, config, url = _open_study(args)
    from neuromosaic_optuna.insights import study_insights, transfer_insights

    seed = config.seed  # --seed already overrides it in _load
    found = study_insights(study, seed=seed, n_boot=args.bootstrap)
    pieces = [found]
    if config.source_task is not None or args.source_study:
        from neuromosaic_optuna.transfer import source_study_name

        name = args.source_study or source_study_name(config, study.study_name)
        source = _load_existing(url, name, "pass --source-study NAME", {},
                                field="--source-study")
        pieces.append(transfer_insights(source, study, seed=seed, n_boot=args.bootstrap))
    if args.json:
        print("[" + ",\n".join(p.to_json() for p in pieces) + "]")
    else:
        for piece in pieces:
            print("\n".join(piece.lines()))
    return 0


def _cmd_reevaluate(args: argparse.Namespace) -> int:
    study, config, _ = _open_study(args)
    from neuromosaic_optuna.reevaluate import reevaluate

    def progress(number: int, seed: int) -> None:
        print(f"retraining trial {number} with seed {seed}", flush=True)

    report = reevaluate(study, config, top=args.top, seeds=args.seeds, on_run=progress)
    print("\n".join(report.lines()))
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
    from neuromosaic_optuna.objective import Objective
    from neuromosaic_optuna.robustness import (
        DEFAULT_PERTURBATIONS,
        ROBUSTNESS_METRICS,
        evaluate_robustness,
    )

    objective = Objective(config)
    trials = _select_trials(study, args.trials)
    if not trials:
        raise ConfigError("--trials", "the study has no completed feasible trial yet")
    models = [(t, objective.load_model(t)) for t in trials]  # fail before any evaluation
    perturbations = config.perturbations or DEFAULT_PERTURBATIONS
    names = list(ROBUSTNESS_METRICS)
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
    rows = [["study", "description"]]
    for f in _shipped_studies():
        try:
            with importlib.resources.as_file(f) as path:
                description = load_study_file(path).description
        except ConfigError as exc:
            description = f"(invalid: {exc})"
        rows.append([f.name, description])
    print(_table(rows))
    return 0


_COMMANDS = {"run": _cmd_run, "worker": _cmd_worker, "pareto": _cmd_pareto,
             "insights": _cmd_insights, "reevaluate": _cmd_reevaluate,
             "robustness": _cmd_robustness, "transfer": _cmd_transfer, "report": _cmd_report,
             "dashboard": _cmd_dashboard, "studies": _cmd_studies}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neuromosaic`` command; returns the exit code.

    Example:
        >>> main(["run", "studies/no-such-file.toml"])
        2
    """
    from neuromosaic_optuna.study import Interrupted, raise_on_sigterm

    parser = _build_parser()
    args: argparse.Namespace | None = None
    try:
        with raise_on_sigterm():
            args = parser.parse_args(list(argv) if argv is not None else None)
            if args.command is None:
                parser.print_help()
                return 2
            _check_printable(args)
            return _COMMANDS[args.command](args)
    except (_UsageError, ConfigError) as exc:
        _say(f"neuromosaic: error: {exc}")
        return 2
    except (KeyboardInterrupt, Interrupted) as exc:
        import signal

        signum = exc.signum if isinstance(exc, Interrupted) else int(signal.SIGINT)
        _say(f"neuromosaic: interrupted by {signal.Signals(signum).name}; a running trial was "
             "marked failed; run the same command again to resume")
        return 128 + signum
    except BrokenPipeError:
        _silence_stdout()
        _say("neuromosaic: error: output: the reader of the output closed it (e.g. `| head`); "
             "nothing more was printed")
        return 2
    except Exception as exc:
        line = _edge_error(exc, args)
        if line is None:
            raise
        _say(f"neuromosaic: error: {line}")
        return 2


def _say(line: str) -> None:
    """Print one line on stderr, escaping what its encoding cannot show."""
    stream = sys.stderr
    encoding = getattr(stream, "encoding", None) or "utf-8"
    text = line.encode(encoding, "backslashreplace").decode(encoding, "replace")
    with contextlib.suppress(BrokenPipeError, ValueError):  # stderr closed: nothing to tell
        print(text, file=stream, flush=True)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's exit flush does not raise BrokenPipeError again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (tests)
        pass


def _check_printable(args: argparse.Namespace) -> None:
    """A study name the terminal cannot show fails before anything runs (it is printed)."""
    name = getattr(args, "study_name", None)
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    if name is None:
        return
    try:
        name.encode(encoding)
    except UnicodeEncodeError:
        raise ConfigError("--study-name", f"{name!a} cannot be shown in this terminal's "
                          f"encoding ({encoding}); use a plain name or set "
                          "PYTHONIOENCODING=utf-8") from None


def _edge_error(exc: Exception, args: argparse.Namespace | None) -> str | None:
    """One line for a failure at the edges of a run (damaged storage, full disk, a port in
    use, an unwritable output, an unencodable name), or None for a genuine bug (which keeps
    its traceback). The storage URL is shown masked."""
    import errno
    import json
    import sqlite3

    import optuna

    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover
        SQLAlchemyError = sqlite3.Error  # type: ignore[misc,assignment]  # noqa: N806
    from neuromosaic_optuna.storage import _one_line, mask_url, resolve_storage_url

    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    url = resolve_storage_url(getattr(args, "storage", None))
    for e in chain:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            where = f" writing {e.filename}" if e.filename else ""
            return (f"disk full{where} ({e.strerror}); free some space and run the same "
                    "command again (finished trials are kept)")
    for e in chain:
        if isinstance(e, (SQLAlchemyError, sqlite3.Error, json.JSONDecodeError,
                          optuna.exceptions.StorageInternalError)):
            return (f"--storage: cannot read {mask_url(url)}: "
                    f"{_one_line(e, url)}; the storage is damaged or not an Optuna storage: "
                    "restore it from a backup or use another --storage")
    if isinstance(exc, UnicodeEncodeError):
        encoding = getattr(sys.stdout, "encoding", None) or "?"
        return (f"output: this terminal's encoding ({encoding}) cannot show a name of the "
                "study; set PYTHONIOENCODING=utf-8 (or a UTF-8 locale)")
    if isinstance(exc, OSError):
        if exc.errno == errno.EADDRINUSE:
            return "--port: the address is already in use; choose another with --port"
        target = f"{exc.filename}: " if exc.filename else ""
        return f"{target}{exc.strerror or exc.__class__.__name__}"
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
