"""Generated fuzz cases of issue 22 for three families: study files that load but cannot
run (checked against the builder, sampler, pruner and folders), CLI flags, and dataset
folders. Every case: exit 2, one line on stderr, no traceback, no write (every existing
file's hash unchanged and no new file). Each family generates ``N_PER_FAMILY`` distinct
cases from a seed and runs them in-process with ``main([...])``; the counts (tried/passed)
are printed in pytest's terminal summary (``tests/fuzzcounts.py``)."""

from __future__ import annotations

import copy
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from datafiles import make_imagefolder_tree
from fuzzcounts import record
from test_robust_input import BASE, main, snapshot, write_study

N_PER_FAMILY = 50


def _check(family: str, argv: list[str], root: Path,
           capsys: pytest.CaptureFixture[str]) -> str | None:
    """None when ``argv`` ends as it must (the outcome is counted under ``family``); a SQLite
    file that exists before is compared by its contents (study names, trials) by the caller:
    opening it may checkpoint its WAL."""
    bad = _refusal_problem(argv, root, capsys)
    record(family, bad is None)
    return bad


def _refusal_problem(argv: list[str], root: Path,
                     capsys: pytest.CaptureFixture[str]) -> str | None:
    before = snapshot(root)
    names = sorted(snapshot(root))
    try:
        code = main(argv)
    except AssertionError as exc:  # main raised: a traceback for the user
        return f"{argv}: {exc}"
    captured = capsys.readouterr()
    err = captured.err
    lines = err.strip().splitlines()
    if code != 2 or len(lines) != 1 or "Traceback" in err + captured.out \
            or not lines[0].startswith("neuromosaic: error: "):
        return f"{argv} -> {code}: {err[-200:]}"
    after = snapshot(root)
    if {k: v for k, v in after.items() if k != "d.db"} != \
            {k: v for k, v in before.items() if k != "d.db"} or sorted(after) != names:
        return f"{argv} wrote a file"
    return None


def _distinct(make: Callable[[], Any], n: int) -> list[Any]:
    """``n`` distinct results of ``make`` (compared by ``repr``), in the order made."""
    seen: dict[str, Any] = {}
    for _ in range(n * 50):
        case = make()
        seen.setdefault(repr(case), case)
        if len(seen) == n:
            return list(seen.values())
    raise AssertionError(f"only {len(seen)} distinct cases of {n}")


def _study_file_cases(rng: random.Random, root: Path) -> list[dict[str, Any]]:
    """Study files that load (each value is well-formed) but cannot run; ``root`` holds a
    file ``a-file`` (an artifact folder below it cannot be made)."""
    mutations: list[Callable[[dict[str, Any]], object]] = [
        lambda d: d["experiment"]["search_space"].update(
            {rng.choice(["foo", "widht", "depth", "num_heads", "patch", "kernel",
                         "se", "stages"]): [1, 2]}),
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
            {"known_good": [{rng.choice(["kernel", "foo", "depth", "lr"]): 3}]}),
        lambda d: d["defaults"].update(
            {"known_good": [{rng.choice(["width_multiplier", "depth_multiplier"]):
                             rng.choice([-1.0, 0.0, 9.0, 2.5, "wide"])}]}),
        lambda d: d["defaults"].update(
            {"sampler": {"name": "TPESampler",
                         rng.choice(["n_startup_trials", "n_ei_candidates"]):
                         rng.choice(["many", 1.5, [1], True])}}),
        lambda d: d["defaults"].update(
            {"pruner": {"name": "MedianPruner",
                        rng.choice(["n_warmup_steps", "n_startup_trials"]):
                        rng.choice(["two", 2.5, [2]])}}),
        lambda d: d["defaults"].update({"constraints": {"max_params": rng.randint(1, 100)}}),
        lambda d: d["defaults"].update(
            {"artifact_dir": str(root / "a-file" / rng.choice(["w", "weights", "x/y"]))}),
        lambda d: d["defaults"].update(
            {"device": rng.choice(["tpu", "cuda:x", "gpu", "cuda:-1", "cpu:0", "npu"])}),
    ]

    def make() -> dict[str, Any]:
        data = copy.deepcopy(BASE)
        rng.choice(mutations)(data)
        return data

    return _distinct(make, N_PER_FAMILY)


