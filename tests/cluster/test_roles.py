"""`serve --role`: a misconfigured role fails at once with what to change, never a traceback."""

from __future__ import annotations

from typer.testing import CliRunner

from trailseal.cli import app


def serve(*args: str):
    return CliRunner().invoke(app, ["serve", *args])


def test_scale_out_roles_need_a_shared_postgresql_store(data_dir):
    for role in ("ingest", "sequencer", "detector", "api"):
        result = serve("--data", str(data_dir), "--role", role)
        assert result.exit_code == 2, result.output
        assert "needs a PostgreSQL store" in result.output and "--role all" in result.output
        assert "Traceback" not in result.output


def test_unknown_role_names_the_choices(data_dir):
    result = serve("--data", str(data_dir), "--role", "writer")
    assert result.exit_code == 2
    assert "unknown role 'writer'" in result.output and "sequencer" in result.output


def test_log_shards_only_for_sequencers(cluster_dir):
    result = serve("--data", str(cluster_dir), "--role", "ingest", "--log", "default")
    assert result.exit_code == 2
    assert "--log only applies to --role sequencer" in result.output


def test_help_explains_the_roles():
    result = serve("--help")
    assert result.exit_code == 0
    for word in ("--role", "sequencer", "standbys", "--nats"):
        assert word in result.output
