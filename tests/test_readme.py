"""The README's Python examples run as written (from the repository root)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_has_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "neuromosaic run studies/quickstart.toml" in text
    assert "python -m pytest -q" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest -q" in ci


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_example_runs(index: int, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    code = _python_blocks()[index]
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code, f"README.md[python {index}]", "exec"), namespace)  # noqa: S102
    if "study" in namespace:
        import optuna

        study = namespace["study"]
        assert isinstance(study, optuna.Study) and len(study.trials) == 2
        assert "accuracy" in capsys.readouterr().out
    if "tiny_mlp" in namespace:
        from neuromosaic_optuna.models import BuildContext, list_models

        assert "tiny_mlp" in list_models()
        built = namespace["tiny_mlp"]({"width": 8}, BuildContext(10, 8))  # type: ignore[operator]
        assert sum(p.numel() for p in built.model.parameters()) == 3 * 64 * 8 + 8 + 8 * 10 + 10