def test_fuzz_study_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    cases = _study_file_cases(random.Random(22), tmp_path)
    failures = []
    for i, data in enumerate(cases):
        write_study(tmp_path / f"c{i}.toml", data)
    for i in range(len(cases)):
        bad = _check("study files", ["run", str(tmp_path / f"c{i}.toml"), "--storage",
                                     f"sqlite:///{tmp_path / 'never.db'}", "--no-progress"],
                     tmp_path, capsys)
        if bad:
            failures.append((i, bad))
    print(f"\nfuzz study files: tried {len(cases)}, passed {len(cases) - len(failures)}")
    assert len(cases) >= 50 and not failures, failures[:3]


def _flag_cases(rng: random.Random, study: str, db: str, root: Path) -> list[list[str]]:
    """Bad flags of every command; ``db`` holds the study ``robust`` (no trials) and ``root``
    a file ``a-file``."""
    bad_ints = ["0", "-1", "x", "1e9", "", "2.5", "99999999999", "🙂"]
    read = ["--storage", db, "--study-name", "robust"]
    kinds: list[Callable[[], list[str]]] = [
        lambda: ["run", study, "--n-trials", rng.choice(bad_ints)],
        lambda: ["run", study, "--seed", rng.choice(["-1", "x", str(2**33), "1.5"])],
        lambda: ["run", study, "--workers", rng.choice(bad_ints)],
        lambda: ["run", study, "--budget", rng.choice(["gpu", "", "smokey"]), "--storage", db],
        lambda: [rng.choice(["pareto", "report", "dashboard", "robustness"]), study,
                 "--storage", db, "--study-name", rng.choice(["typo", "x y", "🙂"])],
        lambda: ["dashboard", study, "--port", rng.choice(["-1", "70000", "http"])],
        lambda: ["run", study, rng.choice(["--n-trails", "--wrkers", "--sed"]), "1"],
        lambda: ["transfer", "--from", rng.choice(["nope", "x", "typo"]), "--to",
                 study, "--storage", db],
        lambda: ["worker", study, "--storage", db, "--study-name",
                 rng.choice(["typo", "robust-x"])],
        lambda: [rng.choice(["run", "worker"]), study, "--storage", db,
                 rng.choice(["--heartbeat-interval", "--max-retry"]),
                 rng.choice(["0", "-1", "x", "10000000"])],
        lambda: ["run", study, "--storage", db,
                 rng.choice(["--device", "--devices"]),
                 rng.choice(["tpu", "cuda:x", "banana", "cuda:7", "cuda:0,cuda:1"])],
        lambda: ["run", study, "--storage", db, "--artifact-dir",
                 str(root / "a-file" / rng.choice(["w", "x/y"]))],
        lambda: [rng.choice(["pareto", "report"]), study, *read, "--operating-point",
                 rng.choice(["acc<=", "beauty<=3", "accuracy>=x", "latency", "<=3"])],
        lambda: ["robustness", study, *read,
                 *rng.choice([["--trials", "x,y"], ["--trials", "-3"], ["--split", "train"]])],
        lambda: ["transfer", "--from", "robust", "--to", study, "--storage", db,
                 "--study-name", "t2",
                 *rng.choice([["--selection", "magic"], ["--top-k", "0"],
                              ["--top-k", "x"]])],
        lambda: [rng.choice(["pareto", "report", "run"]), study, "--storage",
                 str(root / rng.choice(["a-file", "s.toml", "typo.sqlite"]))],
        lambda: [rng.choice(["frobnicate", "Run", "paretto", "--n-trials"]), study],
    ]
    return _distinct(lambda: rng.choice(kinds)(), N_PER_FAMILY)


