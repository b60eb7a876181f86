"""Device selection (issue 16, item 1): `device` in any study-file layer, $NEUROMOSAIC_DEVICE,
`--device`; precedence CLI > environment > file; a missing device is one line and exit 2
before anything is stored. CUDA itself is mocked: these tests run on CPU-only machines."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from neuromosaic_optuna import training
from neuromosaic_optuna.cli import main
from neuromosaic_optuna.config import ConfigError, load_config, load_study_file
from neuromosaic_optuna.training import resolve_device, train_model

ROOT = Path(__file__).resolve().parent.parent
QUICK = ROOT / "studies" / "quickstart.toml"
_BASE = {"name": "d", "architecture_type": "conv_net", "search_space": {"w": [1, 2]}}


def _no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process sees no CUDA device and no MPS (torch's own functions stay untouched:
    torch._dynamo inspects them)."""
    monkeypatch.setattr(training, "cuda_device_count", lambda: 0)
    monkeypatch.setattr(training, "_has_mps", lambda: False)


def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_accelerator(monkeypatch)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(training, "_has_mps", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(training, "cuda_device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match="cuda:2 is not available .*2 CUDA device"):
        resolve_device("cuda:2")


def test_missing_devices_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_accelerator(monkeypatch)
    assert resolve_device("cpu") == torch.device("cpu")
    for spec in ("cuda", "cuda:0", "mps"):
        with pytest.raises(ConfigError, match="not available on this machine|no CUDA device"):
            resolve_device(spec)


def test_device_in_every_layer_and_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEUROMOSAIC_DEVICE", raising=False)
    assert load_config(_BASE).device == "auto"
    assert load_config({**_BASE, "device": "CPU"}).device == "cpu"
    assert load_config({"experiment": _BASE, "defaults": {"device": "mps"}}).device == "mps"
    layered = {"experiment": {**_BASE, "device": "cpu"},
               "budget": {"default": "g", "g": {"device": "cuda:1"}}}
    assert load_config(layered).device == "cuda:1"  # the budget layer beats [experiment]
    monkeypatch.setenv("NEUROMOSAIC_DEVICE", "cuda:3")
    assert load_config(layered).device == "cuda:3"  # the environment beats the file
    assert load_config(layered, overrides={"device": "cpu"}).device == "cpu"  # CLI wins
    with pytest.raises(ConfigError, match=r"--device.*expected auto, cpu, cuda, cuda:N or mps"):
        load_config(_BASE, overrides={"device": "tpu"})
    monkeypatch.setenv("NEUROMOSAIC_DEVICE", "gpu")
    with pytest.raises(ConfigError, match=r"\$NEUROMOSAIC_DEVICE"):
        load_config(_BASE)
    with pytest.raises(ConfigError, match="experiment.device"):
        load_config({**_BASE, "device": 1}, overrides={"device": "cpu"})


@pytest.mark.parametrize("how", ["flag", "env"])
def test_missing_cuda_exits_2_in_one_line_and_stores_nothing(
        how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _no_accelerator(monkeypatch)
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "never.db"
    args = ["run", str(QUICK), "--budget", "smoke", "--storage", f"sqlite:///{db}"]
    if how == "flag":
        args += ["--device", "cuda"]
    else:
        monkeypatch.setenv("NEUROMOSAIC_DEVICE", "cuda:0")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not available" in err and "Traceback" not in err
    assert not db.exists()


def test_the_run_says_which_device(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    _no_accelerator(monkeypatch)
    monkeypatch.delenv("NEUROMOSAIC_DEVICE", raising=False)
    from neuromosaic_optuna.objective import Objective

    objective = Objective(load_study_file(QUICK, budget="smoke"))
    objective.preflight()
    assert objective.device_line() == "device: cpu (device = 'auto')"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_train_on_cuda_and_reload_on_cpu(tmp_path: Path) -> None:
    ds = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    model = torch.nn.Linear(4, 2)
    train_model(model, ds, ds, epochs=1, device="cuda")
    assert next(model.parameters()).is_cuda
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, tmp_path / "w.pt")
    state = torch.load(tmp_path / "w.pt", map_location="cpu", weights_only=True)
    assert all(v.device.type == "cpu" for v in state.values())


def test_workers_round_robin_over_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from neuromosaic_optuna.study import place_workers

    monkeypatch.delenv("NEUROMOSAIC_DEVICE", raising=False)
    auto = load_config(_BASE)
    monkeypatch.setattr(training, "cuda_device_count", lambda: 1)
    assert place_workers(auto, 3) == ["auto", "auto", "auto"]
    monkeypatch.setattr(training, "cuda_device_count", lambda: 2)
    assert place_workers(auto, 3) == ["cuda:0", "cuda:1", "cuda:0"]
    assert place_workers(load_config({**_BASE, "device": "cpu"}), 2) == ["cpu", "cpu"]
    assert place_workers(auto, 4, ["cuda:1", "cuda:3"]) == ["cuda:1", "cuda:3"] * 2


def test_devices_flag_checks_every_device(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    _no_accelerator(monkeypatch)
    db = tmp_path / "never.db"
    assert main(["run", str(QUICK), "--budget", "smoke", "--storage", f"sqlite:///{db}",
                 "--device", "cpu", "--workers", "2", "--devices", "cpu,cuda:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--devices: cuda:1 is not available" in err and len(err.splitlines()) == 1
    assert not db.exists()
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda, cuda:N or mps"):
        resolve_device("cuda:x")
