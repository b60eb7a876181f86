"""Fuzz the edges of the CLI: storage URLs, damaged copies of a real SQLite database and
damaged journal files (issue 22).

Each family is generated from a seed (a failure reproduces) and runs in-process with
``main([...])``. Every case must end with exit code 2, exactly one line on stderr, no
traceback, no password fragment in the output, and no write: every file that existed keeps its
hash and no file appears. The damaged copies start from one small real study built with
``optuna.trial.create_trial`` (SQLite and journal). Counts of tried and passed cases per family
are printed in pytest's terminal summary and written to ``$NEUROMOSAIC_FUZZ_COUNTS`` (JSON
lines) when it is set (``tests/fuzzcounts.py``), so they can be quoted.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
from fuzzcounts import record
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from test_robust_input import main

from neuromosaic_optuna.storage import make_storage

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "studies" / "quickstart.toml")
N_PER_FAMILY = 50


# --------------------------------------------------------------------------- helpers

def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(argv: list[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``main(argv)``; an exception escaping it (a traceback
    for the user) fails the test on an assertion."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _check_refused(family: str, folder: Path, argv: list[str], secrets: tuple[str, ...] = (),
                   ) -> str:
    """Run ``argv`` in ``folder``; assert exit 2, one line, no traceback, no secret, no write.
    Records the outcome under ``family`` and returns the error line."""
    before = _snapshot(folder)
    ok = False
    try:
        code, out, err = _run(argv)
        assert code == 2, (code, out, err)
        assert out == "", out
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("neuromosaic: error: "), err
        assert "Traceback" not in err
        for secret in secrets:
            assert secret not in out + err, (secret, err)
        assert _snapshot(folder) == before, "a file was written or created"
        ok = True
        return lines[0]
    finally:
        record(family, ok)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEUROMOSAIC_STORAGE", raising=False)
    yield


# --------------------------------------------------------------------------- storage URLs

# Every piece of 3+ characters is distinctive, so finding one in the output is a leak.
PASSWORDS = ["hunter@2xyz", "pQ9@sZ8@wK4", "s3Cr:eT7@xQ1", "aB3/bC4@cD5", "ab%zz@Qq9",
             "huN#tE9@J9k", "xY1?yZ2@zW3", "pässwörd@Ü17", "@lEad1ng", "tRa1ling@", "tw0@@aTs",
             "sP9 aC8@xV7"]
TEMPLATES = ["postgresql://nas:{pw}@127.0.0.1:1/db", "postgresql://nas:{pw}@localhost/db",
             "mysql+pymysql://nas:{pw}@127.0.0.1:1/db", "postgresql+psycopg2://nas:{pw}@h/db",
             "foo://nas:{pw}@127.0.0.1/db", "postgresql://nas:{pw}@127.0.0.1:port/db",
             "nas:{pw}@127.0.0.1", "postgresql://nas:{pw}@127.0.0.1:1/db?sslmode=require"]


def _url_cases() -> list[tuple[str, str]]:
    rnd = random.Random(22)
    cases = {(t, p) for t in TEMPLATES[:2] for p in PASSWORDS}  # the form, every password
    while len(cases) < N_PER_FAMILY:
        cases.add((rnd.choice(TEMPLATES), rnd.choice(PASSWORDS)))
    return sorted(cases)


def _fragments(password: str) -> tuple[str, ...]:
    """The password and every piece of it of 3+ characters between special characters."""
    import re

    pieces = {password, *(p for p in re.split(r"[@:/%#? ]", password) if len(p) >= 3)}
    return tuple(sorted(pieces))


@pytest.mark.parametrize(("template", "password"), _url_cases())
def test_storage_url_never_shows_the_password(tmp_path: Path, template: str,
                                              password: str) -> None:
    url = template.format(pw=password)
    line = _check_refused("storage URLs", tmp_path, ["pareto", QUICK, "--storage", url],
                          secrets=_fragments(password))
    assert "--storage" in line
    if template.startswith(("postgresql://", "mysql+pymysql://")) and password.count("@"):
        assert "percent-encode" in line


# --------------------------------------------------------------------------- seeds

def seed_study(storage: optuna.storages.BaseStorage) -> None:
    """Six COMPLETE trials of a two-objective study named ``seed`` (accuracy, flops)."""
    study = optuna.create_study(storage=storage, study_name="seed",
                                directions=["maximize", "minimize"])
    with contextlib.suppress(Exception), _quiet():
        study.set_metric_names(["accuracy", "flops"])
    dist = {"width_multiplier": FloatDistribution(0.25, 1.0)}
    for i in range(6):
        values = [0.5 + i / 20, 1e5 * (1 + i % 3)]
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.COMPLETE, values=values, params={"width_multiplier": 0.25 + i / 10},
            distributions=dist,
            user_attrs={"metrics": {"accuracy": values[0], "flops": values[1]}}))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def seed_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seed") / "seed.db"
    storage = make_storage(f"sqlite:///{path}")
    seed_study(storage)
    storage.engine.dispose()  # type: ignore[attr-defined]
    assert not Path(f"{path}-wal").exists()
    return path


@pytest.fixture(scope="module")
def seed_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seed") / "seed.log"
    seed_study(make_storage(str(path)))
    return path


def test_seed_copies_are_readable(tmp_path: Path, seed_db: Path, seed_journal: Path) -> None:
    """The undamaged seeds give a front, so every refusal below is due to the damage."""
    for seed, name in ((seed_db, "ok.db"), (seed_journal, "ok.log")):
        shutil.copy(seed, tmp_path / name)
        code, out, err = _run(["pareto", QUICK, "--storage", name, "--study-name", "seed"])
        assert code == 0, err
        assert "Pareto front of 'seed': 3 of 6 completed trials" in out


# --------------------------------------------------------------------------- damaged SQLite

PAGE = 4096


def _page_garbage(page: int) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        rnd = random.Random(page)
        data[page * PAGE:(page + 1) * PAGE] = bytes(rnd.randrange(256) for _ in range(PAGE))
        path.write_bytes(bytes(data))
    return damage


def _truncate(fraction: float) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[:max(1, int(len(data) * fraction)) // PAGE * PAGE + 100])
    return damage


def _header(garbage: bytes) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(garbage + data[len(garbage):])
    return damage


def _sql(statement: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        connection = sqlite3.connect(path)
        connection.execute(statement)
        connection.commit()
        connection.close()
    return damage


SQL_DAMAGE = [
    "DROP TABLE trials", "DROP TABLE trial_values", "DROP TABLE trial_params",
    "DROP TABLE studies", "DROP TABLE study_directions", "DROP TABLE trial_user_attributes",
    "DROP TABLE trial_heartbeats", "DROP TABLE alembic_version",
    "UPDATE trial_user_attributes SET value_json = '{bad'",
    "UPDATE trial_user_attributes SET value_json = ''",
    "UPDATE trials SET datetime_start = 'not a time'",
    "UPDATE trial_params SET distribution_json = '[1,'",
    "UPDATE trial_params SET distribution_json = '{\"name\": \"NoSuchDistribution\"}'",
    "UPDATE trials SET state = 'BOGUS'", "UPDATE study_directions SET direction = 'UP'",
    "UPDATE trial_values SET value_type = 'NAN'", "DELETE FROM study_directions",
    "UPDATE study_system_attributes SET value_json = '['",
    "DROP TABLE study_user_attributes", "DROP TABLE study_system_attributes",
    "DROP TABLE trial_system_attributes", "DROP TABLE trial_intermediate_values",
]


def _sqlite_cases() -> list[tuple[str, Callable[[Path], None]]]:
    cases: list[tuple[str, Callable[[Path], None]]] = [(f"sql: {s}", _sql(s))
                                                       for s in SQL_DAMAGE]
    cases += [(f"garbage page {p}", _page_garbage(p)) for p in range(1, 23)]
    cases += [(f"truncated to {f:.0%}", _truncate(f)) for f in (0.1, 0.3, 0.6, 0.9)]
    cases += [("header zeroed", _header(b"\0" * 16)), ("header text", _header(b"hello, world")),
              ("header of another version", _header(b"SQLite format 2\0")),
              ("page size zeroed", _header(b"SQLite format 3\0\0\0"))]
    return cases


@pytest.mark.parametrize("case", range(len(_sqlite_cases())),
                         ids=[name for name, _ in _sqlite_cases()])
def test_damaged_sqlite_copy_is_refused_in_one_line(tmp_path: Path, seed_db: Path,
                                                    case: int) -> None:
    _, damage = _sqlite_cases()[case]
    shutil.copy(seed_db, tmp_path / "d.db")
    damage(tmp_path / "d.db")
    for suffix in ("-wal", "-shm"):  # the damage tool's own leftovers, if any
        Path(f"{tmp_path / 'd.db'}{suffix}").unlink(missing_ok=True)
    line = _check_refused("damaged SQLite copies", tmp_path,
                          ["pareto", QUICK, "--storage", "d.db", "--study-name", "seed"])
    assert "--storage" in line and ("damaged" in line or "not an SQLite" in line), line


def test_dropped_version_info_is_refused_in_one_line(tmp_path: Path, seed_db: Path) -> None:
    """Found by the fuzz: ``pareto`` on a copy without Optuna's ``version_info`` table exited
    0 and wrote the table back into the file (the table check ran only when it existed)."""
    shutil.copy(seed_db, tmp_path / "d.db")
    _sql("DROP TABLE version_info")(tmp_path / "d.db")
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp_path / 'd.db'}{suffix}").unlink(missing_ok=True)
    before = (tmp_path / "d.db").read_bytes()
    code, _, _ = _run(["pareto", QUICK, "--storage", "d.db", "--study-name", "seed"])
    import gc

    gc.collect()  # close the engine the read opened
    assert (code, (tmp_path / "d.db").read_bytes() == before) == (2, True)


def test_all_infinite_values_are_left_out_of_the_front_with_a_note(tmp_path: Path,
                                                                   seed_db: Path) -> None:
    shutil.copy(seed_db, tmp_path / "d.db")
    _sql("UPDATE trial_values SET value = NULL, value_type = 'INF_POS'")(tmp_path / "d.db")
    code, out, err = _run(["pareto", QUICK, "--storage", "d.db", "--study-name", "seed"])
    assert code == 0, err
    assert "note: 6 completed trial(s) left out because a value is NaN or infinite" in out
    assert "0 of 0 completed trials" in out


# --------------------------------------------------------------------------- damaged journals

def _journal_cases(lines: list[bytes]) -> list[tuple[str, list[bytes]]]:
    rnd = random.Random(2022)
    bad_lines = [b"garbage\n", b"[1, 2]\n", b'"text"\n', b"{}\n", b'{"x": 1}\n', b"\n",
                 b'{"op_code": 99}\n', b'{"op_code": 6}\n', b"\0" * 40 + b"\n", b"{\n",
                 b'{"op_code": 4, "study_id": "zero"}\n', b"\xff\xfe\n"]
    cases = []
    for bad in bad_lines:
        where = rnd.randrange(1, len(lines))
        cases.append((f"{bad[:12]!r} at line {where + 1}", lines[:where] + [bad] + lines[where:]))
    for where in range(1, len(lines) - 1):  # a torn record followed by more records
        for cut in (1, 5, 40, len(lines[where]) // 2):
            torn = lines[where][:cut]
            cases.append((f"torn line {where + 1} at byte {cut}",
                          lines[:where] + [torn] + lines[where + 1:]))
    replaced: set[tuple[int, int]] = set()
    while len(cases) < N_PER_FAMILY:  # a structural byte of a record (not the last) replaced
        where = rnd.randrange(0, len(lines) - 1)
        line = bytearray(lines[where])
        spots = [i for i, b in enumerate(line) if b in b"{}[],"]
        spot = rnd.choice(spots)
        if (where, spot) in replaced:
            continue
        replaced.add((where, spot))
        line[spot] = ord("x")
        cases.append((f"byte {spot} of line {where + 1} replaced",
                      lines[:where] + [bytes(line)] + lines[where + 1:]))
    return cases


def test_damaged_journal_copies_are_refused_in_one_line(tmp_path: Path,
                                                        seed_journal: Path) -> None:
    lines = seed_journal.read_bytes().splitlines(keepends=True)
    cases = _journal_cases(lines)
    assert len(cases) >= 50 and len({b"".join(c) for _, c in cases}) == len(cases)
    failures = []
    for i, (name, content) in enumerate(cases):
        folder = tmp_path / str(i)
        folder.mkdir()
        (folder / "d.log").write_bytes(b"".join(content))
        os.chdir(folder)
        try:
            line = _check_refused("damaged journal files", folder,
                                  ["pareto", QUICK, "--storage", "d.log", "--study-name",
                                   "seed"])
            assert "journal file" in line, line
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    assert not failures, failures


def test_torn_tail_alone_is_read_without_writing(tmp_path: Path, seed_journal: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A torn last line is what a killed writer leaves: readers skip it (one warning) and a
    read-only command writes nothing; the next write sets it aside (tests/test_edges.py)."""
    lines = seed_journal.read_bytes().splitlines(keepends=True)
    (tmp_path / "d.log").write_bytes(b"".join(lines) + lines[2][:30])
    before = _snapshot(tmp_path)
    code, out, err = _run(["pareto", QUICK, "--storage", "d.log", "--study-name", "seed"])
    assert code == 0, err
    assert "3 of 6 completed trials" in out
    warnings = [r.getMessage() for r in caplog.records if "incomplete record" in r.getMessage()]
    assert len(warnings) == 1, caplog.records
    assert _snapshot(tmp_path) == before
