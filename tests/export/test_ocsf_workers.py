"""OCSF Parquet worker processes: a worker holds a page waiting beside the one it builds."""

from __future__ import annotations

from collections import Counter

import msgspec

from trailseal.query import ocsf_arrow, ocsf_workers


def up(pool: ocsf_workers.Workers, worker: int) -> None:
    """Wait for the worker's first frame (it says it is up)."""
    assert ocsf_workers.read_frame(pool.processes[worker].stdout) == b""
    pool.ready.add(worker)


def test_a_worker_takes_pages_up_to_its_depth():
    pool = ocsf_workers.Workers(1)
    try:
        up(pool, 0)
        assert pool.free(Counter()) == 0
        assert pool.free(Counter({0: ocsf_workers.DEPTH - 1})) == 0
        assert pool.free(Counter({0: ocsf_workers.DEPTH})) is None
    finally:
        pool.close()
    assert [process.returncode for process in pool.processes] == [0]


def test_pages_queued_to_one_worker_come_back_in_order(monkeypatch):
    event = {
        "time": "2026-11-01T00:00:00.000000Z",
        "category": "authentication",
        "outcome": "success",
        "actor": {"id": "a"},
        "source": {"component": "web", "kind": "app"},
    }
    pages = [
        (msgspec.json.encode([{**event, "action": f"user.login.{i}"}, {**event, "action": "db.query"}]), [2 * i, 2 * i + 1], "default")
        for i in range(9)
    ]
    expected = [ocsf_arrow.page_batches(*page, ocsf_arrow.Classes()) for page in pages]
    held: list[int] = []
    real_free = ocsf_workers.Workers.free

    def free(self, counts):
        if 0 not in self.ready:
            up(self, 0)  # every page after the first waits for the worker, however slowly it starts
        worker = real_free(self, counts)
        held.append(counts[0] if worker == 0 else -1)
        return worker

    built_here: list[int] = []
    real_build = ocsf_workers.build

    def build(page, *args):
        built_here.append(page[1][0])
        return real_build(page, *args)

    monkeypatch.setattr(ocsf_workers.Workers, "free", free)
    monkeypatch.setattr(ocsf_workers.Workers, "answered", lambda self, worker: False)  # results taken late
    monkeypatch.setattr(ocsf_workers, "build", build)
    got = list(ocsf_workers.batches_in_order(pages, workers=1))
    assert [{u: b.to_pylist() for u, b in g.items()} for g in got] == [
        {u: b.to_pylist() for u, b in e.items()} for e in expected
    ]
    assert max(held) == ocsf_workers.DEPTH - 1  # a page was sent while the worker still held one
    assert -1 in held  # the worker held DEPTH: the next page waited for the oldest result
    assert built_here == [0]  # only the first page (built while the worker started), none beside it


def test_a_worker_builds_and_sends_pages_without_numpy():
    """The worker program blocks NumPy: pyarrow, the page build and the Arrow IPC answer need none of it."""
    import subprocess
    import sys

    program = ocsf_workers.WITHOUT_NUMPY + (
        "; from trailseal.query import ocsf_arrow, ocsf_workers;"
        " text = b'[{\"category\": \"authentication\", \"action\": \"user.login\", \"time\": \"2026-11-01T00:00:00.000000Z\"}]';"
        " batches = ocsf_arrow.page_batches(text, [7], 'default', ocsf_arrow.Classes());"
        " [ocsf_workers.batch_of(u, ocsf_workers.ipc_message(b).to_pybytes()) for u, b in batches.items()];"
        " print(sorted(batches), 'numpy' in sys.modules and sys.modules['numpy'] is not None)"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[3002]", "False"]


def test_a_workers_pipes_are_widened_to_take_a_page_in_a_few_writes():
    import fcntl

    from trailseal.frames import PIPE_BYTES

    pool = ocsf_workers.Workers(1)
    try:
        process = pool.processes[0]
        for pipe in (process.stdin, process.stdout):
            assert fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BYTES > 64 * 1024
    finally:
        pool.close()