def test_fuzz_cli_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    from test_robust_input import make_study

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    study = str(write_study(tmp_path / "s.toml", BASE))
    db_path = tmp_path / "d.db"
    make_study(db_path, BASE)
    cases = _flag_cases(random.Random(7), study, f"sqlite:///{db_path}", tmp_path)
    failures = [(argv, bad) for argv in cases
                if (bad := _check("CLI flags", argv, tmp_path, capsys))]
    import optuna

    summaries = optuna.get_all_study_summaries(f"sqlite:///{db_path}")
    assert [(s.study_name, s.n_trials) for s in summaries] == [("robust", 0)]
    print(f"\nfuzz CLI flags: tried {len(cases)}, passed {len(cases) - len(failures)}")
    assert len(cases) >= 50 and not failures, failures[:3]


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and header chunk declaring ``width`` x ``height`` (and no pixels)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
            + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))


DATASET_DAMAGE = 11  # kinds of _damage_tree; two more kinds point dataset_path elsewhere


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
        victim.write_text(rng.choice(["not an image", "GIF89a", "\x89PNG", "%PDF-1.4"]))
    elif kind == 4:
        (root / "val" / "cat").mkdir(parents=True)  # a class train/ lacks
        make_imagefolder_tree(root / "x", classes=("cat",), n_per_class=1, splits=("val",))
        (root / "x" / "val" / "cat" / "0.png").rename(root / "val" / "cat" / "0.png")
    elif kind == 5:
        for p in (root / "train").rglob("*.png"):
            p.unlink()
    elif kind == 6:
        for p in (root / "train").iterdir():
            for f in p.iterdir():
                f.unlink()
            p.rmdir()
    elif kind == 7:  # a decompression bomb: a header declaring gigapixels
        side = rng.choice([100_000, 65_535, 2**31 - 1])
        victim.write_bytes(_png_header(side, side))
    elif kind == 8:  # a header without pixel data
        victim.write_bytes(_png_header(8, 8))
    elif kind == 9:
        shutil.rmtree(root / "train")
        (root / "train").write_text("a file where the train folder belongs")
    else:  # a PNG's body overwritten in the middle
        data = bytearray(victim.read_bytes())
        start = rng.randint(40, max(41, len(data) - 20))
        data[start:start + 16] = bytes(rng.randrange(256) for _ in range(16))
        victim.write_bytes(bytes(data))


def test_fuzz_dataset_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    rng = random.Random(5)
    failures = []
    argvs = []
    for i in range(N_PER_FAMILY):
        kind = i % (DATASET_DAMAGE + 2)
        data = copy.deepcopy(BASE)
        data["experiment"]["dataset"] = "imagefolder"
        # One param: the preflight sizes 6 models on `meta` before it reads the folder, not 14.
        data["experiment"]["search_space"] = {"width_multiplier": [0.25, 0.5]}
        if kind == DATASET_DAMAGE:
            data["defaults"]["dataset_path"] = str(tmp_path / f"missing{i}")
        elif kind == DATASET_DAMAGE + 1:
            data["defaults"]["dataset_path"] = str(write_study(tmp_path / f"file{i}.toml",
                                                               BASE))
        else:
            _damage_tree(tmp_path / f"tree{i}", rng, kind)
            data["defaults"]["dataset_path"] = str(tmp_path / f"tree{i}")
        write_study(tmp_path / f"c{i}.toml", data)
        argvs.append(["run", str(tmp_path / f"c{i}.toml"), "--storage",
                      f"sqlite:///{tmp_path / 'never.db'}", "--no-progress"])
    for argv in argvs:
        bad = _check("dataset folders", argv, tmp_path, capsys)
        if bad:
            failures.append(bad)
    print(f"\nfuzz dataset folders: tried {len(argvs)}, passed {len(argvs) - len(failures)}")
    assert len(argvs) >= 50 and not failures, failures[:3]
