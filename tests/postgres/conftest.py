"""PostgreSQL engine tests: a fresh schema per test on the session's own database."""

from tests.postgres.fixtures import pg_database, pg_server, pg_url  # noqa: F401 - fixtures
