"""The perturbation registry: lookups, metric keys, and unknown names rejected at load time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from neuromosaic_optuna.cli import main
from neuromosaic_optuna.config import ConfigError, load_study_file
from neuromosaic_optuna.metrics import METRICS
from neuromosaic_optuna.robustness import (
    DEFAULT_EPSILON,
    GROUPS,
    PERTURBATIONS,
    ROBUSTNESS_METRICS,
    check_perturbations,
    get_perturbation,
    perturbation_names,
    register_perturbation,
)

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "studies" / "robustness.toml"


def test_registry_lookup_gives_function_group_and_metric_key() -> None:
    assert list(PERTURBATIONS) == ["noise", "gaussian", "shot", "impulse", "fgsm", "pgd"]
    fgsm = get_perturbation("FGSM")
    assert (fgsm.name, fgsm.group, fgsm.metric) == ("fgsm", "adversarial",
                                                    "adversarial_accuracy")
    assert fgsm.key(DEFAULT_EPSILON) == "fgsm@0.0313725"
    assert get_perturbation("noise").key(0.1) == "noise@0.1"
    assert get_perturbation("gaussian_noise", "corruption").key(3) == "gaussian@3"
    assert get_perturbation("shot").metric == "corrupt_accuracy"
    assert perturbation_names("corruption") == ("gaussian", "shot", "impulse")
    from neuromosaic_optuna.robustness import fgsm as fgsm_function
    assert fgsm.resolve().__module__ == fgsm_function.__module__
    assert get_perturbation("pgd").resolve().__name__ == "_apply_pgd"
    with pytest.raises(ValueError, match=r"unknown 'cw'; known: fgsm, pgd"):
        get_perturbation("cw", "adversarial")


def test_every_registry_metric_is_in_the_catalogue() -> None:
    assert set(ROBUSTNESS_METRICS) <= set(METRICS)
    assert ROBUSTNESS_METRICS == ("clean_accuracy", "noise_accuracy", "corrupt_accuracy",
                                  "adversarial_accuracy", "corruption_resistance",
                                  "adversarial_robustness", "stability_index")
    assert [g.key for g in GROUPS.values()] == ["input_noise", "corruption", "adversarial"]


def test_register_rejects_duplicates_and_unknown_groups() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_perturbation("pgd", "adversarial", lambda *a, **k: a[1])
    with pytest.raises(ValueError, match="already registered"):
        register_perturbation("gauss", "corruption", lambda *a, **k: a[1],
                              aliases=("shot_noise",))
    with pytest.raises(ValueError, match="group must be one of"):
        register_perturbation("blur", "blurs", lambda *a, **k: a[1])
    assert "blur" not in PERTURBATIONS and "gauss" not in PERTURBATIONS


def test_a_registered_perturbation_is_evaluated_under_its_key() -> None:
    torch = pytest.importorskip("torch")
    from neuromosaic_optuna.robustness import evaluate_robustness

    def invert(model, x, y, level, *, name, generator, options):  # noqa: ANN001, ANN202
        return 1.0 - x

    register_perturbation("invert", "adversarial", invert)
    try:
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
        x = torch.rand(8, 3, 2, 2, generator=torch.Generator().manual_seed(0))
        result = evaluate_robustness(model, x, torch.zeros(8, dtype=torch.long),
                                     {"adversarial": ["invert"], "epsilon": 0.5})
        assert list(result.details) == ["invert@0.5"]
        assert result.metrics["adversarial_accuracy"] == result.details["invert@0.5"]
    finally:
        del PERTURBATIONS["invert"]


def test_check_perturbations_resolves_aliases_and_defaults() -> None:
    plan = check_perturbations({"corruption": ["Gaussian_Noise", "shot"], "input_noise": 0.2})
    assert plan == {"input_noise": [0.2], "corruption": ["gaussian", "shot"],
                    "adversarial": [], "severities": [1, 2, 3, 4, 5],
                    "epsilon": [DEFAULT_EPSILON], "pgd_steps": 10}


@pytest.mark.parametrize(("old", "new", "field"), [
    ('adversarial = ["fgsm", "pgd"]', 'adversarial = ["fgsm", "cw"]',
     "experiment.perturbations.adversarial: unknown 'cw'; known: fgsm, pgd"),
    ('corruption = ["gaussian", "shot", "impulse"]', 'corruption = ["fog"]',
     "experiment.perturbations.corruption: unknown corruption 'fog'; known: gaussian, shot, "
     "impulse"),
    ("input_noise = [0.1, 0.2, 0.3]", "noise = [0.1]",
     "experiment.perturbations: unknown key(s) 'noise'"),
])
def test_unknown_perturbation_is_a_config_error_at_load_time(
        tmp_path: Path, old: str, new: str, field: str) -> None:
    text = STUDY.read_text()
    assert old in text
    path = tmp_path / "r.toml"
    path.write_text(text.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_study_file(path)
    assert str(info.value).startswith(field)
    assert "\n" not in str(info.value)


def test_unknown_perturbation_exits_2_with_one_line_before_anything_is_stored(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.toml"
    path.write_text(STUDY.read_text().replace('adversarial = ["fgsm", "pgd"]',
                                              'adversarial = ["fgsm", "cw"]'))
    db = tmp_path / "x.db"
    assert main(["run", str(path), "--storage", f"sqlite:///{db}"]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "neuromosaic: error: experiment.perturbations.adversarial: unknown 'cw'; known: fgsm, pgd"]
    assert not db.exists()


def test_importing_the_registry_does_not_import_torch() -> None:
    code = ("import sys; import neuromosaic_optuna.robustness as r; r.get_perturbation('pgd'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
