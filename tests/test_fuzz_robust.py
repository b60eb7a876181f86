"""Generated fuzz cases of issue 22 for three families: study files that load but cannot
run (checked against the builder, sampler, pruner and folders), CLI flags, and dataset
folders. Every case: exit 2, one line on stderr, no traceback, no write (every existing
file's hash unchanged and no new file). The counts are printed (``pytest -s``)."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest
from datafiles import make_imagefolder_tree
from test_robust_input import BASE, snapshot, write_study

from neuromosaic_optuna.cli import main

N_PER_FAMILY = 36


def _check(argv: list[str], root: Path, capsys: pytest.CaptureFixture[str]) -> str | None:
    """None when ``argv`` ends as it must; a SQLite file that exists before is compared by
    its contents (study names, trials) by the caller: opening it may checkpoint its WAL."""
    before = snapshot(root)
    names = sorted(snapshot(root))
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    if code != 2 or len(lines) != 1 or "Traceback" in err \
            or not lines[0].startswith("neuromosaic: error: "):
        return f"{argv[:3]} -> {code}: {err[-200:]}"
    after = snapshot(root)
    if {k: v for k, v in after.items() if k != "d.db"} != \
            {k: v for k, v in before.items() if k != "d.db"} or sorted(after) != names:
        return f"{argv[:3]} wrote a file"
    return None


def _study_file_cases(rng: random.Random) -> list[dict[str, Any]]:
    def space(d: dict[str, Any]) -> dict[str, Any]:
        return dict(d["experiment"]["search_space"])

    mutations = [
        lambda d: d["experiment"]["search_space"].update(
            {rng.choice(["foo", "widht", "depth", "num_heads", "patch"]): [1, 2]}),
        lambda d: d["experiment"]["search_space"].update(
            {rng.choice(["depth_multiplier", "width_multiplier"]):
             [rng.choice([-5.0, -1.0, -0.1, 0.0]), 1.0]}),
        lambda d: d["experiment"]["search_space"].update(
            {"se_ratio": [0.0, rng.choice([1.5, 3.0, 10.0])]}),
        lambda d: d["defaults"]["model_options"].update(
            {"convnet_stages": [rng.choice(["zz_r1_k3_s1_c8", "ir_r1", "ir_rx_k3_s1_c8",
                                             "ir_r1_k4_s1_c8", "ir_r1_k3_s3_c8",
                                             "ds_r1_k3_s1_e6_c8", "ir_r1_k3_s1_c0",
                                             "ir_r1_k3_s1_c8_q1"])]}),
        lambda d: d["defaults"]["model_options"].update(
            {"convnet_stages": [f"ir_r{rng.randint(1001, 10**7)}_k3_s1_e6_c24"]}),
        lambda d: d["defaults"]["model_options"].update(
            {"convnet_stages": [f"ir_r1_k3_s1_e6_c{rng.randint(20000, 10**8)}"]}),
        lambda d: d["defaults"]["model_options"].update(
            {rng.choice(["convnet_stagez", "stages", "head", "x"]): 1}),
        lambda d: d["defaults"].update(
            {"known_good": [{rng.choice(["kernel", "foo"]): 3}]}),
        lambda d: d["defaults"].update(
            {"known_good": [{"width_multiplier": rng.choice([-1.0, 0.0, 9.0, "wide"])}]}),
        lambda d: d["defaults"].update(
            {"sampler": {"name": "TPESampler",
                         rng.choice(["n_startup_trials", "n_ei_candidates"]):
                         rng.choice(["many", 1.5, [1], True])}}),
        lambda d: d["defaults"].update(
            {"pruner": {"name": "MedianPruner",
                        rng.choice(["n_warmup_steps", "n_startup_trials"]):
                        rng.choice(["two", 2.5, [2]])}}),
        lambda d: d["defaults"].update({"constraints": {"max_params": rng.randint(1, 100)}}),
    ]
    cases = []
    for i in range(N_PER_FAMILY):
        data = copy.deepcopy(BASE)
        mutations[i % len(mutations)](data)
        assert space(data)
        cases.append(data)
    return cases


def test_fuzz_study_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    cases = _study_file_cases(random.Random(22))
    failures = []
    for i, data in enumerate(cases):
        write_study(tmp_path / f"c{i}.toml", data)
    for i in range(len(cases)):
        bad = _check(["run", str(tmp_path / f"c{i}.toml"), "--storage",
                      f"sqlite:///{tmp_path / 'never.db'}", "--no-progress"], tmp_path, capsys)
        if bad:
            failures.append((i, bad))
    print(f"\nfuzz study files: tried {len(cases)}, passed {len(cases) - len(failures)}")
    assert len(cases) >= 30 and not failures, failures[:3]


def _flag_cases(rng: random.Random, study: str, db: str) -> list[list[str]]:
    bad_ints = ["0", "-1", "x", "1e9", "", "2.5", "99999999999", "🙂"]
    cases: list[list[str]] = []
    for _ in range(N_PER_FAMILY):
        kind = rng.randint(0, 8)
        if kind == 0:
            cases.append(["run", study, "--n-trials", rng.choice(bad_ints)])
        elif kind == 1:
            cases.append(["run", study, "--seed", rng.choice(["-1", "x", str(2**33)])])
        elif kind == 2:
            cases.append(["run", study, "--workers", rng.choice(bad_ints)])
        elif kind == 3:
            cases.append(["run", study, "--budget", rng.choice(["gpu", "", "smokey"]),
                          "--storage", db])
        elif kind == 4:
            cases.append([rng.choice(["pareto", "report", "dashboard", "robustness"]), study,
                          "--storage", db, "--study-name", rng.choice(["typo", "x y", "🙂"])])
        elif kind == 5:
            cases.append(["dashboard", study, "--port", rng.choice(["-1", "70000", "http"])])
        elif kind == 6:
            cases.append(["run", study, rng.choice(["--n-trails", "--wrkers", "--sed"]), "1"])
        elif kind == 7:
            cases.append(["transfer", "--from", rng.choice(["nope", "x", "typo"]), "--to",
                          study, "--storage", db])
        else:
            cases.append(["worker", study, "--storage", db, "--study-name",
                          rng.choice(["typo", "robust-x"])])
    return cases


def test_fuzz_cli_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    from test_robust_input import make_study

    monkeypatch.chdir(tmp_path)
    study = str(write_study(tmp_path / "s.toml", BASE))
    db_path = tmp_path / "d.db"
    make_study(db_path, BASE)
    cases = _flag_cases(random.Random(7), study, f"sqlite:///{db_path}")
    failures = [(argv, bad) for argv in cases if (bad := _check(argv, tmp_path, capsys))]
    import optuna

    summaries = optuna.get_all_study_summaries(f"sqlite:///{db_path}")
    assert [(s.study_name, s.n_trials) for s in summaries] == [("robust", 0)]
    print(f"\nfuzz CLI flags: tried {len(cases)}, passed {len(cases) - len(failures)}")
    assert len(cases) >= 30 and not failures, failures[:3]


def _damage_tree(root: Path, rng: random.Random, kind: int) -> None:
    """Write a small ImageFolder tree at ``root`` and damage it one way."""
    make_imagefolder_tree(root, classes=("ant", "bee"), n_per_class=3, splits=("train",),
                          size=(8, 8), seed=rng.randint(0, 99))
    victim = root / "train" / rng.choice(["ant", "bee"]) / f"{rng.randint(0, 2)}.png"
    if kind == 0:
        victim.write_bytes(b"")
    elif kind == 1:
        victim.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(1, 300))))
    elif kind == 2:
        victim.write_bytes(victim.read_bytes()[: rng.randint(8, 40)])
    elif kind == 3:
        victim.write_text("not an image")
    elif kind == 4:
        (root / "val" / "cat").mkdir(parents=True)  # a class train/ lacks
        make_imagefolder_tree(root / "x", classes=("cat",), n_per_class=1, splits=("val",))
        (root / "x" / "val" / "cat" / "0.png").rename(root / "val" / "cat" / "0.png")
    elif kind == 5:
        for p in (root / "train").rglob("*.png"):
            p.unlink()
    else:
        for p in (root / "train").iterdir():
            for f in p.iterdir():
                f.unlink()
            p.rmdir()


def test_fuzz_dataset_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    rng = random.Random(5)
    failures = []
    argvs = []
    for i in range(N_PER_FAMILY):
        kind = i % 9
        data = copy.deepcopy(BASE)
        data["experiment"]["dataset"] = "imagefolder"
        if kind == 7:
            data["defaults"]["dataset_path"] = str(tmp_path / f"missing{i}")
        elif kind == 8:
            data["defaults"]["dataset_path"] = str(write_study(tmp_path / f"file{i}.toml",
                                                               BASE))
        else:
            _damage_tree(tmp_path / f"tree{i}", rng, kind)
            data["defaults"]["dataset_path"] = str(tmp_path / f"tree{i}")
        write_study(tmp_path / f"c{i}.toml", data)
        argvs.append(["run", str(tmp_path / f"c{i}.toml"), "--storage",
                      f"sqlite:///{tmp_path / 'never.db'}", "--no-progress"])
    for argv in argvs:
        bad = _check(argv, tmp_path, capsys)
        if bad:
            failures.append(bad)
    print(f"\nfuzz dataset folders: tried {len(argvs)}, passed {len(argvs) - len(failures)}")
    assert len(argvs) >= 30 and not failures, failures[:3]
