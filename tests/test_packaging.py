"""The package as a user installs it: a wheel built from a clean copy of the tree, installed
outside the checkout, ships the study files and runs a shipped study by name.

Offline: the wheel is built with the environment's setuptools (``--no-build-isolation``) and
nothing is fetched (``--no-index``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from neuromosaic_optuna import cli

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.name for p in (ROOT / "studies").glob("*.toml"))


def _pip(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _py_files(package: Path) -> set[str]:
    return {str(p.relative_to(package)) for p in package.rglob("*.py")
            if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of a fresh copy of the tree (no stale ``build/``), installed into a target
    folder outside the checkout; returns the target."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("neuromosaic_optuna", "studies"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", base / "dist", src,
         cwd=base)
    wheels = list((base / "dist").glob("neuromosaic_optuna-*.whl"))
    assert len(wheels) == 1, wheels
    target = base / "site"
    _pip("install", "--no-deps", "--no-index", "--target", target, wheels[0], cwd=base)
    return target


def _neuromosaic(target: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NEUROMOSAIC_STORAGE")}
    env["PYTHONPATH"] = str(target)  # only the installed copy: not the checkout
    return subprocess.run([sys.executable, "-m", "neuromosaic_optuna.cli", *argv], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_wheel_holds_every_module_and_the_study_files(installed: Path) -> None:
    package = installed / "neuromosaic_optuna"
    assert _py_files(package) - {"studies/__init__.py"} == _py_files(ROOT / "neuromosaic_optuna")
    assert sorted(p.name for p in (package / "studies").glob("*.toml")) == SHIPPED
    assert (package / "py.typed").is_file()
    assert not (installed / "studies").exists()  # mapped into the package, not top level


def test_installed_wheel_lists_and_runs_shipped_studies_from_an_empty_directory(
        installed: Path, tmp_path: Path) -> None:
    where = _neuromosaic(installed, tmp_path, "studies")
    assert where.returncode == 0, where.stderr
    assert len(SHIPPED) >= 7 and "quickstart.toml" in SHIPPED
    for name in SHIPPED:
        assert name in where.stdout
    assert "(invalid" not in where.stdout

    done = _neuromosaic(installed, tmp_path, "run", "quickstart", "--budget", "smoke",
                        "--storage", "sqlite:///x.db")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Pareto front of 'quickstart-smoke'" in done.stdout
    assert "knee: trial" in done.stdout and "hypervolume" in done.stdout
    assert (tmp_path / "x.db").is_file()

    missing = _neuromosaic(installed, tmp_path, "run", "no_such_study", "--storage",
                           "sqlite:///y.db")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "neuromosaic: error: no_such_study: no such study file; `neuromosaic studies` lists "
        "the shipped ones"]
    assert not (tmp_path / "y.db").exists()


@pytest.mark.parametrize("name", ["quickstart", "quickstart.toml"])
def test_a_bare_name_is_a_shipped_study(name: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with cli._study_path(name) as path:
        assert Path(path).read_text() == (ROOT / "studies" / "quickstart.toml").read_text()


def test_an_existing_path_wins_over_a_shipped_name(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart.toml").write_text("# mine\n")
    with cli._study_path("quickstart.toml") as path:
        assert Path(path).read_text() == "# mine\n"
    with cli._study_path("sub/quickstart.toml") as path:  # a path is never a shipped name
        assert path == "sub/quickstart.toml"
