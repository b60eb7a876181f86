"""Issue 4 end to end: ViT studies, patch-size rejection, CIFAR-10 / ImageFolder studies on
generated files, and the one-line missing-dataset error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from datafiles import make_cifar10_tree, make_imagefolder_tree
from optuna.trial import TrialState

import neuromosaic_optuna as nm
from neuromosaic_optuna import training
from neuromosaic_optuna.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_patch_size_that_does_not_divide_the_image_is_rejected_before_training(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an unbuildable architecture must not be trained")

    monkeypatch.setattr(training, "train_model", forbidden)
    config = nm.load_study_file(ROOT / "studies/vit_search.toml", budget="smoke",
                                overrides={"resolution": 48})
    study = nm.create_study(config)
    study.enqueue_trial({"num_layers": 4, "num_heads": 4, "mlp_ratio": 2.0, "patch_size": 32})
    study.optimize(nm.Objective(config, timing=False), n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["status"] == "invalid"
    assert "patch_size 32 does not divide" in trial.user_attrs["reason"]
    assert "48" in trial.user_attrs["reason"]


def test_vit_smoke_study_records_attention_flops() -> None:
    cfg = nm.load_study_file(ROOT / "studies/vit_search.toml", budget="smoke")
    study = nm.create_study(cfg)
    study.enqueue_trial({"num_layers": 4, "num_heads": 4, "mlp_ratio": 2.0, "patch_size": 8})
    study.optimize(nm.Objective(cfg, timing=False), n_trials=1)
    t = study.trials[0]
    assert t.state == TrialState.COMPLETE
    hidden, tokens, layers = 4 * cfg.head_dim, (32 // 8) ** 2 + 1, 4
    mlp = round(2.0 * hidden)
    # per layer: qkv + out projections, two attention matmuls, two MLP linears
    per_layer = tokens * (4 * hidden * hidden + 2 * tokens * hidden + 2 * hidden * mlp)
    patch_embed = 16 * 3 * 8 * 8 * hidden
    head = hidden * 10
    assert t.values[1] == layers * per_layer + patch_embed + head


def _study_file(tmp_path: Path, dataset: str, data_path: Path | None) -> Path:
    text = f"""
[experiment]
name = "{dataset}_e2e"
architecture_type = "conv_net"
objectives = ["accuracy", "flops"]
dataset = "{dataset}"
max_trials = 1
[experiment.search_space]
width_multiplier = [0.25, 0.5]
[defaults]
resolution = 16
epochs = 1
batch_size = 16
"""
    if data_path is not None:
        text += f'dataset_path = "{data_path}"\n'
    text += """[defaults.model_options]
convnet_stages = ["ds_r1_k3_s1_e1_c16", "ir_r1_k3_s2_e6_c24"]
"""
    path = tmp_path / f"{dataset}.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("dataset", ["cifar10", "imagefolder", "imagenet"])
def test_real_loaders_end_to_end_through_the_cli(dataset: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    if dataset == "cifar10":
        data = make_cifar10_tree(tmp_path / "cifar", n_per_batch=20)
        classes = 10
    else:
        data = make_imagefolder_tree(tmp_path / "tree", n_per_class=6, splits=("train", "val"))
        classes = 3
    study_file = _study_file(tmp_path, dataset, data)
    db = f"sqlite:///{tmp_path / 'e2e.db'}"
    assert main(["run", str(study_file), "--storage", db, "--no-progress"]) == 0
    study = optuna.load_study(study_name=f"{dataset}_e2e", storage=db)
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE
    assert 0.0 <= trial.values[0] <= 1.0
    assert trial.user_attrs["architecture"]["input_resolution"] == 16
    splits = nm.Objective(nm.load_study_file(study_file)).dataset(16)
    assert splits.num_classes == classes
    assert splits.train[0][0].shape == (3, 16, 16)


@pytest.mark.parametrize("dataset,env", [("cifar10", "NEUROMOSAIC_CIFAR10_DIR"),
                                         ("imagenet", "NEUROMOSAIC_IMAGENET_DIR")])
def test_missing_dataset_is_one_line_exit_2(dataset: str, env: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    study_file = _study_file(tmp_path, dataset, tmp_path / "nowhere")
    db = tmp_path / "never.db"
    assert main(["run", str(study_file), "--storage", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "dataset_path" in err and env in err and str(tmp_path / "nowhere") in err
    assert not db.exists()
