"""The library end to end on PostgreSQL: init with a postgresql:// store, open, append, prove, verify."""

from __future__ import annotations

import psycopg
from typer.testing import CliRunner

import trailseal
from tests.conftest import make_event
from tests.postgres.fixtures import admin
from tests.postgres.helpers import sealables
from trailseal.cli import app
from trailseal.keys import log_verifier
from trailseal.ledger import Signer, generate
from trailseal.ledger.verify import verify_log
from trailseal.pipeline import Sealer
from trailseal.store.base import Filters
from trailseal.store.postgres import PostgresStore


def test_init_open_append_prove_verify(tmp_path, pg_url):
    directory = trailseal.init(tmp_path / "data", origin="pg.trailseal", store=pg_url)
    with trailseal.open(directory) as trail:
        assert isinstance(trail.store, PostgresStore)
        receipts = trail.append([make_event(i) for i in range(50)])
        assert [r.index for r in receipts] == list(range(50))
        assert trail.prove(7).startswith("c2sp.org/tlog-proof@v1")
    with trailseal.open(directory) as trail:  # reopened: continues, and re-sent ids keep their receipts
        assert trail.append([make_event(i) for i in range(45, 55)])[5].index == 50
        assert all(report.ok for report in trail.verify())
        assert trail.logs()[0].size == 55
    with admin(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM entries WHERE log='default'").fetchone()[0] == 55


def test_cli_init_with_a_postgresql_store(tmp_path, pg_url):
    result = CliRunner().invoke(app, ["init", "--data", str(tmp_path / "d"), "--origin", "cli.trailseal",
                                      "--store", pg_url])
    assert result.exit_code == 0, result.output
    with trailseal.open(tmp_path / "d") as trail:
        assert trail.append([make_event(1)])[0].index == 0


def test_verify_log_passes_and_catches_tampering(pg_url):
    skey, _ = generate("verify.test")
    signer = Signer.from_skey(skey)
    store = PostgresStore(pg_url)
    sealer = Sealer(store, signer).start()
    for start in range(0, 600, 200):
        sealer.seal(sealables(start, 200) + sealables(start, 20, log="other"))
    sealer.stop()
    verifiers = {log: [log_verifier(signer.verifier(), log)] for log in ("default", "other")}
    assert verify_log(store, "default", verifiers["default"]).entries == 600
    assert verify_log(store, "other", verifiers["other"]).ok
    with psycopg.connect(pg_url, autocommit=True) as conn:  # a superuser switching the triggers off
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE entries SET data = data || ' '::bytea WHERE log = 'default' AND idx = 321")
    report = verify_log(store, "default", verifiers["default"])
    assert not report.ok and report.first_bad_index == 321
    store.close()


def test_select_lists_newest_first_with_filters(pg_url):
    store = PostgresStore(pg_url)
    items = sealables(0, 30) + sealables(30, 1, actor={"id": "nul\x00byte", "type": "user"})
    Sealer(store, Signer.from_skey(generate("select.test")[0])).seal(items)
    rows = store.select(None, Filters(action_prefix="db."), None, 100)
    assert [index for _, index, _, _ in rows] == [i for i in range(30, -1, -1) if i % 5 == 1]
    assert rows[0][2] == items[rows[0][1]].event.time
    assert [i for _, i, _, _ in store.select(["default"], Filters(actor_id="nul\x00byte"), None, 9)] == [30]
    assert len(store.select(None, Filters(target_id="orders_3"), None, 100)) == 3
    store.close()
