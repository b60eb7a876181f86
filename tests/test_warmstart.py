"""Warm starts: mapping, selection, provenance, claims under concurrency, transfer runs."""

from __future__ import annotations

import itertools
import math
import multiprocessing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial

import neuromosaic_optuna as nm
from neuromosaic_optuna.config import load_config
from neuromosaic_optuna.models.nasbench201 import EDGES, OPS, NASBench201Table
from neuromosaic_optuna.plots import plot_search_progress, search_progress
from neuromosaic_optuna.space import SearchSpace
from neuromosaic_optuna.storage import make_storage
from neuromosaic_optuna.study import count_finished, open_slots, work
from neuromosaic_optuna.transfer import run_transfer, source_config
from neuromosaic_optuna.warmstart import _selection, cost_profiler, warm_start

ROOT = Path(__file__).resolve().parent.parent
TRANSFER = ROOT / "studies" / "transfer_cifar10_to_imagenet.toml"

optuna.logging.set_verbosity(optuna.logging.WARNING)

SOURCE_DISTS = {
    "depth": IntDistribution(1, 20),
    "width": FloatDistribution(0.1, 4.0),
    "act": CategoricalDistribution(["relu", "gelu", "silu"]),
    "lr": FloatDistribution(1e-6, 1.0, log=True),
    "extra": IntDistribution(0, 5),
}
TARGET_SPACE = {
    "depth": {"low": 2, "high": 8, "step": 2},
    "width": {"low": 0.5, "high": 2.0, "step": 0.25},
    "act": ["relu", "gelu"],
    "lr": {"low": 1e-4, "high": 1e-1, "log": True},
    "new_param": ["a", "b", "c"],
}


def _source(values_params: list[tuple[float, dict[str, Any]]], *, storage: Any = None,
            name: str | None = None, dataset: str | None = "cifar10") -> optuna.Study:
    study = optuna.create_study(direction="maximize", storage=storage, study_name=name)
    study.set_metric_names(["accuracy"])
    if dataset is not None:
        study.set_user_attr("neuromosaic", {"dataset": dataset})
    study.add_trials([create_trial(value=v, params=p,
                                   distributions={k: SOURCE_DISTS[k] for k in p},
                                   user_attrs={"status": "ok"})
                      for v, p in values_params])
    return study


MIXED = [
    (0.9, {"depth": 17, "width": 3.3, "act": "silu", "lr": 0.5, "extra": 2}),
    (0.8, {"depth": 4, "width": 0.62, "act": "gelu", "lr": 1e-5, "extra": 1}),
    (0.7, {"depth": 6, "width": 1.13, "act": "relu", "lr": 0.003}),
    (0.6, {"depth": 19, "width": 2.9, "act": "relu", "lr": 0.7}),  # maps like the first
]


def _fixed(study: optuna.Study) -> list[dict[str, Any]]:
    return [t.system_attrs["fixed_params"] for t in study.get_trials(
        deepcopy=False, states=(TrialState.WAITING,))]


# --------------------------------------------------------------------------- mapping


def test_mapping_clips_snaps_drops_and_leaves_missing_params_to_the_sampler() -> None:
    source = _source(MIXED)
    target = optuna.create_study(direction="maximize")
    space = SearchSpace(TARGET_SPACE)
    report = warm_start(target, source, space=space, top_k=10, selection="best")

    assert [e["params"] for e in report.enqueued] == [
        {"depth": 8, "width": 2.0, "lr": 0.1},  # clipped; silu dropped; extra dropped
        {"depth": 4, "width": 0.5, "act": "gelu", "lr": 1e-4},  # snapped/clipped; kept gelu
        {"depth": 6, "width": 1.25, "act": "relu", "lr": 0.003},  # 1.13 snaps to 1.25
        {"depth": 8, "width": 2.0, "act": "relu", "lr": 0.1},  # differs from the first by act
    ]
    assert report.skipped_duplicate == 0
    assert _fixed(target) == [e["params"] for e in report.enqueued]

    # Every enqueued trial runs as it is: values valid in the target, new_param sampled.
    target.optimize(lambda t: float(space.suggest(t)["depth"]), n_trials=4)
    for trial, entry in zip(target.trials, report.enqueued, strict=True):
        assert trial.state == TrialState.COMPLETE
        assert {k: trial.params[k] for k in entry["params"]} == entry["params"]
        assert trial.params["new_param"] in ("a", "b", "c")
        assert space.contains(trial.params)


