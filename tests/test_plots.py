"""Figures: the data behind every plot (not pixels), checked against pareto.py and by hand."""

from __future__ import annotations

import doctest
import math
import warnings

import numpy as np
import optuna
import pytest
from doctests import run_doctests
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from neuromosaic_optuna import pareto, plots

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

SPACE = {
    "depth_multiplier": FloatDistribution(0.5, 2.0),
    "width_multiplier": FloatDistribution(0.5, 2.0),
    "se_ratio": FloatDistribution(0.0, 0.25),
    "kernel": CategoricalDistribution([3, 5]),
}
MAX_PARAMS = 5e6


def synthetic_study(n: int = 60, *, seed: int = 0, storage: str | None = None,
                    name: str = "synthetic", generation_size: int = 10) -> optuna.Study:
    """A study laid out as Objective stores trials: accuracy/latency/memory objectives, a
    ``max_params`` constraint (violators rejected with accuracy 0), NSGA-II generations,
    robustness details, and two trials that could not be built (PRUNED)."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"],
                                study_name=name, storage=storage)
    study.set_metric_names(["accuracy", "latency", "memory"])
    study.set_user_attr("neuromosaic", {
        "architecture_type": "conv_net", "dataset": "digits", "budget": "smoke",
        "objectives": ["accuracy", "latency", "memory"], "constraints": {"max_params": "5M"},
        "experiment": {"search_space": {"depth_multiplier": [0.5, 2.0]}}})
    trials = []
    for i in range(n):
        d = float(rng.uniform(0.5, 2.0))
        w = float(rng.uniform(0.5, 2.0))
        se = float(rng.uniform(0.0, 0.25))
        k = int(rng.choice([3, 5]))
        params = 1.2e6 * d * w ** 2
        flops = 3e7 * d * w ** 2 * k / 3
        latency = 0.002 + 0.004 * d * w + 0.0005 * k
        memory = 2e5 * w * (1 + d)
        throughput = 1.0 / latency
        rejected = params > MAX_PARAMS
        acc = 0.0 if rejected else float(np.clip(
            0.55 + 0.35 * (1 - math.exp(-d * w)) + 0.2 * se + rng.normal(0, 0.01), 0, 1))
        metrics = {"accuracy": acc, "test_accuracy": acc, "params": params, "flops": flops,
                   "latency": latency, "memory": memory, "throughput": throughput}
        user_attrs: dict = {"architecture": {"family": "efficientnet", "depth_multiplier": d,
                                             "width_multiplier": w, "se_ratio": se,
                                             "kernel": k, "stage_depths": [1, 2, 2]},
                            "status": "rejected" if rejected else "ok"}
        if rejected:
            user_attrs["reason"] = f"violates max_params = 5M (measured {params:.4g})"
        else:
            metrics.update(params_utilization=params / acc, memory_efficiency=memory / throughput,
                           speed_efficiency=latency)
            details = {"noise@0.1": acc * 0.9, "noise@0.2": acc * 0.7,
                       "gaussian@1": acc * 0.8, "gaussian@3": acc * 0.5,
                       "corrupt:gaussian": acc * 0.65, "fgsm@0.0313725": acc * 0.4 * se * 4}
            robust = {"clean_accuracy": acc, "noise_accuracy": acc * 0.8,
                      "corrupt_accuracy": acc * 0.65,
                      "adversarial_accuracy": details["fgsm@0.0313725"]}
            metrics.update(robust)
            user_attrs["robustness"] = {"metrics": robust, "details": details}
        user_attrs["metrics"] = metrics
        trials.append(create_trial(
            state=TrialState.COMPLETE, values=[acc, latency, memory],
            params={"depth_multiplier": d, "width_multiplier": w, "se_ratio": se, "kernel": k},
            distributions=SPACE, user_attrs=user_attrs,
            system_attrs={"NSGAIISampler:generation": i // generation_size},
            constraints={"max_params": params - MAX_PARAMS}))
    for j in range(2):
        trials.append(create_trial(
            state=TrialState.PRUNED,
            params={"depth_multiplier": 0.6 + j, "width_multiplier": 1.0, "se_ratio": 0.1,
                    "kernel": 3},
            distributions=SPACE,
            user_attrs={"status": "invalid", "reason": "cannot be built: kernel too large"},
            system_attrs={"NSGAIISampler:generation": (n - 1) // generation_size}))
    study.add_trials(trials)
    return study


@pytest.fixture(scope="module")
def study() -> optuna.Study:
    return synthetic_study()


def _by_name(fig, name: str):
    matches = [t for t in fig.data if t.name == name]
    assert matches, f"no trace {name!r} in {[t.name for t in fig.data]}"
    return matches[0]


# --------------------------------------------------------------------------- case 1


def test_accuracy_flops_front_matches_pareto(study: optuna.Study) -> None:
    info = plots.accuracy_flops_info(study)
    expected = pareto.pareto_info(study, metrics=["accuracy", "flops"])
    assert info.trial_numbers.tolist() == expected.trial_numbers.tolist()
    assert np.flatnonzero(info.on_front).tolist() == expected.front.tolist()
    assert info.knee_trial == expected.knee_trial
    flops = [t.user_attrs["metrics"]["flops"] for t in study.trials
             if t.state == TrialState.COMPLETE]
    np.testing.assert_allclose(info.gflops, np.asarray(flops) / 1e9)
    rejected = [t.number for t in study.trials if t.user_attrs.get("status") == "rejected"]
    assert rejected and info.trial_numbers[~info.feasible].tolist() == rejected
    assert "depth_multiplier" in info.hover[0] and "GFLOPs" not in info.hover[0]


def test_accuracy_flops_figure(study: optuna.Study) -> None:
    fig = plots.plot_accuracy_flops(study)
    info = plots.accuracy_flops_info(study)
    front = _by_name(fig, "Pareto front")
    assert sorted(front.customdata.tolist()) == sorted(info.trial_numbers[info.on_front].tolist())
    assert list(front.x) == sorted(front.x)  # a step line from cheap to expensive
    assert _by_name(fig, "knee").customdata[0] == info.knee_trial
    rejected = _by_name(fig, "rejected before training")
    assert set(rejected.customdata) == set(info.trial_numbers[~info.feasible].tolist())
    floor = set(rejected.y)  # accuracy 0 is a sentinel: drawn on one line below the others
    low, high = fig.layout.yaxis.range
    assert len(floor) == 1 and low < floor.pop() < info.accuracy_percent[info.trained].min()
    assert high > info.accuracy_percent.max()
    assert fig.layout.xaxis.title.text.startswith("GFLOPs")
    assert fig.layout.yaxis.title.text == "top-1 accuracy (%)"
    assert max(front.y) <= 100 and max(front.y) > 50  # percent, not fractions


def test_accuracy_flops_overlays_studies() -> None:
    a, b = synthetic_study(20, seed=1, name="scratch"), synthetic_study(20, seed=2, name="transfer")
    names = [t.name for t in plots.plot_accuracy_flops([a, b]).data]
    assert "scratch: Pareto front" in names and "transfer: Pareto front" in names


# --------------------------------------------------------------------------- case 2


def test_efficiency_profile(study: optuna.Study) -> None:
    info = plots.efficiency_info(study)
    trained = [t for t in study.trials if t.user_attrs.get("status") == "ok"]
    assert info.trial_numbers.tolist() == [t.number for t in trained]
    assert list(info.metrics) == list(plots.EFFICIENCY_METRICS)
    np.testing.assert_allclose(info.metrics["params"],
                               [t.user_attrs["metrics"]["params"] / 1e6 for t in trained])
    np.testing.assert_allclose(info.metrics["latency"],
                               [t.user_attrs["metrics"]["latency"] * 1e3 for t in trained])
    assert set(info.trial_numbers[info.on_front]) <= set(pareto.pareto_info(study).front_trials)
    fig = plots.plot_efficiency(study)
    assert [a.text for a in fig.layout.annotations] == [info.titles[m] for m in info.metrics]
    front_points = sum(len(t.x) for t in fig.data if t.name == "Pareto front")
    assert front_points == int(info.on_front.sum()) * len(info.metrics)


# --------------------------------------------------------------------------- case 4


def test_pareto_surface_ranks_colors_and_marks(study: optuna.Study) -> None:
    expected = pareto.pareto_info(study)
    info = plots.pareto_surface_info(study, operating_point="latency<=8ms")
    assert info.metric_names == ["accuracy", "latency", "memory"]
    assert info.ranks.tolist() == expected.ranks.tolist()
    fig = plots.plot_pareto_surface(study, operating_point="latency<=8ms")
    rank_of = dict(zip(expected.trial_numbers.tolist(), expected.ranks.tolist(), strict=True))
    seen = []
    for name in ("Pareto front", "dominated", "infeasible"):
        trace = _by_name(fig, name)
        assert list(trace.marker.color) == [rank_of[n] for n in trace.customdata]
        assert (trace.marker.cmin, trace.marker.cmax) == (0, int(expected.ranks.max()))
        seen += list(trace.customdata)
    assert sorted(seen) == sorted(rank_of)
    assert sorted(_by_name(fig, "Pareto front").customdata) == expected.front_trials
    infeasible = _by_name(fig, "infeasible")
    assert infeasible.marker.symbol == "cross"
    # rejected trials (accuracy 0 is a sentinel) sit just below the lowest measured accuracy
    trained_acc = info.display[info.trained, 0]
    assert min(infeasible.x) < trained_acc.min() and min(infeasible.x) > trained_acc.min() - 10
    assert set(infeasible.customdata) == set(
        expected.trial_numbers[~expected.feasible].tolist())
    knee = [t for t in fig.data if t.name.startswith("knee")]
    assert knee[0].customdata[0] == expected.knee_trial
    chosen = pareto.operating_point(study, "latency<=8ms")
    assert chosen is not None
    marked = [t for t in fig.data if t.name.startswith("operating point")]
    assert marked[0].customdata[0] == chosen.number
    assert info.operating_row is not None
    assert int(info.trial_numbers[info.operating_row]) == chosen.number
    assert set(info.triangles.ravel()) <= set(expected.front.tolist())
    assert info.display[0].tolist() == pytest.approx(
        [info.values[0, 0] * 100, info.values[0, 1] * 1e3, info.values[0, 2] * 1e-6])


def test_pareto_surface_from_measured_metrics() -> None:
    two = optuna.create_study(directions=["maximize", "minimize"])
    two.set_metric_names(["accuracy", "flops"])
    two.add_trials([create_trial(values=[a, f], user_attrs={"metrics": {"latency": lat,
                                                                         "memory": mem}})
                    for a, f, lat, mem in ([0.9, 4e6, 0.02, 3e6], [0.8, 1e6, 0.01, 1e6],
                                           [0.7, 2e6, 0.03, 2e6])])
    info = plots.pareto_surface_info(two)
    assert info.metric_names == ["accuracy", "latency", "memory"]
    assert info.ranks.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="3 metrics"):
        plots.pareto_surface_info(two, metrics=["accuracy", "flops"])


# --------------------------------------------------------------------------- case 5


def test_robustness(study: optuna.Study) -> None:
    info = plots.robustness_info(study)
    trained = [t for t in study.trials if t.user_attrs.get("status") == "ok"]
    assert info.trial_numbers.tolist() == [t.number for t in trained]
    assert info.perturbations == ["noise@0.1", "noise@0.2", "gaussian@1", "gaussian@3",
                                  "fgsm@0.0313725"]  # the mean "corrupt:gaussian" is left out
    first = trained[0].user_attrs["robustness"]["details"]
    np.testing.assert_allclose(info.per_perturbation[0],
                               [100 * first[k] for k in info.perturbations])
    assert list(info.robust) == ["noise_accuracy", "corrupt_accuracy", "adversarial_accuracy"]
    fig = plots.plot_robustness(study)
    boxes = {t.name: t for t in fig.data if t.type == "box"}
    assert list(boxes) == ["noise", "gaussian", "fgsm"]
    assert len(boxes["noise"].y) == 2 * len(trained)
    clean_vs = _by_name(fig, "corrupt accuracy")
    np.testing.assert_allclose(np.asarray(clean_vs.y), 0.65 * np.asarray(clean_vs.x))


# --------------------------------------------------------------------------- diversity


def test_diversity_per_generation(study: optuna.Study) -> None:
    info = plots.diversity_info(study)
    assert info.grouping == "generation"
    assert info.generations.tolist() == [0, 1, 2, 3, 4, 5]
    assert info.counts.tolist() == [10, 10, 10, 10, 10, 12]
    first = [t for t in study.trials if t.system_attrs["NSGAIISampler:generation"] == 0]
    # The sampler's measure (issue 17: one distance for the warning and the plot): per pair,
    # the mean over the 4 params of |difference| / range, 0 or 1 for the kernel choice.
    x = np.asarray([[(t.params["depth_multiplier"] - 0.5) / 1.5,
                     (t.params["width_multiplier"] - 0.5) / 1.5,
                     t.params["se_ratio"] / 0.25] for t in first])
    kernel = np.asarray([t.params["kernel"] for t in first])
    pair = (np.abs(x[:, None] - x[None]).sum(axis=-1)
            + (kernel[:, None] != kernel[None])) / 4.0
    d = pair[np.triu_indices(len(x), 1)]
    assert info.diversity[0] == pytest.approx(d.mean())


def test_diversity_reads_nsga2_generations_and_detects_collapse() -> None:
    study = optuna.create_study(sampler=optuna.samplers.NSGAIISampler(population_size=4, seed=0),
                                directions=["minimize", "minimize"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)),
                   n_trials=12)
    info = plots.diversity_info(study)
    assert info.grouping == "generation" and info.generations.tolist() == [0, 1, 2]
    same = optuna.create_study()
    same.add_trials([create_trial(value=1.0, params={"x": 0.3},
                                  distributions={"x": FloatDistribution(0, 1)})] * 4)
    collapsed = plots.diversity_info(same, window=2)
    assert collapsed.diversity.tolist() == [0.0, 0.0] and collapsed.unique.tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="window"):
        plots.diversity_info(same, window=0)


# --------------------------------------------------------------------------- hypervolume


def test_hypervolume_uses_optuna_plot_and_pareto_reference(study: optuna.Study) -> None:
    fig = plots.plot_hypervolume(study)
    expected = pareto.hypervolume_history_of(study)
    assert list(fig.data[0].y) == pytest.approx(expected.tolist())
    assert fig.data[0].y[-1] == pytest.approx(pareto.pareto_info(study).hypervolume)
    assert fig.layout.xaxis.title.text == "Trial"  # Optuna's layout, reused


def test_hypervolume_overlay_and_mismatch() -> None:
    a, b = synthetic_study(15, seed=3, name="a"), synthetic_study(15, seed=4, name="b")
    fig = plots.plot_hypervolume([a, b])
    assert [t.name for t in fig.data] == ["a", "b"]
    other = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.raises(ValueError, match="different objectives"):
        plots.plot_hypervolume([a, other])
    single = optuna.create_study()
    single.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert plots.available_figures(single)[0] == "optimization-history"
    assert plots.plot_hypervolume(single).layout.title.text == "Optimization History Plot"


# --------------------------------------------------------------------------- sphere map


def _random_placement_overlap(info: plots.ArchitectureMapInfo, seed: int) -> float:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=info.xyz.shape)
    xyz /= np.linalg.norm(xyz, axis=1, keepdims=True)
    return plots.neighbourhood_preservation(info._replace(xyz=xyz), k=5).overlap


def test_architecture_map_on_unit_sphere_and_keeps_neighbours(study: optuna.Study) -> None:
    info = plots.architecture_map_info(study)
    assert info.trial_numbers.tolist() == [t.number for t in study.trials]
    np.testing.assert_allclose(np.linalg.norm(info.xyz, axis=1), 1.0, atol=1e-9)
    quality = plots.neighbourhood_preservation(info, k=5)
    randoms = [_random_placement_overlap(info, s) for s in range(5)]
    assert quality.random == pytest.approx(np.mean(randoms), abs=0.05)
    assert quality.overlap > 0.5 and quality.overlap > 4 * max(randoms)
    # geodesic distance on hover is measured to the knee
    assert int(info.trial_numbers[info.reference_row]) == pareto.pareto_info(study).knee_trial
    assert info.geodesic[info.reference_row] == pytest.approx(0.0, abs=1e-6)
    assert np.all((info.geodesic >= 0) & (info.geodesic <= math.pi + 1e-9))
    # rejected and invalid trials have no accuracy and are drawn grey
    missing = {t.number for t in study.trials if t.user_attrs.get("status") != "ok"}
    assert set(info.trial_numbers[np.isnan(info.accuracy)]) == missing
    assert info.cost_name == "flops"


def test_architecture_map_categorical_space_and_determinism() -> None:
    ops = ["none", "skip", "conv1", "conv3", "pool"]
    space = {f"edge_{i}": CategoricalDistribution(ops) for i in range(6)}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: sum(ops.index(t.suggest_categorical(k, ops)) for k in space),
                   n_trials=150)
    info = plots.architecture_map_info(study)
    quality = plots.neighbourhood_preservation(info)
    assert quality.overlap > 2.5 * quality.random
    assert quality.overlap > 2.5 * _random_placement_overlap(info, 0)
    again = plots.architecture_map_info(study)
    np.testing.assert_array_equal(info.xyz, again.xyz)


def test_architecture_map_figure_and_degenerate_cases(study: optuna.Study) -> None:
    fig = plots.plot_architecture_map(study)
    assert fig.data[0].type == "surface"  # the explored-density shading
    trained = _by_name(fig, "trained")
    points = np.stack([trained.x, trained.y, trained.z], axis=1)
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 1.0, atol=1e-9)
    assert "geodesic distance to trial" in trained.hovertext[0]
    assert "NN overlap" in fig.layout.title.text
    one = optuna.create_study()
    one.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert plots.architecture_map_info(one).xyz.tolist() == [[0.0, 0.0, 1.0]]
    assert math.isnan(plots.neighbourhood_preservation(plots.architecture_map_info(one)).overlap)


# --------------------------------------------------------------------------- all figures


def test_study_figures_lists_what_applies(study: optuna.Study) -> None:
    ids = plots.available_figures(study)
    assert ids == ["accuracy-vs-flops", "efficiency-profile", "pareto-surface", "robustness",
                   "hypervolume-history", "diversity", "architecture-map"]
    figures = plots.study_figures(study, include_optuna=False)
    assert list(figures) == ids
    assert figures["pareto-surface"].layout.height == 600
    # compact: for optuna-dashboard's 450 px cards; the 7-panel profile is split in two
    compact = plots.study_figures(study, include_optuna=False, compact=True)
    assert list(compact) == [*ids[:2], "efficiency-metrics", *ids[2:]]
    assert all(f.layout.height is None for f in compact.values())
    assert [a.text for a in compact["efficiency-metrics"].layout.annotations] == [
        "params / accuracy (M)", "memory / throughput (kB·s)", "latency × batch size (ms)"]
    assert len(compact["efficiency-profile"].layout.annotations) == 4
    with pytest.raises(ValueError, match="columns"):
        plots.plot_efficiency(study, columns=0)
    empty = optuna.create_study(directions=["maximize", "minimize"])
    assert plots.available_figures(empty) == []


def test_format_metric_and_architecture() -> None:
    assert plots.format_metric("accuracy", 0.5) == "50.00%"
    assert plots.format_metric("params", 4.57e6) == "4.57M"
    assert plots.format_metric("memory", 2.5e6) == "2.5 MB"
    assert plots.format_metric("throughput", 92.77) == "92.8 images/s"
    assert plots.format_metric("latency", None) == "-"
    assert plots.format_metric("params_utilization", math.inf) == "inf"
    lines = plots.describe_architecture({f"k{i}": i for i in range(20)}, max_items=5)
    assert lines[-1] == "... 16 more" and len(lines) == 5
    assert plots.describe_architecture({}, {"x": 0.123456}) == ["x: 0.1235"]


def test_docstring_examples() -> None:
    result = run_doctests(plots, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 20
