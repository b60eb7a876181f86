"""Findings on synthetic studies built with ``optuna.trial.create_trial`` (issue 20)."""

from __future__ import annotations

import math
import random

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from neuromosaic_optuna.insights import study_insights, transfer_insights

optuna.logging.set_verbosity(optuna.logging.WARNING)

FLOAT = FloatDistribution(0.5, 2.0)
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def _study(directions: list[str], names: list[str]) -> optuna.Study:
    study = optuna.create_study(directions=directions)
    study.set_metric_names(names)
    return study


def _planted_depth(seed: int, n: int = 40, effect: float = 0.04) -> optuna.Study:
    """Accuracy rises with depth (plus noise); width has no effect; flops rise with both."""
    rng = random.Random(seed)
    study = _study(["maximize", "minimize"], ["accuracy", "flops"])
    trials = []
    for _ in range(n):
        depth, width = rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0)
        acc = 0.6 + effect * depth + rng.gauss(0, 0.02)
        trials.append(optuna.trial.create_trial(
            params={"depth_multiplier": depth, "width_multiplier": width},
            distributions={"depth_multiplier": FLOAT, "width_multiplier": FLOAT},
            values=[acc, 1e6 * depth * width ** 2],
            user_attrs={"metrics": {"train_time": 10.0, "params": 1e5 * width ** 2}}))
    study.add_trials(trials)
    return study


def test_planted_depth_effect_found_with_its_sign_and_an_interval_excluding_zero() -> None:
    found = study_insights(_planted_depth(0), seed=1, n_boot=400, importance=False)
    effect = next(f for f in found.findings if f.subject == "depth_multiplier on accuracy")
    assert effect.supported
    assert effect.estimate > 0.5 and effect.low > 0
    assert "higher depth_multiplier went with higher accuracy" in effect.sentence
    assert "sampler chose" in effect.sentence
    width = next(f for f in found.findings if f.subject == "width_multiplier on accuracy")
    assert not width.supported and "cannot support a claim" in width.sentence


def test_planted_power_law_exponent_recovered() -> None:
    rng = random.Random(3)
    study = _study(["maximize", "minimize"], ["accuracy", "flops"])
    trials = []
    for _ in range(40):
        d, w = rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0)
        flops = 1e7 * d * w * w
        error = 0.5 * (flops / 1e7) ** -0.3 * math.exp(rng.gauss(0, 0.02))
        trials.append(optuna.trial.create_trial(
            params={"depth_multiplier": d, "width_multiplier": w},
            distributions={"depth_multiplier": FLOAT, "width_multiplier": FLOAT},
            values=[1 - error, flops], user_attrs={"metrics": {"params": 1e5 * w * w}}))
    study.add_trials(trials)
    found = study_insights(study, seed=0, n_boot=300, importance=False)
    law = next(f for f in found.by_analysis("power law") if "flops" in f.subject)
    assert law.estimate == pytest.approx(-0.3, abs=0.05)
    assert law.low < -0.3 < law.high and law.high < 0
    assert law.supported and "error fell with size" in law.sentence
    scaling = {f.subject.split(":")[0]: f for f in found.by_analysis("compound scaling")}
    assert set(scaling) == {"depth_multiplier", "width_multiplier"}
    # error ~ flops^-0.3 whichever dimension buys the flops: the same accuracy per doubling.
    assert scaling["depth_multiplier"].estimate == pytest.approx(
        scaling["width_multiplier"].estimate, rel=0.35)