def test_duplicates_after_mapping_are_enqueued_once() -> None:
    source = _source([(0.9, {"depth": 17}), (0.8, {"depth": 19}), (0.7, {"depth": 9}),
                      (0.6, {"depth": 1}), (0.5, {"depth": 2})])
    target = optuna.create_study(direction="maximize")
    target.enqueue_trial({"depth": 2})  # already in the target: not enqueued again
    report = warm_start(target, source, space=SearchSpace({"depth": [2, 8]}), top_k=10,
                        selection="best")
    assert [e["params"] for e in report.enqueued] == [{"depth": 8}]
    assert report.skipped_duplicate == 4
    assert _fixed(target) == [{"depth": 2}, {"depth": 8}]


def test_unmapped_and_non_ok_trials_are_not_enqueued() -> None:
    source = _source([(0.9, {"act": "silu"}), (0.8, {"act": "gelu"})])
    source.add_trial(create_trial(value=0.0, params={"act": "relu"},
                                  distributions={"act": SOURCE_DISTS["act"]},
                                  user_attrs={"status": "rejected"}))
    target = optuna.create_study(direction="maximize")
    report = warm_start(target, source, space=SearchSpace({"act": ["relu", "gelu"]}),
                        selection="best")
    assert [e["params"] for e in report.enqueued] == [{"act": "gelu"}]
    assert report.skipped_unmapped == 1


# --------------------------------------------------------------------------- provenance


def test_provenance_user_attrs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    _source(MIXED[:2], storage=url, name="cifar")
    target = optuna.create_study(direction="maximize")
    report = warm_start(target, (url, "cifar"), space=SearchSpace(TARGET_SPACE), top_k=1,
                        selection="best")
    attrs = target.get_trials(deepcopy=False)[0].user_attrs
    assert attrs["origin"] == "warm_start"
    assert attrs["warm_start"] == {
        "source_storage": url, "source_study": "cifar", "source_trial": 0,
        "source_values": [0.9], "source_dataset": "cifar10", "selection": "best", "rank": 0}
    assert report.enqueued[0] == {"params": {"depth": 8, "width": 2.0, "lr": 0.1},
                                  **attrs["warm_start"]}
    summary = next(v for k, v in target.user_attrs.items() if k.startswith("warm_start:"))
    assert summary["enqueued"] == 1 and summary["source_study"] == "cifar"


@pytest.mark.postgres
def test_source_password_is_masked(postgresql_db_url: str) -> None:
    password = postgresql_db_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password
    _source(MIXED[:2], storage=postgresql_db_url, name="cifar")
    target = optuna.create_study(direction="maximize")
    report = warm_start(target, (postgresql_db_url, "cifar"), space=SearchSpace(TARGET_SPACE),
                        top_k=2, selection="best")
    assert report.n_enqueued == 2
    for trial in target.trials:
        label = trial.user_attrs["warm_start"]["source_storage"]
        assert password not in label and "***" in label
    assert all(password not in repr(v) for v in target.user_attrs.values())
    assert password not in repr(report)


# --------------------------------------------------------------------------- claims


