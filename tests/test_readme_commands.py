"""Every `neuromosaic` command shown in the README's shell blocks and command table runs.

Commands run in-process through ``main(argv)`` with the ``smoke`` budget substituted (the
``full`` budget is run as written: it must fail in one line saying where it looked for the
data). The PostgreSQL block runs against the test cluster. The install line's pip steps and
the test command itself are what CI does, so they are not repeated here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from neuromosaic_optuna.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _shell_commands() -> list[list[str]]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            for part in line.split("&&"):
                argv = shlex.split(part.strip())
                if argv and argv[0] == "neuromosaic":
                    commands.append(argv[1:])
    return commands


def _smoke(argv: list[str]) -> list[str]:
    if "--budget" in argv:
        return argv
    if argv[0] in ("run", "worker", "pareto", "report", "robustness", "dashboard", "insights"):
        return [*argv, "--budget", "smoke"]
    return argv


def test_readme_shows_the_case_study_and_shared_study_commands() -> None:
    commands = [" ".join(c) for c in _shell_commands()]
    assert "run studies/quickstart.toml" in commands
    assert any(c.startswith("pareto studies/multi_objective.toml") for c in commands)
    assert "worker studies/quickstart.toml" in commands


def test_readme_shell_commands_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    db = f"sqlite:///{tmp_path / 'readme.db'}"
    monkeypatch.setenv("NEUROMOSAIC_STORAGE", db)
    monkeypatch.setenv("NEUROMOSAIC_IMAGENET_DIR", str(tmp_path / "no-imagenet"))
    for argv in _shell_commands():
        if argv[0] == "worker":
            continue  # needs the shared study of the PostgreSQL block: tested below
        args = _smoke(argv)
        if argv[0] == "run":
            args += ["--no-progress", "--artifact-dir", str(tmp_path / "art")]
        code = main(args)
        captured = capsys.readouterr()
        if "--budget" in argv and "full" in argv:
            assert code == 2, argv
            assert "NEUROMOSAIC_IMAGENET_DIR" in captured.err and "dataset_path" in captured.err
        else:
            assert code == 0, (argv, captured.err[-500:])


@pytest.mark.postgres
def test_readme_shared_study_commands_on_postgres(postgresql_db_url: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import optuna

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("NEUROMOSAIC_STORAGE", postgresql_db_url)
    block = re.search(r"export NEUROMOSAIC_STORAGE=.*?\n(.*?)```", README, re.S)
    assert block is not None
    commands = [shlex.split(line.split("  #")[0]) for line in block.group(1).splitlines()
                if line.startswith("neuromosaic ")]
    assert [c[1] for c in commands] == ["run", "worker"]
    for argv in commands:
        extra = ["--no-progress"] if argv[1] == "run" else []
        assert main([*_smoke(argv[1:]), *extra, "--artifact-dir", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "worker ran 0 trial(s)" in out  # the run's workers already finished every slot
    study = optuna.load_study(study_name="quickstart-smoke", storage=postgresql_db_url)
    assert len(study.trials) == 2
