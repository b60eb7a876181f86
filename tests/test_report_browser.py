"""HTML report and optuna-dashboard: content checks, the dashboard's JSON API, and a real browser.

The ``browser`` tests drive Debian's ``chromium`` through Playwright's Python API (Playwright's
own browser download is not used). They skip only when chromium is not installed; CI installs
it (``.ci/run``). Set ``NEUROMOSAIC_UPDATE_SCREENSHOTS=1`` to also write the screenshots to
``docs/report.png`` and ``docs/dashboard.png``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import threading
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import optuna_dashboard
import pytest

from neuromosaic_optuna import load_study_file, pareto, plots, report, run_study

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_plots import synthetic_study  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium); "
    "CI installs it in .ci/run")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, optuna.Study]:
    url = f"sqlite:///{tmp_path_factory.mktemp('synthetic') / 'nas.db'}"
    return url, synthetic_study(24, storage=url, name="synthetic-report")


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, optuna.Study]:
    """A study produced by a tiny real search: the quickstart file's smoke budget, 3 trials,
    in SQLite (as ``neuromosaic run`` would leave it)."""
    import torch

    torch.set_num_threads(1)
    url = f"sqlite:///{tmp_path_factory.mktemp('searched') / 'nas.db'}"
    config = load_study_file(ROOT / "studies" / "quickstart.toml", budget="smoke",
                             overrides={"max_trials": 3})
    return url, run_study(config, storage=url)


# --------------------------------------------------------------------------- report content


def test_report_content(synthetic: tuple[str, optuna.Study], tmp_path: Path) -> None:
    _, study = synthetic
    out = report.write_report(study, tmp_path / "sub" / "report.html",
                              operating_point="latency<=8ms")
    text = out.read_text(encoding="utf-8")
    info = pareto.pareto_info(study)
    assert f"{info.hypervolume:.6g}" in text and f"knee: trial {info.knee_trial}" in text
    front_html = text.split('<section id="front">')[1].split("</section>")[0]
    rows = front_html.split("<tbody>")[1].split("<tr")[1:]
    assert len(rows) == len(info.front)
    knee_rows = [r for r in rows if 'class="knee"' in r]
    assert len(knee_rows) == 1 and f"<td class=\"num\">{info.knee_trial}</td>" in knee_rows[0]
    chosen = pareto.operating_point(study, "latency<=8ms")
    assert chosen is not None and "latency&lt;=8ms" in front_html
    rejected = [t.number for t in study.trials if t.user_attrs.get("status") == "rejected"]
    violations = text.split('<section id="constraints">')[1].split("</section>")[0]
    assert f"<td class=\"num\">{len(rejected)}</td>" in violations  # violating trials
    assert violations.count("VIOLATED") == len(rejected)
    untrained = text.split('<section id="untrained">')[1].split("</section>")[0]
    assert "cannot be built" in untrained
    for fid in plots.available_figures(study):
        assert f'<section id="{fid}" class="figure">' in text
    from neuromosaic_optuna.insights import study_insights

    findings = text.split('<section id="insights">')[1].split("</section>")[0]
    found = study_insights(study, seed=0, n_boot=500, importance=False)
    assert findings.count("<td>claim</td>") == len(found.claims())
    assert findings.count("<tr") - 1 == min(len(found.findings), report._MAX_ROWS)
    # offline: plotly.js embedded exactly once, nothing fetched from elsewhere
    assert text.count("<script src=") == 0 and text.count("Plotly.newPlot(") >= 7
    assert text.count("plotly.js v") == 1 or text.count("* plotly.js") == 1


def test_notes_and_dashboard_api(synthetic: tuple[str, optuna.Study]) -> None:
    url, study = synthetic
    ids = report.annotate_dashboard(study)
    expected = plots.available_figures(study)
    expected.insert(expected.index("efficiency-profile") + 1, "efficiency-metrics")
    assert ids == expected
    # annotating again replaces a figure under its id instead of adding a copy
    again = report.annotate_dashboard(study, figures={"diversity": plots.plot_diversity(study)},
                                      trial_notes=False)
    assert again == ["diversity"]
    server = report.make_dashboard_server(url, port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        with urllib.request.urlopen(f"{base}/api/studies/{study._study_id}", timeout=30) as r:
            detail = json.load(r)
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(g["id"] for g in detail["plotly_graph_objects"]) == sorted(ids)
    rejected = next(t for t in detail["trials"] if any(
        a["key"] == "status" and a["value"] == "rejected" for a in t["user_attrs"]))
    note = rejected["note"]["body"]
    assert note.startswith("**Status**: rejected — violates max_params = 5M")
    assert "max_params = 5M: measured" in note and "(VIOLATED)" in note
    ok = next(t for t in detail["trials"] if t["number"] == pareto.pareto_info(study).knee_trial)
    assert "**knee**" in ok["note"]["body"] and "width_multiplier" in ok["note"]["body"]
    study_note = optuna_dashboard.get_note(study)
    assert study_note.startswith(f"## {study.study_name}")
    n_rejected = sum(t.user_attrs.get("status") == "rejected" for t in study.trials)
    assert f"max_params: {n_rejected} trial" in study_note
    assert f"{pareto.pareto_info(study).hypervolume:.6g}" in study_note


def test_trial_note_units_and_reason() -> None:
    trial = optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED,
        user_attrs={"status": "invalid", "reason": "patch size 7 does not divide 32",
                    "architecture": {"patch_size": 7}})
    note = report.trial_note(trial)
    assert note.splitlines()[0] == "**Status**: invalid — patch size 7 does not divide 32"
    feasible = optuna.trial.create_trial(
        value=0.9, user_attrs={"metrics": {"latency": 0.05, "params": 4e6}},
        constraints={"max_latency": -0.05})
    note = report.trial_note(feasible, bounds={"max_latency": "100ms"})
    assert "- latency: 50.00 ms" in note
    assert "max_latency = 100ms: measured 50.00 ms, margin -50.00 ms (ok)" in note


def test_dashboard_server_binds_loopback_with_artifacts(tmp_path: Path) -> None:
    server = report.make_dashboard_server(f"sqlite:///{tmp_path / 'x.db'}", port=0, quiet=True,
                                          artifact_dir=tmp_path / "artifacts")
    try:
        assert server.server_address[0] == "127.0.0.1"
        assert (tmp_path / "artifacts").is_dir()
    finally:
        server.server_close()


def test_report_docstring_examples() -> None:
    import doctest

    result = doctest.testmod(report)
    assert result.failed == 0 and result.attempted >= 10


# --------------------------------------------------------------------------- real browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); CI installs "
                    "it in .ci/run")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class _Visit:
    """A page that records console errors, page errors and every requested URL."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.body = ""
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}")
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def text(self) -> str:
        return str(self.page.inner_text("body"))