def test_motif_always_on_the_front_is_enriched() -> None:
    rng = random.Random(5)
    study = _study(["maximize", "minimize"], ["accuracy", "params"])
    dist = CategoricalDistribution(OPS)
    trials = []
    for _ in range(200):
        cell = {f"edge_{i}": rng.choice(OPS) for i in range(3)}
        good = cell["edge_1"] == "nor_conv_3x3"
        size = rng.uniform(1.0, 2.0)
        # every cell with the motif lies on one rising trade-off curve; the others below it
        acc = 0.6 + 0.3 * (size - 1) - (0 if good else 0.2 + rng.uniform(0, 0.05))
        trials.append(optuna.trial.create_trial(
            params=cell, distributions={k: dist for k in cell}, values=[acc, size]))
    study.add_trials(trials)
    found = study_insights(study, seed=0, n_boot=200, importance=False)
    motif = next(f for f in found.by_analysis("operation motifs")
                 if f.subject == "nor_conv_3x3 on edge_1")
    assert motif.supported and motif.estimate > 0 and motif.low > 0
    assert "Enriched on the front" in motif.sentence
    assert "nasbench201" in found.analyses


def test_motif_counts_distinct_cells_not_repeated_trials() -> None:
    """Two front cells, each revisited 15 times by the sampler, are two cells: too few to
    claim a motif, where counting 30 front trials would."""
    rng = random.Random(7)
    study = _study(["maximize", "minimize"], ["accuracy", "params"])
    dist = CategoricalDistribution(OPS)
    front_cells = [({"edge_0": "skip_connect", "edge_1": "nor_conv_3x3"}, 0.9, 2.0),
                   ({"edge_0": "none", "edge_1": "nor_conv_3x3"}, 0.8, 1.0)]
    rows = [c for c in front_cells for _ in range(15)]
    seen = {tuple(c.values()) for c, _, _ in front_cells}
    while len(rows) < 30 + 20:
        cell = {"edge_0": rng.choice(OPS), "edge_1": rng.choice(OPS)}
        if tuple(cell.values()) not in seen:
            seen.add(tuple(cell.values()))
            rows.append((cell, rng.uniform(0.3, 0.7), rng.uniform(1.5, 3.0)))
    study.add_trials([optuna.trial.create_trial(
        params=c, distributions={k: dist for k in c}, values=[a, p]) for c, a, p in rows])
    found = study_insights(study, seed=0, n_boot=200, importance=False)
    motif = next(f for f in found.by_analysis("operation motifs")
                 if f.subject == "nor_conv_3x3 on edge_1")
    assert "100% of front cells" in motif.sentence
    assert not motif.supported and "cannot support a claim" in motif.sentence
    # each cell evaluated once: the same counts, so the same estimate
    again = _study(["maximize", "minimize"], ["accuracy", "params"])
    once = [rows[0], rows[15], *rows[30:]]
    again.add_trials([optuna.trial.create_trial(
        params=c, distributions={k: dist for k in c}, values=[a, p]) for c, a, p in once])
    same = next(f for f in study_insights(again, seed=0, n_boot=200, importance=False)
                .by_analysis("operation motifs") if f.subject == "nor_conv_3x3 on edge_1")
    assert same.estimate == pytest.approx(motif.estimate)


def test_no_effect_planted_gives_at_most_5_of_50_studies_with_any_claim() -> None:
    studies_with_claims = 0
    for seed in range(50):
        rng = random.Random(1000 + seed)
        study = _study(["maximize", "minimize"], ["accuracy", "flops"])
        dist = IntDistribution(1, 8)
        study.add_trials([optuna.trial.create_trial(
            params={"depth": rng.randint(1, 8), "width": rng.randint(1, 8),
                    "kind": rng.choice("abc")},
            distributions={"depth": dist, "width": dist,
                           "kind": CategoricalDistribution(("a", "b", "c"))},
            values=[rng.gauss(0.8, 0.02), rng.uniform(1e6, 2e6)]) for _ in range(24)])
        found = study_insights(study, seed=seed, n_boot=200, importance=False)
        tested = [f for f in found.findings if f.p_value is not None]
        assert len(tested) >= 6  # 3 params x 2 objectives were tested
        studies_with_claims += bool(found.claims())
    assert studies_with_claims <= 5


