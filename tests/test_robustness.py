"""Tests of neuromosaic_optuna.robustness: perturbation statistics, attacks, scores, purity."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from doctests import run_doctests
from torch import nn
from torch.utils.data import TensorDataset

from neuromosaic_optuna import robustness
from neuromosaic_optuna.data import load_dataset
from neuromosaic_optuna.robustness import (
    DEFAULT_EPSILON,
    augment_batch,
    corrupt,
    corruption_constants,
    evaluate_robustness,
    fgsm,
    gaussian_noise,
    pgd,
    robustness_scores,
)
from neuromosaic_optuna.training import train_model

SEED_TABLE = {"input_noise": [0.1, 0.2, 0.3], "adversarial": ["fgsm", "pgd"],
              "corruption": ["gaussian", "shot", "impulse"]}


Trained = tuple[nn.Sequential, torch.Tensor, torch.Tensor]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tiny_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Dropout(0.1), nn.Linear(64, 10))


@pytest.fixture(scope="module")
def trained() -> Trained:
    """A small BN CNN trained on 8x8 digits for a few epochs, and the test split."""
    torch.manual_seed(0)
    splits = load_dataset("digits", resolution=8, seed=0)
    model = _tiny_cnn()
    result = train_model(model, splits.train, splits.val, epochs=6, batch_size=64,
                         learning_rate=1e-2, seed=0)
    assert result.val_accuracy > 0.7
    assert isinstance(splits.test, TensorDataset)
    x, y = splits.test.tensors
    return model, x, y


def _bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_state(before: dict[str, torch.Tensor], model: nn.Module) -> None:
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key


# --------------------------------------------------------------------------- corruptions

def test_corruption_constants_are_hendrycks_dietterich() -> None:
    assert corruption_constants("gaussian", 32) == (0.04, 0.06, 0.08, 0.09, 0.10)
    assert corruption_constants("shot", 64) == (500, 250, 100, 75, 50)
    assert corruption_constants("impulse_noise", 8) == (0.01, 0.02, 0.03, 0.05, 0.07)
    assert corruption_constants("gaussian_noise", 65) == (0.08, 0.12, 0.18, 0.26, 0.38)
    assert corruption_constants("shot", 224) == (60, 25, 12, 5, 3)
    assert corruption_constants("impulse", 224) == (0.03, 0.06, 0.09, 0.17, 0.27)
    assert corruption_constants("shot", 8, "imagenet") == (60, 25, 12, 5, 3)
    assert corruption_constants("shot", 224, "cifar10") == (500, 250, 100, 75, 50)
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        corruption_constants("fog", 32)
    with pytest.raises(ValueError, match="benchmark"):
        corruption_constants("shot", 32, "mnist")


def _flat(value: float, size: int = 100) -> torch.Tensor:
    return torch.full((1, 3, size, size), value)


@pytest.mark.parametrize("benchmark", ["cifar10", "imagenet"])
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_gaussian_corruption_statistics(benchmark: str, severity: int) -> None:
    c = corruption_constants("gaussian", 32, benchmark)[severity - 1]
    for level in (0.5, 0.2):
        x = _flat(level)
        out = corrupt(x, "gaussian", severity, generator=_gen(severity), benchmark=benchmark)
        assert out.min() >= 0 and out.max() <= 1
        # Reference: Hendrycks & Dietterich's formula with numpy's RNG.
        ref = np.clip(level + np.random.default_rng(0).normal(0, c, 2 * 10**5), 0, 1)
        diff = (out - x).flatten().double()
        assert diff.std().item() == pytest.approx(ref.std(), rel=0.02)
        assert out.mean().item() == pytest.approx(ref.mean(), abs=0.003)
        if level == 0.5 and c <= 0.1:  # clamping is > 5 sigma away: the std is c itself
            assert diff.std().item() == pytest.approx(c, rel=0.02)


@pytest.mark.parametrize("benchmark", ["cifar10", "imagenet"])
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_shot_corruption_statistics(benchmark: str, severity: int) -> None:
    c = corruption_constants("shot", 32, benchmark)[severity - 1]
    for level in (0.3, 0.6):
        x = _flat(level)
        out = corrupt(x, "shot", severity, generator=_gen(severity), benchmark=benchmark)
        assert out.min() >= 0 and out.max() <= 1
        # Values are counts / c.
        counts = torch.where(out < 1, out * c, 0.0)
        assert torch.allclose(counts, counts.round(), atol=1e-3)
        ref = np.clip(np.random.default_rng(0).poisson(level * c, 2 * 10**5) / c, 0, 1)
        assert out.var().item() == pytest.approx(ref.var(), rel=0.03)
        assert out.mean().item() == pytest.approx(ref.mean(), abs=0.003)
        if benchmark == "cifar10":  # clipping is negligible: Poisson variance x / c
            assert out.var().item() == pytest.approx(level / c, rel=0.03)
            assert out.mean().item() == pytest.approx(level, abs=0.002)


@pytest.mark.parametrize("benchmark", ["cifar10", "imagenet"])
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_impulse_corruption_statistics(benchmark: str, severity: int) -> None:
    amount = corruption_constants("impulse", 32, benchmark)[severity - 1]
    x = _flat(0.5)
    out = corrupt(x, "impulse", severity, generator=_gen(severity), benchmark=benchmark)
    changed = out != x
    n = x.numel()
    # Binomial fraction: 4 standard errors.
    assert changed.float().mean().item() == pytest.approx(
        amount, abs=4 * (amount * (1 - amount) / n) ** 0.5)
    salt = (out == 1).sum().item()
    pepper = (out == 0).sum().item()
    assert salt + pepper == changed.sum().item()
    assert salt / (salt + pepper) == pytest.approx(0.5, abs=4 * (0.25 / (salt + pepper)) ** 0.5)
    # Per element, channels independently: some pixels have only some channels flipped.
    per_pixel = changed.sum(dim=1)
    assert ((per_pixel > 0) & (per_pixel < 3)).any()


def test_auto_constants_follow_image_height() -> None:
    small = corrupt(_flat(0.5, 64), "gaussian", 5, generator=_gen())
    large = corrupt(_flat(0.5, 65), "gaussian", 5, generator=_gen())
    assert (small - 0.5).std().item() == pytest.approx(0.10, rel=0.03)
    ref = np.clip(0.5 + np.random.default_rng(0).normal(0, 0.38, 2 * 10**5), 0, 1).std()
    assert (large - 0.5).std().item() == pytest.approx(ref, rel=0.03)


def test_gaussian_noise_statistics_and_clamp() -> None:
    for std in (0.1, 0.2, 0.3):
        out = gaussian_noise(_flat(0.5), std, generator=_gen())
        ref = np.clip(0.5 + np.random.default_rng(1).normal(0, std, 2 * 10**5), 0, 1).std()
        assert (out - 0.5).std().item() == pytest.approx(ref, rel=0.02)
        assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(gaussian_noise(_flat(0.5, 4), 0.0, generator=_gen()), _flat(0.5, 4))
    with pytest.raises(ValueError, match="std"):
        gaussian_noise(_flat(0.5, 4), -0.1, generator=_gen())


def test_perturbations_use_the_generator_only() -> None:
    x = _flat(0.5, 16)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    outs = []
    for kind in ("gaussian", "shot", "impulse"):
        a = corrupt(x, kind, 3, generator=_gen(7))
        b = corrupt(x, kind, 3, generator=_gen(7))
        c = corrupt(x, kind, 3, generator=_gen(8))
        assert torch.equal(a, b)
        assert not torch.equal(a, c)
        outs.append(a)
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    with pytest.raises(ValueError, match="severity"):
        corrupt(x, "shot", 6, generator=_gen())
    with pytest.raises(ValueError, match="severity"):
        corrupt(x, "shot", 0, generator=_gen())


# --------------------------------------------------------------------------- attacks

def test_fgsm_on_a_linear_model_moves_by_eps_along_the_gradient_sign() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(12, 3)
    model = nn.Sequential(nn.Flatten(), linear)
    x = 0.2 + 0.6 * torch.rand(16, 3, 2, 2, generator=_gen(1))  # interior: no clamping
    y = torch.randint(0, 3, (16,), generator=_gen(2))
    eps = 0.05
    adv = fgsm(model, x, y, eps)
    # Analytic input gradient of the cross-entropy of a linear model: W^T (softmax - onehot).
    w = linear.weight.detach().double()
    logits = x.flatten(1).double() @ w.T + linear.bias.detach().double()
    grad = (torch.softmax(logits, dim=1) - nn.functional.one_hot(y, 3).double()) @ w
    expected = x.flatten(1).double() + eps * grad.sign()
    assert torch.allclose(adv.flatten(1).double(), expected, atol=1e-6)
    assert torch.allclose((adv - x).abs(), torch.full_like(x, eps), atol=1e-6)
    # The attack increases the loss.
    loss = nn.functional.cross_entropy
    assert loss(model(adv), y) > loss(model(x), y)


def test_fgsm_clamps_to_the_pixel_range() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    x = torch.cat([torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)])
    adv = fgsm(model, x, torch.tensor([0, 1]), 0.3)
    assert adv.min() >= 0 and adv.max() <= 1


def test_epsilon_zero_gives_clean_accuracy(trained: Trained
                                           ) -> None:
    model, x, y = trained
    assert torch.equal(fgsm(model, x[:8], y[:8], 0.0), x[:8])
    assert torch.equal(pgd(model, x[:8], y[:8], 0.0), x[:8])
    result = evaluate_robustness(model, x, y, {"adversarial": ["fgsm", "pgd"]}, epsilon=0.0)
    clean = result.metrics["clean_accuracy"]
    assert 0.7 < clean < 1.0
    assert result.details == {"fgsm@0": clean, "pgd@0": clean}
    assert result.metrics["adversarial_accuracy"] == clean
    assert result.metrics["adversarial_robustness"] == 1.0
    assert result.metrics["stability_index"] == 0.0


def test_pgd_is_at_least_as_strong_as_fgsm(trained: Trained
                                           ) -> None:
    model, x, y = trained
    for eps in (4 / 255, 8 / 255, 0.05):
        result = evaluate_robustness(model, x, y, {"adversarial": ["fgsm", "pgd"]},
                                     epsilon=eps)
        key = f"{eps:g}"
        assert result.details[f"pgd@{key}"] <= result.details[f"fgsm@{key}"]
        assert result.details[f"fgsm@{key}"] < result.metrics["clean_accuracy"]
    # An undefended digit model loses much of its accuracy to PGD at 0.05.
    assert result.details["pgd@0.05"] < 0.8 * result.metrics["clean_accuracy"]


def test_pgd_stays_in_the_ball_and_leaves_gradients_alone(
        trained: Trained) -> None:
    model, x, y = trained
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    try:
        xb, yb = x[:64], y[:64]
        for random_start in (True, False):
            adv = pgd(model, xb, yb, 0.05, steps=5, random_start=random_start, generator=_gen())
            assert (adv - xb).abs().max() <= 0.05 + 1e-6
            assert adv.min() >= 0 and adv.max() <= 1
        fgsm(model, xb, yb, 0.05)
        for p in model.parameters():
            assert p.grad is not None and torch.all(p.grad == 7.0)
    finally:
        for p in model.parameters():
            p.grad = None
    same = pgd(model, xb, yb, 0.05, generator=_gen(3))
    assert torch.equal(same, pgd(model, xb, yb, 0.05, generator=_gen(3)))
    assert not torch.equal(same, pgd(model, xb, yb, 0.05, generator=_gen(4)))
    with pytest.raises(ValueError, match="steps"):
        pgd(model, xb, yb, 0.05, steps=0)
    with pytest.raises(ValueError, match="eps"):
        fgsm(model, xb, yb, -0.1)


def test_attacks_run_in_eval_mode_and_restore_modes(
        trained: Trained) -> None:
    model, x, y = trained
    xb, yb = x[:32], y[:32]
    model.eval()
    reference = fgsm(model, xb, yb, 0.05)
    model.train()
    model[1].eval()  # a frozen BN layer inside a training model keeps its own mode
    before = _bn_state(model)
    try:
        assert torch.equal(fgsm(model, xb, yb, 0.05), reference)  # dropout off, BN frozen
        pgd(model, xb, yb, 0.05, steps=2, generator=_gen())
        assert model.training and not model[1].training and model[4].training
        _assert_same_state(before, model)
    finally:
        model.eval()


# --------------------------------------------------------------------------- evaluation

def test_full_evaluation_follows_the_seed_formulas(
        trained: Trained) -> None:
    model, x, y = trained
    result = evaluate_robustness(model, x, y, SEED_TABLE, seed=3)
    m, d = result.metrics, result.details
    eps = f"{DEFAULT_EPSILON:g}"
    noise = [d[f"noise@{s}"] for s in ("0.1", "0.2", "0.3")]
    corrupted = [d[f"{k}@{s}"] for k in ("gaussian", "shot", "impulse") for s in range(1, 6)]
    adversarial = [d[f"fgsm@{eps}"], d[f"pgd@{eps}"]]
    assert len(d) == 3 + 15 + 3 + 2
    assert m["noise_accuracy"] == pytest.approx(np.mean(noise))
    assert m["corrupt_accuracy"] == pytest.approx(np.mean(corrupted))
    assert m["adversarial_accuracy"] == pytest.approx(np.mean(adversarial))
    for kind in ("gaussian", "shot", "impulse"):
        per = [d[f"{kind}@{s}"] for s in range(1, 6)]
        assert d[f"corrupt:{kind}"] == pytest.approx(np.mean(per))
    clean = m["clean_accuracy"]
    assert m["corruption_resistance"] == pytest.approx(m["corrupt_accuracy"] / clean)
    assert m["adversarial_robustness"] == pytest.approx(m["adversarial_accuracy"] / clean)
    assert m["stability_index"] == pytest.approx(np.std([clean, *noise, *corrupted,
                                                         *adversarial]))
    assert set(m) == {"clean_accuracy", "noise_accuracy", "corrupt_accuracy",
                      "adversarial_accuracy", "corruption_resistance",
                      "adversarial_robustness", "stability_index"}
    # Sanity of the values: accuracy falls with the noise level and the impulse severity.
    assert noise[0] >= noise[2]
    assert d["impulse@1"] > d["impulse@5"]
    assert all(0.0 <= v <= 1.0 for v in d.values())


def test_evaluation_is_deterministic_and_per_perturbation(
        trained: Trained) -> None:
    model, x, y = trained
    table = {"input_noise": [0.3], "corruption": ["impulse"], "adversarial": ["pgd"]}
    a = evaluate_robustness(model, x, y, table, severities=(5,), seed=11, batch_size=100)
    b = evaluate_robustness(model, x, y, table, severities=(5,), seed=11, batch_size=100)
    assert a == b
    c = evaluate_robustness(model, x, y, table, severities=(5,), seed=12)
    assert c.details != a.details
    alone = evaluate_robustness(model, x, y, {"input_noise": [0.3]}, seed=11, batch_size=100)
    assert alone.details["noise@0.3"] == a.details["noise@0.3"]
    assert set(alone.metrics) == {"clean_accuracy", "noise_accuracy", "stability_index"}


def test_evaluation_leaves_the_model_unchanged(
        trained: Trained) -> None:
    model, x, y = trained
    model.train()
    before = _bn_state(model)
    try:
        evaluate_robustness(model, x[:100], y[:100], SEED_TABLE, severities=(1, 5))
        assert model.training and all(mod.training for mod in model.modules())
        _assert_same_state(before, model)
        assert all(p.grad is None for p in model.parameters())
    finally:
        model.eval()


def test_evaluation_options_from_the_table(
        trained: Trained) -> None:
    model, x, y = trained
    xb, yb = x[:50], y[:50]
    table = {"adversarial": ["fgsm"], "epsilon": [0.01, 0.1], "corruption": ["shot_noise"],
             "severities": [2], "pgd_steps": 3}
    result = evaluate_robustness(model, xb, yb, table)
    assert set(result.details) == {"fgsm@0.01", "fgsm@0.1", "shot@2", "corrupt:shot"}
    explicit = evaluate_robustness(model, xb, yb, table, epsilon=0.2, severities=(4,))
    assert set(explicit.details) == {"fgsm@0.2", "shot@4", "corrupt:shot"}


@pytest.mark.parametrize(("table", "match"), [
    ({"noise": [0.1]}, "unknown key"),
    ({"adversarial": ["cw"]}, "unknown 'cw'"),
    ({"adversarial": "fgsm"}, "list of names"),
    ({"corruption": ["fog"]}, "unknown corruption"),
    ({"input_noise": [-0.1]}, "input_noise"),
    ({"corruption": ["shot"], "severities": [6]}, "severities"),
    ({"adversarial": ["pgd"], "pgd_steps": 0}, "pgd_steps"),
])
def test_evaluation_rejects_bad_tables(table: dict[str, object], match: str) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    x, y = torch.rand(4, 3, 2, 2, generator=_gen()), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=match):
        evaluate_robustness(model, x, y, table)


def test_evaluation_rejects_normalised_or_misshaped_inputs() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate_robustness(model, torch.randn(4, 3, 2, 2, generator=_gen()), y, {})
    with pytest.raises(ValueError, match="shape"):
        evaluate_robustness(model, torch.rand(4, 12), y, {})
    with pytest.raises(ValueError, match="one label per image"):
        evaluate_robustness(model, torch.rand(4, 3, 2, 2), y[:3], {})


def test_a_constant_model_scores_exactly() -> None:
    linear = nn.Linear(12, 2)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor([1.0, 0.0]))
    model = nn.Sequential(nn.Flatten(), linear)
    x = torch.rand(30, 3, 2, 2, generator=_gen())
    y = torch.tensor([0] * 7 + [1] * 23)
    result = evaluate_robustness(model, x, y, SEED_TABLE)
    assert set(result.details.values()) == {7 / 30}
    assert result.metrics["corruption_resistance"] == 1.0
    assert result.metrics["adversarial_robustness"] == 1.0
    assert result.metrics["stability_index"] == 0.0


# --------------------------------------------------------------------------- scores

def test_robustness_scores_formulas() -> None:
    accs = [0.9, 0.7, 0.4, 0.2]
    scores = robustness_scores(0.9, 0.6, 0.3, accs)
    assert scores == {"corruption_resistance": pytest.approx(0.6 / 0.9),
                      "adversarial_robustness": pytest.approx(0.3 / 0.9),
                      "stability_index": pytest.approx(float(np.std(accs)))}
    assert scores["stability_index"] != pytest.approx(float(np.std(accs, ddof=1)))
    zero = robustness_scores(0.0, 0.0, 0.0, [0.0, 0.0])
    assert zero == {"corruption_resistance": 0.0, "adversarial_robustness": 0.0,
                    "stability_index": 0.0}
    assert robustness_scores(0.5, None, None, [0.5]) == {"stability_index": 0.0}
    with pytest.raises(ValueError, match="at least one"):
        robustness_scores(0.5, 0.4, 0.3, [])


# --------------------------------------------------------------------------- training

def test_augment_batch_adversarial_stays_in_the_ball(
        trained: Trained) -> None:
    model, x, y = trained
    xb, yb = x[:128], y[:128]
    model.train()
    before = _bn_state(model)
    try:
        for eps in (2 / 255, 0.05, 0.2):
            out = augment_batch(model, xb, yb, adv_eps=eps, generator=_gen())
            assert (out - xb).abs().max() <= eps + 1e-6
            assert out.min() >= 0 and out.max() <= 1
            assert not out.requires_grad
        assert model.training and all(mod.training for mod in model.modules())
        _assert_same_state(before, model)  # the attack's forward did not move BN statistics
        assert all(p.grad is None for p in model.parameters())
    finally:
        model.eval()
    loss = nn.functional.cross_entropy
    with torch.no_grad():
        adv = augment_batch(model, xb, yb, adv_eps=0.05, generator=_gen())
        noisy = (xb + 0.05 * (2 * torch.rand(xb.shape, generator=_gen(5)) - 1)).clamp(0, 1)
        assert loss(model(adv), yb) > loss(model(noisy), yb) > 0


def test_augment_batch_noise_and_both(trained: Trained
                                      ) -> None:
    model, x, y = trained
    xb, yb = x[:128], y[:128]
    assert augment_batch(model, xb, yb) is xb
    noisy = augment_batch(model, xb, yb, noise_std=0.1, generator=_gen())
    assert torch.equal(noisy, gaussian_noise(xb, 0.1, generator=_gen()))
    both = augment_batch(model, xb, yb, noise_std=0.1, adv_eps=0.03, generator=_gen())
    assert (both - noisy).abs().max() <= 0.03 + 1e-6  # the attack is around the noisy batch
    assert both.min() >= 0 and both.max() <= 1
    assert torch.equal(both, augment_batch(model, xb, yb, noise_std=0.1, adv_eps=0.03,
                                           generator=_gen()))
    with pytest.raises(ValueError, match="generator"):
        augment_batch(model, xb, yb, noise_std=0.1)
    with pytest.raises(ValueError, match="adv_eps"):
        augment_batch(model, xb, yb, adv_eps=-1.0, generator=_gen())


def test_augment_batch_in_a_training_loop() -> None:
    torch.manual_seed(0)
    splits = load_dataset("digits", resolution=8, seed=0, max_train_samples=400)
    model = _tiny_cnn()

    def augment(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor,
                g: torch.Generator) -> torch.Tensor:
        return augment_batch(m, xb, yb, noise_std=0.05, adv_eps=4 / 255, generator=g)

    result = train_model(model, splits.train, splits.val, epochs=3, batch_size=64,
                         learning_rate=1e-2, augment=augment)
    assert result.val_accuracy > 0.3
    assert np.isfinite(result.train_loss)


def test_module_doctests() -> None:
    result = run_doctests(robustness, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