def _save_screenshot(page: Any, tmp_path: Path, name: str, *, height: int | None = None) -> Path:
    """A PNG of the viewport, or of the page's top ``height`` pixels."""
    out = tmp_path / name
    if height is None:
        page.screenshot(path=str(out))
    else:
        full = int(page.evaluate("document.documentElement.scrollHeight"))
        page.screenshot(path=str(out), full_page=True,
                        clip={"x": 0, "y": 0, "width": 1400, "height": min(height, full)})
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("NEUROMOSAIC_UPDATE_SCREENSHOTS") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(out, ROOT / "docs" / name)
    return out


def visit_dashboard(browser: Any, url: str, study: optuna.Study, tmp_path: Path) -> _Visit:
    """Serve ``url`` with optuna-dashboard, open the study's pages and check what they show."""
    server = report.make_dashboard_server(url, port=0, quiet=True,
                                          artifact_dir=tmp_path / "artifacts")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    visit = _Visit(browser)
    page = visit.page
    base = f"http://127.0.0.1:{server.server_port}/dashboard/studies/{study._study_id}"
    try:
        page.goto(base)
        page.get_by_text("Accuracy vs FLOPs").first.wait_for(timeout=30_000)  # attached figure
        page.get_by_text("Study User Attributes").first.wait_for(timeout=30_000)
        page.wait_for_timeout(1500)  # let plotly finish drawing before the screenshot
        body = visit.text()
        assert study.study_name in body
        assert "accuracy" in body and "flops" in body  # metric names, not objective_0/1
        assert page.locator(".js-plotly-plot").count() >= 3
        page.get_by_text("Accuracy vs FLOPs").first.scroll_into_view_if_needed()
        page.mouse.wheel(0, -60)
        page.wait_for_timeout(500)
        _save_screenshot(page, tmp_path, "dashboard.png")

        knee = pareto.pareto_info(study).knee_trial
        number = knee if knee is not None else study.trials[0].number
        page.goto(f"{base}/trials?numbers={number}")
        page.get_by_text(f"Trial {number} (trial_id=").first.wait_for(timeout=30_000)
        page.get_by_text("User Attributes").first.wait_for(timeout=30_000)
        body = visit.text()
        for attr in ("architecture", "metrics", "status"):
            assert attr in body
        assert "depth_multiplier" in body and "flops" in body
        assert "Status: ok" in body and "Pareto rank: 0" in body  # the note, rendered
        _save_screenshot(page, tmp_path, "dashboard-trial.png")

        page.goto(f"{base}/note")
        page.get_by_text("Hypervolume").first.wait_for(timeout=30_000)
        assert "Pareto front" in visit.text()
    finally:
        page.close()
        server.shutdown()
        server.server_close()
    return visit