def test_same_seed_same_numbers_and_importance_has_intervals() -> None:
    study = _planted_depth(7, n=30, effect=0.1)
    a = study_insights(study, seed=4, n_boot=200, importance_boot=3)
    b = study_insights(study, seed=4, n_boot=200, importance_boot=3)
    assert a.to_json() == b.to_json()
    shares = a.by_analysis("importance")
    assert {f.subject for f in shares} >= {"depth_multiplier for accuracy",
                                          "width_multiplier for flops"}
    for f in shares:
        assert 0 <= f.estimate <= 1 and f.low <= f.high and f.p_value is None
    share = {f.subject: f.estimate for f in shares}
    assert share["depth_multiplier for accuracy"] > share["width_multiplier for accuracy"]


def test_multi_objective_knee_and_rate_of_substitution() -> None:
    study = _study(["maximize", "minimize"], ["accuracy", "latency"])
    dist = FloatDistribution(0, 1)
    # front: accuracy = 0.5 + 0.4 * sqrt(latency in s / 0.1); one dominated point.
    points = [(0.01 * k, 0.5 + 0.4 * math.sqrt(0.01 * k / 0.1)) for k in range(1, 11)]
    study.add_trials([optuna.trial.create_trial(params={"x": lat}, distributions={"x": dist},
                                                values=[acc, lat]) for lat, acc in points]
                     + [optuna.trial.create_trial(params={"x": 0.5}, distributions={"x": dist},
                                                  values=[0.4, 0.09])])
    found = study_insights(study, seed=0, n_boot=200, importance=False)
    knee = next(f for f in found.by_analysis("knee") if f.subject == "accuracy vs latency")
    assert 10 < knee.low < 100  # in ms, inside the front's range
    rate = next(f for f in found.by_analysis("marginal rate of substitution")
                if f.subject == "accuracy per ms")
    assert rate.estimate > 0  # accuracy points bought per ms along the front
    assert rate.low <= rate.estimate <= rate.high


def test_robustness_clean_vs_robust_slope_and_size() -> None:
    rng = random.Random(2)
    study = _study(["maximize", "maximize"], ["clean_accuracy", "adversarial_accuracy"])
    dist = FloatDistribution(0.0, 0.3)
    trials = []
    for _ in range(30):
        noise = rng.uniform(0, 0.3)
        clean = 0.9 - 0.3 * noise + rng.gauss(0, 0.01)
        adv = 0.2 + 0.8 * noise + rng.gauss(0, 0.01)
        trials.append(optuna.trial.create_trial(
            params={"train_noise_std": noise}, distributions={"train_noise_std": dist},
            values=[clean, adv], user_attrs={"metrics": {"params": rng.uniform(1e5, 1e6)}}))
    study.add_trials(trials)
    found = study_insights(study, seed=0, n_boot=300, importance=False)
    assert "robustness" in found.analyses
    slope = found.by_analysis("clean vs robust")[0]
    assert slope.supported and slope.estimate < 0 and slope.high < 0
    noise = next(f for f in found.findings
                 if f.subject == "train_noise_std on adversarial_accuracy")
    assert noise.supported and noise.estimate > 0.8
    size = found.by_analysis("model size and robustness")[0]
    assert not size.supported  # params were drawn independently


def test_claim_needs_the_interval_to_exclude_zero_not_only_the_test() -> None:
    """One diverged net (clean 0.1, robust 0.0) among 19 unrelated ones: the regression's
    t-test is far below any threshold, but the bootstrap over trials straddles zero, so the
    slope is measured, not claimed."""
    rng = random.Random(0)
    study = _study(["maximize", "maximize"], ["clean_accuracy", "adversarial_accuracy"])
    dist = FloatDistribution(0.0, 0.3)
    trials = []
    for i in range(20):
        clean, adv = (0.1, 0.0) if i == 0 else (rng.uniform(0.7, 0.8), rng.uniform(0.3, 0.4))
        trials.append(optuna.trial.create_trial(
            params={"train_noise_std": rng.uniform(0, 0.3)},
            distributions={"train_noise_std": dist}, values=[clean, adv],
            user_attrs={"metrics": {"params": rng.uniform(1e5, 1e6)}}))
    study.add_trials(trials)
    slope = study_insights(study, seed=0, n_boot=300,
                           importance=False).by_analysis("clean vs robust")[0]
    assert slope.adjusted_p is not None and slope.adjusted_p < 1e-6
    assert slope.low < 0 < slope.high
    assert not slope.supported and "cannot support a claim" in slope.sentence


