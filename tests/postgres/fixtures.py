"""PostgreSQL for tests: the server at $TRAILSEAL_TEST_PG, else a throwaway cluster; a fresh database
per session and a fresh schema per test, so parallel runs (pytest-xdist) never collide.

Imported by tests/conformance/conftest.py and tests/postgres/conftest.py.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import psycopg
import pytest
from psycopg import conninfo, sql

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def url_of(params: dict[str, str]) -> str:
    """A postgresql:// URL carrying every libpq parameter in its query string."""
    rest = {k: v for k, v in params.items() if k != "dbname" and v is not None}
    return f"postgresql:///{params.get('dbname', 'postgres')}?{urlencode(rest)}"


def with_params(url: str, **changes: str) -> str:
    """``url`` with some libpq parameters replaced (dbname, options, user, ...)."""
    return url_of({**conninfo.conninfo_to_dict(url), **changes})


def answers(url: str) -> bool:
    """Whether a server accepts connections at ``url``."""
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def admin(url: str) -> psycopg.Connection:
    """An autocommit connection for DDL (CREATE DATABASE/ROLE/SCHEMA)."""
    return psycopg.connect(url, autocommit=True)


@contextlib.contextmanager
def server() -> Iterator[str]:
    """The URL of a PostgreSQL server to test against, starting a temporary one if none answers."""
    url = os.environ.get("TRAILSEAL_TEST_PG") or DEFAULT_URL
    if answers(url):
        yield url
        return
    with temporary_cluster(url) as started:
        yield started


def _server_bin() -> str:
    """The directory holding initdb and pg_ctl, newest version first."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return os.path.dirname(found[-1])
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return os.path.dirname(shutil.which("initdb"))
    pytest.fail("no PostgreSQL answers at $TRAILSEAL_TEST_PG and no server binaries (initdb, pg_ctl) were "
                "found under /usr/lib/postgresql/*/bin or on PATH: install PostgreSQL or point "
                "TRAILSEAL_TEST_PG at a server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> str | None:
    """initdb refuses to run as root: use the postgres system user then."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres").pw_name
    except KeyError:
        pytest.fail("running as root and there is no 'postgres' system user to run a temporary cluster as")


@contextlib.contextmanager
def temporary_cluster(wanted: str) -> Iterator[str]:
    """initdb + pg_ctl start on a free loopback port in a temp dir; stopped and removed afterwards."""
    bindir, user = _server_bin(), _run_as()
    root = tempfile.mkdtemp(prefix="trailseal-pg-")
    if user:
        shutil.chown(root, user)
    data, port = os.path.join(root, "data"), _free_port()
    run = {"user": user, "check": True, "capture_output": True, "text": True}
    try:
        subprocess.run([f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                        "--no-sync"], **run)
        subprocess.run([f"{bindir}/pg_ctl", "-D", data, "-l", f"{root}/log", "-w", "-o",
                        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"], **run)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"no PostgreSQL answers at {wanted} and a temporary cluster failed to start: "
                    f"{exc.stderr or exc.stdout}")
    try:
        yield url_of({"dbname": "postgres", "host": "127.0.0.1", "port": str(port), "user": "postgres"})
    finally:
        subprocess.run([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], **{**run, "check": False})
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def database(server_url: str) -> Iterator[str]:
    """A uniquely named database for this session, dropped (connections and all) at the end."""
    name = f"trailseal_test_{secrets.token_hex(6)}"
    with admin(server_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_params(server_url, dbname=name)
    finally:
        with admin(server_url) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def new_schema(database_url: str) -> str:
    """A fresh schema in the session database; returns a URL whose search_path points at it."""
    schema = f"t_{secrets.token_hex(6)}"
    with admin(database_url) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return with_params(database_url, options=f"-csearch_path={schema}")


_SHARED: dict[str, list] = {}  # key -> [value, users, exit stack]


@contextlib.contextmanager
def shared(key: str, make: Callable[[], contextlib.AbstractContextManager[str]]) -> Iterator[str]:
    """One ``make()`` per process however many conftests ask for it; closed when the last user leaves."""
    if key not in _SHARED:
        stack = contextlib.ExitStack()
        _SHARED[key] = [stack.enter_context(make()), 0, stack]
    entry = _SHARED[key]
    entry[1] += 1
    try:
        yield entry[0]
    finally:
        entry[1] -= 1
        if entry[1] == 0:
            del _SHARED[key]
            entry[2].close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The server every PostgreSQL test talks to."""
    with shared("server", server) as url:
        yield url


@pytest.fixture(scope="session")
def pg_database(pg_server: str) -> Iterator[str]:
    """This session's own database."""
    with shared(f"database:{pg_server}", lambda: database(pg_server)) as url:
        yield url


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A store URL on a fresh, empty schema."""
    return new_schema(pg_database)