def test_rerun_enqueues_nothing_new(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ws.db'}"
    source = _source(MIXED, storage=url, name="src")
    target = optuna.create_study(direction="maximize", storage=url, study_name="tgt")
    space = SearchSpace(TARGET_SPACE)
    first = warm_start(target, source, space=space, top_k=3)
    again = warm_start(optuna.load_study(study_name="tgt", storage=url), ("src"), space=space,
                       top_k=5, selection="surrogate")
    assert first.n_enqueued == 3 and len(first.claimed) == 1
    assert first.summary() == f"warm start: enqueued 3 trial(s) from {url} src"
    assert again.n_enqueued == 0 and again.already_done == first.claimed
    assert len(optuna.load_study(study_name="tgt", storage=url).trials) == 3


def test_failed_warm_start_releases_its_claim() -> None:
    source = _source(MIXED)
    target = optuna.create_study(direction="maximize")
    space = SearchSpace({"depth": [2, 8], "width": [0.5, 2.0]})
    config = load_config({"name": "c", "architecture_type": "conv_net",
                          "search_space": {"w": [1, 2]}, "constraints": {"max_params": "1M"}})

    def broken(params: dict[str, Any]) -> dict[str, float]:
        raise RuntimeError("profiler crashed")

    with pytest.raises(RuntimeError, match="profiler crashed"):
        warm_start(target, source, space=space, constraints=config.constraints,
                   profile_fn=broken)
    report = warm_start(target, source, space=space, top_k=2, selection="best")
    assert report.n_enqueued == 2


def _claim(url: str, barrier: Any, queue: Any) -> None:
    """One worker process: open the storage, wait for the others, warm-start."""
    storage = make_storage(url, heartbeat_interval=None)
    target = optuna.load_study(study_name="tgt", storage=storage)
    barrier.wait(timeout=60)
    report = warm_start(target, (url, "src"), space=SearchSpace(TARGET_SPACE), top_k=3,
                        selection="best", wait_timeout=60)
    queue.put((report.n_enqueued, len(report.already_done)))


def _race(url: str) -> None:
    storage = make_storage(url, heartbeat_interval=None)
    _source(MIXED, storage=storage, name="src")
    optuna.create_study(direction="maximize", storage=storage, study_name="tgt")
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(url, barrier, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert results == [(0, 1), (0, 1), (3, 0)]  # one process enqueued, two waited
    target = optuna.load_study(study_name="tgt", storage=make_storage(url))
    numbers = [t.user_attrs["warm_start"]["source_trial"] for t in target.trials]
    assert sorted(numbers) == [0, 1, 2]  # each chosen source trial exactly once
    assert len(_fixed(target)) == 3
    rerun = warm_start(target, (url, "src"), space=SearchSpace(TARGET_SPACE), top_k=3)
    assert rerun.n_enqueued == 0 and len(target.trials) == 3


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_three_processes_enqueue_each_source_trial_once(kind: str, tmp_path: Path) -> None:
    _race(f"sqlite:///{tmp_path / 'race.db'}" if kind == "sqlite"
          else str(tmp_path / "race.log"))


@pytest.mark.slow
@pytest.mark.postgres
def test_three_processes_on_postgresql(postgresql_db_url: str) -> None:
    _race(postgresql_db_url)


# --------------------------------------------------------------------------- selection


def test_diverse_prefers_spread_over_near_duplicates() -> None:
    params = [{"depth": 8, "width": 2.0}, {"depth": 8, "width": 1.9}, {"depth": 7, "width": 2.0},
              {"depth": 2, "width": 0.5}, {"depth": 4, "width": 1.0}]
    source = _source([(1.0 - 0.1 * i, p) for i, p in enumerate(params)])
    space = SearchSpace({"depth": [2, 8], "width": [0.5, 2.0]})
    best = warm_start(optuna.create_study(), source, space=space, top_k=2, selection="best")
    diverse = warm_start(optuna.create_study(), source, space=space, top_k=2,
                         selection="diverse")
    assert [e["params"] for e in best.enqueued] == params[:2]
    assert [e["params"] for e in diverse.enqueued] == [params[0], params[3]]
    assert diverse.enqueued[1]["min_distance"] == pytest.approx(1.0)


def test_pareto_selection_ranks_then_spreads() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "params"])
    points = [(0.9, 9.0), (0.5, 1.0), (0.7, 4.0), (0.8, 6.0), (0.6, 5.0), (0.85, 8.0)]
    study.add_trials([create_trial(values=list(v), params={"x": i},
                                   distributions={"x": IntDistribution(0, 9)})
                      for i, v in enumerate(points)])
    report = warm_start(optuna.create_study(), study, space=SearchSpace({"x": [0, 9]}),
                        top_k=6, selection="pareto")
    # Front {0, 1, 2, 3, 5}: both ends first (infinite crowding), then the most isolated;
    # trial 4 (dominated by 2) comes last.
    order = [e["source_trial"] for e in report.enqueued]
    assert order[:2] == [0, 1] and order[-1] == 4 and sorted(order[2:5]) == [2, 3, 5]
    assert order[2] == 2  # gaps around 0.7/4: largest crowding distance among the inner ones


def test_surrogate_proposes_valid_new_cells_deterministically() -> None:
    config = nm.load_study_file(TRANSFER, overrides={"max_trials": 25, "seed": 3})
    source = nm.run_study(source_config(config), n_trials=25)
    space = SearchSpace(config.search_space)

    def propose() -> tuple[Mapping[str, Any], ...]:
        return warm_start(optuna.create_study(direction="maximize"), source, space=space,
                          top_k=5, selection="surrogate", seed=1).enqueued

    first, second = propose(), propose()
    assert [e["params"] for e in first] == [e["params"] for e in second]
    predicted = [e["predicted_values"][0] for e in first]
    assert predicted == sorted(predicted, reverse=True)
    assert len({tuple(sorted(e["params"].items())) for e in first}) == 5
    for e in first:
        assert space.contains(e["params"]) and e["fitted_on"] == 25
        assert (e["source_trial"] is None) == ("nearest_source_trial" in e)
    # Predictions beat the source's average: the model learnt which ops help.
    values = [float(t.value or 0.0) for t in source.trials]
    table = NASBench201Table()
    proposed = [table.evaluate(e["params"], dataset="cifar10", seed=0)["accuracy_mean"]
                for e in first]
    assert np.mean(proposed) > np.mean(values)