def test_vit_heads_note_and_depth_width_ratio() -> None:
    study = _study(["maximize", "minimize"], ["accuracy", "flops"])
    layers, heads = IntDistribution(2, 12), IntDistribution(2, 8)
    rng = random.Random(0)
    trials = []
    for _ in range(12):
        n_l, n_h = rng.randint(2, 12), rng.randint(2, 8)
        trials.append(optuna.trial.create_trial(
            params={"num_layers": n_l, "num_heads": n_h},
            distributions={"num_layers": layers, "num_heads": heads},
            values=[0.5 + 0.01 * n_l * n_h, 1e6 * n_l * n_h],
            user_attrs={"architecture": {"num_layers": n_l, "hidden_dim": 16 * n_h}}))
    study.add_trials(trials)
    found = study_insights(study, seed=0, n_boot=100, importance=False)
    assert any("heads effect is a width effect" in n for n in found.notes)
    ratio = found.by_analysis("depth-width ratio")[0]
    assert ratio.low <= ratio.estimate <= ratio.high and ratio.estimate > 0


def test_transfer_rank_correlation_front_and_trials_saved() -> None:
    d = IntDistribution(0, 30)

    def make(f: object, order: list[int]) -> optuna.Study:
        s = _study(["maximize"], ["accuracy"])
        s.add_trials([optuna.trial.create_trial(params={"w": w}, distributions={"w": d},
                                                value=f(w)) for w in order])  # type: ignore
        return s

    source = make(lambda w: w / 30, list(range(20)))
    target = make(lambda w: 0.5 + w / 100, [19, 18, 17, 3, 4, 5, 6, 7])
    baseline = make(lambda w: 0.5 + w / 100, [1, 2, 3, 10, 12, 19, 5])
    found = transfer_insights(source, target, baseline=baseline, seed=0, n_boot=200)
    rank = found.by_analysis("rank transfer")[0]
    assert rank.estimate == pytest.approx(1.0) and rank.supported
    stayed = found.by_analysis("front transfer")[0]
    assert stayed.estimate == 1  # the source's best (w=19) is the target's best too
    saved = found.by_analysis("trials saved")[0]
    assert saved.estimate == 6 - 1


def test_transfer_counts_distinct_architectures_not_repeated_trials() -> None:
    from scipy.stats import spearmanr

    d = IntDistribution(0, 30)

    def make(pairs: list[tuple[int, float]]) -> optuna.Study:
        s = _study(["maximize"], ["accuracy"])
        s.add_trials([optuna.trial.create_trial(params={"w": w}, distributions={"w": d},
                                                value=v) for w, v in pairs])
        return s

    source = make([(w, w / 10) for w in range(10)])
    # Cells 0..5 rank as on the source; cell 9 (the source's best) is evaluated four times on
    # the target, low every time: trial-counting would weigh it four times.
    target = make([(w, 0.5 + w / 100) for w in range(6)] + [(9, 0.40), (9, 0.42)] * 2)
    found = transfer_insights(source, target, seed=0, n_boot=200)
    rank = found.by_analysis("rank transfer")[0]
    expected = spearmanr(list(range(6)) + [9], [0.5 + w / 100 for w in range(6)] + [0.41])
    assert rank.estimate == pytest.approx(expected.statistic)
    assert "7 shared architectures" in rank.sentence
    by_trial = spearmanr(list(range(6)) + [9] * 4, [0.5 + w / 100 for w in range(6)]
                         + [0.40, 0.42] * 2).statistic
    assert abs(rank.estimate - by_trial) > 0.05  # the test can tell the two countings apart
    # The source's front cell, three tied trials on the target's front: one architecture.
    target = make([(w, 0.5 + w / 100) for w in range(6)] + [(9, 0.9)] * 3)
    stayed = transfer_insights(source, target, seed=0, n_boot=200).by_analysis(
        "front transfer")[0]
    assert stayed.estimate == 1 and "1 of the 1 distinct" in stayed.sentence