def visit_report(browser: Any, path: Path, figure_ids: list[str], tmp_path: Path) -> _Visit:
    """Open a report from disk with the network cut off and check that every figure draws."""
    visit = _Visit(browser)
    page = visit.page
    page.route("http*://**", lambda route: route.abort())  # offline: any fetch would fail
    try:
        page.goto(path.resolve().as_uri())
        page.wait_for_function(
            f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= "
            f"{len(figure_ids)}", timeout=30_000)
        page.wait_for_timeout(1000)
        assert page.evaluate("typeof Plotly") == "object"
        for fid in figure_ids:
            assert page.locator(f"#fig-{fid}.js-plotly-plot").count() == 1, fid
        body = visit.text()
        for heading in ("Summary", "Pareto front", "Constraint violations", "Accuracy vs FLOPs",
                        "Hypervolume", "knee: trial"):
            assert heading in body
        visit.body = body
        _save_screenshot(page, tmp_path, "report.png", height=2300)
    finally:
        page.close()
    return visit


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_dashboard_in_chromium(browser: Any, searched: tuple[str, optuna.Study],
                               tmp_path: Path) -> None:
    url, study = searched
    attached = report.annotate_dashboard(study)
    assert "accuracy-vs-flops" in attached
    visit = visit_dashboard(browser, url, study, tmp_path)
    assert visit.errors == []
    assert all(u.startswith("http://127.0.0.1:") for u in visit.requests)


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_report_in_chromium(browser: Any, searched: tuple[str, optuna.Study],
                            tmp_path: Path) -> None:
    _, study = searched
    out = report.write_report(study, tmp_path / "report.html")
    figure_ids = re.findall(r'<div id="fig-([a-z-]+)"', out.read_text(encoding="utf-8"))
    assert figure_ids[:len(plots.available_figures(study))] == plots.available_figures(study)
    visit = visit_report(browser, out, figure_ids, tmp_path)
    assert visit.errors == []
    assert [u for u in visit.requests if not u.startswith("file://")] == []
    assert study.study_name in visit.body
