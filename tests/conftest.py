"""Shared fixtures.

PostgreSQL: one throwaway cluster per test session (:mod:`pg`), started on first use; tests
that use it are marked ``@pytest.mark.postgres``. Where the server binaries are missing those
tests are skipped with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pg import PostgresServer, PostgresUnavailable


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """The session's running PostgreSQL server (``restart()``, ``url()``, ``create_database``)."""
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    with server:
        yield server


@pytest.fixture(scope="session")
def postgresql_url(pg_server: PostgresServer) -> str:
    """``postgresql://user:password@127.0.0.1:PORT/db`` of the session's shared database."""
    return pg_server.url()


@pytest.fixture
def postgresql_db_url(pg_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh database for this test only, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name)
    yield url
    if pg_server.running:
        pg_server.drop_database(name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fuzz families' counts (issue 22), when any fuzz case ran in this session."""
    import os

    from fuzzcounts import RESULTS, count_lines, write_json_lines

    if not RESULTS:
        return
    terminalreporter.section("fuzz cases (issue 22)")
    for line in count_lines():
        terminalreporter.write_line(line)
    target = os.environ.get("NEUROMOSAIC_FUZZ_COUNTS")
    if target:
        write_json_lines(target)