def test_too_few_trials_say_so() -> None:
    study = _study(["maximize"], ["accuracy"])
    study.add_trials([optuna.trial.create_trial(value=0.5)])
    found = study_insights(study)
    assert found.findings == [] and "too few" in found.notes[0]


STUDY_FILES = ["vit_search", "efficient_convnets", "multi_objective", "robustness",
               "transfer_cifar10_to_imagenet", "quickstart"]


def _fill(study: optuna.Study, space: dict, names: list[str], rng: random.Random,
          n: int = 16) -> None:
    """Trials drawn from the study file's own distributions, values from a planted rule."""
    for _ in range(n):
        params = {}
        for name, dist in space.items():
            if isinstance(dist, CategoricalDistribution):
                params[name] = rng.choice(dist.choices)
            elif isinstance(dist, IntDistribution):
                params[name] = rng.randrange(dist.low, dist.high + 1, dist.step)
            else:
                params[name] = rng.uniform(dist.low, dist.high)
        u = rng.random()
        metrics = {"accuracy": 0.5 + 0.4 * u, "clean_accuracy": 0.5 + 0.4 * u,
                   "corrupt_accuracy": 0.3 + 0.3 * u, "adversarial_accuracy": 0.6 - 0.3 * u,
                   "flops": 1e8 * (1 + u), "params": 1e6 * (1 + u), "latency": 0.01 * (1 + u),
                   "memory": 1e7 * (1 + u), "weighted_score": u, "train_time": 5.0}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=space, values=[metrics[m] for m in names],
            user_attrs={"metrics": metrics}))


@pytest.mark.parametrize("name", STUDY_FILES)
def test_insights_command_on_each_case_study_space(name: str, tmp_path, capsys) -> None:
    from neuromosaic_optuna.cli import main
    from neuromosaic_optuna.config import load_study_file
    from neuromosaic_optuna.space import SearchSpace
    from neuromosaic_optuna.study import create_study

    path = f"studies/{name}.toml"
    config = load_study_file(path)
    url = f"sqlite:///{tmp_path / 'i.db'}"
    study = create_study(config, storage=url)
    space = SearchSpace(config.search_space).distributions
    _fill(study, space, config.metric_names, random.Random(0))
    if config.source_task is not None:  # the transfer study: its source study, same cells
        from neuromosaic_optuna.transfer import source_config, source_study_name

        source = create_study(source_config(config), storage=url,
                              study_name=source_study_name(config, study.study_name))
        _fill(source, space, config.metric_names, random.Random(0))
    assert main(["insights", path, "--storage", url, "--bootstrap", "100"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(study.study_name) and "16 complete trials" in out[0]
    sections = [i for i, line in enumerate(out) if line.startswith("[")]
    assert "[marginal effect]" in out
    for start, end in zip(sections, sections[1:] + [len(out)], strict=True):
        body = [line for line in out[start + 1:end] if line.startswith("  ")]
        assert body, f"analysis {out[start]} printed nothing"
    assert any("CLAIM" in line or "cannot support a claim" in line for line in out)
    if config.source_task is not None:
        assert "[rank transfer]" in out and "[front transfer]" in out


def test_insights_command_unknown_study_is_one_line(tmp_path, capsys) -> None:
    from neuromosaic_optuna.cli import main

    url = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["insights", "studies/quickstart.toml", "--storage", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert not (tmp_path / "none.db").exists()