_PLANT_SPACE = {"a": ["p", "q", "r"], "b": ["p", "q", "r"], "c": ["p", "q", "r"]}


def _planted(params: Mapping[str, Any]) -> float:
    """A score (0..26) the encoding cannot learn (a hash of the cell), which a proxy reveals."""
    code = sum(3 ** i * "pqr".index(params[k]) for i, k in enumerate("abc"))
    return float((code * 7) % 27)


@pytest.mark.parametrize("blend", [None, 1.0])
def test_predictor_ranks_a_planted_function_and_never_repeats_or_leaves_the_space(
        blend: float | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if blend is not None:  # the encoding + proxies predictor alone
        monkeypatch.setattr(_selection, "_BLEND", blend)
    dists: dict[str, BaseDistribution] = {k: CategoricalDistribution(["p", "q", "r", "s"])
                                          for k in "abc"}
    cells = [dict(zip("abc", combo, strict=True))
             for combo in itertools.product("pqr", repeat=3)]
    picked = [c for c in cells if _planted(c) % 2 == 0]  # the unseen ones lie in between
    picked.append({"a": "s", "b": "p", "c": "p"})  # outside the target space: never proposed
    source = optuna.create_study(direction="maximize")
    source.add_trials([create_trial(value=_planted(p) if "s" not in p.values() else 99.0,
                                    params=p, distributions=dists, user_attrs={"status": "ok"})
                       for p in picked])
    target = optuna.create_study(direction="maximize")
    best = max(cells, key=_planted)  # (a source cell: the predictor may propose it again)
    target.enqueue_trial(best)  # already in the target: never enqueued again
    space = SearchSpace(_PLANT_SPACE)
    calls: list[dict[str, Any]] = []

    def proxy_fn(params: dict[str, Any]) -> dict[str, float]:
        calls.append(params)
        return {"planted": _planted(params)}

    report = warm_start(target, source, space=space, top_k=8, selection="predictor", seed=0,
                        proxy_fn=proxy_fn)
    enqueued = [e["params"] for e in report.enqueued]
    assert len(enqueued) == 8 and report.skipped_duplicate >= 1 and not report.notes
    assert len({tuple(sorted(p.items())) for p in enqueued}) == 8
    assert all(space.contains(p) for p in enqueued) and best not in enqueued
    assert all(e["features"] == "encoding+proxies" for e in report.enqueued)
    assert all(space.contains(p) for p in calls)
    scores = [_planted(p) for p in enqueued]
    truth = sorted((_planted(c) for c in cells if c != best), reverse=True)[:8]
    if blend == 1.0:  # the next best cells, nearly in order (a forest averages neighbours)
        assert sorted(scores, reverse=True)[:7] == truth[:7]
        assert np.corrcoef(scores, truth)[0, 1] > 0.7
    else:  # blended with the encoding-only predictor, which cannot see the planted score
        assert len(set(scores) & set(truth)) >= 6 and min(scores) >= 15  # top third of 0..26



def test_predictor_says_which_fallback_it_used() -> None:
    dists: dict[str, BaseDistribution] = {k: CategoricalDistribution(["p", "q", "r"])
                                          for k in "abc"}
    cells = [dict(zip("abc", combo, strict=True))
             for combo in itertools.product("pqr", repeat=3)]
    space = SearchSpace(_PLANT_SPACE)

    def source(n: int) -> optuna.Study:
        study = optuna.create_study(direction="maximize")
        study.add_trials([create_trial(value=_planted(p), params=p, distributions=dists,
                                       user_attrs={"status": "ok"}) for p in cells[:n]])
        return study

    no_proxies = warm_start(optuna.create_study(direction="maximize"), source(10),
                            space=space, top_k=3, selection="predictor")
    assert no_proxies.n_enqueued == 3
    assert "encoding alone" in no_proxies.summary()
    assert {e["features"] for e in no_proxies.enqueued} == {"encoding"}
    few = warm_start(optuna.create_study(direction="maximize"), source(3), space=space,
                     top_k=3, selection="predictor")
    assert few.n_enqueued == 3 and "fell back to pareto" in few.summary()


def test_cost_constraints_skip_and_count() -> None:
    config = nm.load_study_file(TRANSFER, overrides={"max_trials": 10})
    config = config.with_overrides(constraints=load_config({
        "name": "c", "architecture_type": "nasbench201", "search_space": {"a": [1, 2]},
        "constraints": {"max_params": "0.5M"}}).constraints)
    table = NASBench201Table()
    cells = [dict.fromkeys(EDGES, "nor_conv_3x3"), dict.fromkeys(EDGES, "skip_connect"),
             {**dict.fromkeys(EDGES, "nor_conv_3x3"), "edge_1_0": "none"},
             dict.fromkeys(EDGES, "avg_pool_3x3")]
    source = optuna.create_study(direction="maximize")
    dists: dict[str, BaseDistribution] = {e: CategoricalDistribution(list(OPS)) for e in EDGES}
    source.add_trials([create_trial(value=1.0 - 0.1 * i, params=c, distributions=dists)
                       for i, c in enumerate(cells)])
    profile = cost_profiler(config)
    assert profile is not None
    report = warm_start(optuna.create_study(direction="maximize"), source,
                        space=SearchSpace(config.search_space), selection="best",
                        constraints=config.constraints, profile_fn=profile)
    small = [c for c in cells if table.evaluate(c, dataset="imagenet", seed=0)["params"] <= 5e5]
    assert 0 < len(small) < len(cells)
    assert [e["params"] for e in report.enqueued] == small
    assert report.skipped_infeasible == len(cells) - len(small)


def test_arguments_are_checked() -> None:
    source = _source(MIXED)
    space = SearchSpace(TARGET_SPACE)
    with pytest.raises(ValueError, match="selection"):
        warm_start(optuna.create_study(), source, space=space, selection="random")
    with pytest.raises(ValueError, match="top_k"):
        warm_start(optuna.create_study(), source, space=space, top_k=0)
    with pytest.raises(ValueError, match="target itself"):
        warm_start(source, source, space=space)
    with pytest.raises(nm.ConfigError, match="no study 'missing'"):
        warm_start(optuna.create_study(), "missing", space=space)


# --------------------------------------------------------------------------- exact totals


def test_warm_trials_replace_slots_and_the_total_stays_exact() -> None:
    config = nm.load_study_file(TRANSFER, overrides={"max_trials": 12})
    objective = nm.Objective(config)
    source = nm.run_study(source_config(config), n_trials=8)
    target = nm.create_study(config)
    report = warm_start(target, source, space=objective.space, top_k=5, selection="best")
    assert open_slots(target, 12) == 7
    work(target, objective)
    assert count_finished(target) == 12 and len(target.trials) == 12
    warm = [t for t in target.trials if t.user_attrs.get("origin") == "warm_start"]
    assert [t.params for t in warm] == [e["params"] for e in report.enqueued]
    assert [t.number for t in warm] == list(range(5))
    assert all(t.user_attrs["status"] == "ok" for t in warm)


def test_run_transfer_runs_source_then_warm_target_and_resumes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'transfer.db'}"
    config = nm.load_study_file(TRANSFER, budget="smoke")
    result = run_transfer(config, storage=url)
    assert result.source.study_name == "transfer_cifar10_to_imagenet-smoke-source"
    assert count_finished(result.source) == 6 and count_finished(result.target) == 20
    assert result.source.user_attrs["neuromosaic"]["dataset"] == "cifar10"
    assert result.target.user_attrs["neuromosaic"]["dataset"] == "imagenet"
    assert result.report.n_enqueued == 10
    warm = [t for t in result.target.trials if t.user_attrs.get("origin") == "warm_start"]
    assert len(warm) == 10
    assert all(t.user_attrs["warm_start"]["source_dataset"] == "cifar10" for t in warm)
    again = run_transfer(config, storage=url)
    assert again.report.n_enqueued == 0
    assert count_finished(again.target) == 20 and len(again.target.trials) == 20
    assert count_finished(again.source) == 6


