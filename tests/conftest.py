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
