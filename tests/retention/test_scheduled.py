"""`serve` applies retention on a schedule: the retention job of jobs.default_jobs."""

from __future__ import annotations

import trailseal
from tests.archive.helpers import T0, FakeClock, entries
from tests.conftest import make_event
from trailseal.archive.crypto import add_key_file
from trailseal.jobs import Scheduler, default_jobs, retention_jobs

RETENTION = """
[retention]
apply_interval_seconds = 600

[retention.policies]
data_access = { hot = "1d", keep = "100y" }

[retention.archive]
type = "dir"
key_file = "archive.keys"
"""


def test_the_retention_job_archives_what_left_its_hot_period(data_dir):
    (data_dir / "trailseal.toml").write_text((data_dir / "trailseal.toml").read_text() + RETENTION)
    add_key_file(data_dir / "archive.keys", "k1")
    with trailseal.open(data_dir, clock=FakeClock(T0)) as trail:  # received long before the real now
        trail.append([make_event(i) for i in range(10)])
        original = entries(trail.store)
        assert "retention" in [job.name for job in default_jobs(trail)]
        jobs = retention_jobs(trail)
        assert [(job.name, job.interval_seconds) for job in jobs] == [("retention", 600.0)]
        scheduler = Scheduler(jobs)
        assert scheduler.run_due(now=1000.0) == ["retention"] and jobs[0].last_error is None
        assert scheduler.run_due(now=1500.0) == []  # not due again before its interval
        assert sorted(entries(trail.store)) == [0, 2, 4, 5, 7, 9]  # data_access (1, 3, 6, 8) archived
        assert trail.entry(1) == original[1] and trail.entry(3) == original[3]
        assert all(report.ok for report in trail.verify())
        meta = b"".join(data for _, data in trail.store.read_entries("trailseal", 0, 100))
        assert b"retention.archive" in meta


def test_no_policies_no_job(data_dir):
    with trailseal.open(data_dir) as trail:
        assert retention_jobs(trail) == [] and "retention" not in [job.name for job in default_jobs(trail)]


def test_a_broken_archive_is_logged_and_retried_never_fatal(data_dir):
    (data_dir / "trailseal.toml").write_text((data_dir / "trailseal.toml").read_text() + RETENTION)
    with trailseal.open(data_dir, clock=FakeClock(T0)) as trail:  # archive.keys was never created
        trail.append([make_event(i) for i in range(5)])
        jobs = retention_jobs(trail)
        Scheduler(jobs).run_due(now=1.0)
        assert jobs[0].failures == 1 and "archive.keys" in jobs[0].last_error
        assert len(entries(trail.store)) == 5