def test_run_transfer_from_an_existing_study() -> None:
    config = nm.load_study_file(TRANSFER, budget="smoke", overrides={"max_trials": 8})
    storage = optuna.storages.InMemoryStorage()
    src = nm.run_study(source_config(config), storage=storage, study_name="prior", n_trials=5)
    result = run_transfer(config, storage=storage, source="prior", top_k=3, selection="best")
    assert result.source.study_name == "prior" and count_finished(src) == 5
    assert result.report.n_enqueued == 3 and count_finished(result.target) == 8


def test_source_config_scales_the_budget_words() -> None:
    config = nm.load_study_file(TRANSFER)
    src = source_config(config)
    assert (src.dataset, src.max_trials, config.dataset, config.max_trials) == \
        ("cifar10", 30, "imagenet", 100)
    assert src.source_task is None and src.transfer_strategy is None
    bad = config.with_overrides(source_task={"dataset": "cifar10", "metric": "latency"})
    with pytest.raises(nm.ConfigError, match="source_task.metric"):
        source_config(bad)


# --------------------------------------------------------------------------- progress


def _study(values: list[float | None]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    study.set_metric_names(["accuracy"])
    for v in values:
        state = TrialState.COMPLETE if v is not None else TrialState.PRUNED
        study.add_trial(create_trial(state=state, value=v,
                                     user_attrs={"metrics": {"params": 10.0 * (v or 1)}}))
    return study


def test_search_progress_best_so_far_and_bands() -> None:
    a = _study([0.2, None, 0.5, 0.4])
    b = _study([0.3, 0.6, 0.1, 0.1])
    c = _study([0.1, 0.1, 0.1, 0.9])
    info = search_progress({"scratch": [a, b, c], "one": a})
    curve = info.curves["scratch"]
    assert curve.runs.tolist() == [[0.2, 0.2, 0.5, 0.5], [0.3, 0.6, 0.6, 0.6],
                                   [0.1, 0.1, 0.1, 0.9]]
    assert curve.center.tolist() == [0.2, 0.2, 0.5, 0.6]
    assert curve.lower.tolist() == pytest.approx([0.15, 0.15, 0.3, 0.55])
    assert curve.upper.tolist() == pytest.approx([0.25, 0.4, 0.55, 0.75])
    assert info.curves["one"].runs.shape == (1, 4) and info.direction == "maximize"
    padded = search_progress({"x": a}, n_trials=6).curves["x"].runs[0]
    assert math.isnan(padded[-1]) and padded[3] == 0.5


def test_search_progress_hypervolume_uses_one_reference() -> None:
    a = _study([0.5, 0.8])  # params 5, 8
    b = _study([0.4])
    info = search_progress({"a": a, "b": b}, "hypervolume", objectives=("accuracy", "params"),
                           reference=(0.0, 10.0))
    assert info.curves["a"].runs[0].tolist() == pytest.approx([2.5, 2.5 + 0.3 * 2])
    assert info.curves["b"].runs[0].tolist() == pytest.approx([0.4 * 6])
    assert info.reference_point == (0.0, 10.0)


def test_plot_search_progress_draws_lines_and_bands() -> None:
    runs = [_study([0.2, 0.5]), _study([0.3, 0.4])]
    fig = plot_search_progress({"From Scratch": runs, "With Transfer": [_study([0.6, 0.6])]})
    names = [trace.name for trace in fig.data]
    assert names == ["From Scratch (25-75%)", "From Scratch (median of 2)", "With Transfer"]
    assert fig.data[0].fill == "toself"
    assert fig.data[1].y == pytest.approx((0.25, 0.45)) and fig.data[2].y == (0.6, 0.6)
    assert fig.layout.yaxis.tickformat == ".1%"
    assert fig.layout.title.text == "Search Progress Comparison"


def test_cost_profiler_ignores_training_params_like_the_objective() -> None:
    """Issue 17: warm-starting into a space with training-only params (robustness.toml's
    ``train_noise_std``, ``train_adv_eps``) and a cost constraint must profile the
    architecture the objective would build, not reject every candidate as invalid."""
    from neuromosaic_optuna.config import load_study_file
    from neuromosaic_optuna.objective import Objective
    from neuromosaic_optuna.warmstart import cost_profiler

    config = load_study_file("studies/robustness.toml", budget="smoke",
                             overrides={"constraints": {"max_params": "50M"}})
    profile = cost_profiler(config)
    assert profile is not None
    params = {"depth_multiplier": 1.0, "width_multiplier": 1.0, "se_ratio": 0.25,
              "train_noise_std": 0.1, "train_adv_eps": 0.03}
    costs = profile(params)
    objective = Objective(config)
    built, _ = objective.build(params)
    assert costs["params"] == sum(p.numel() for p in built.model.parameters()) > 0
