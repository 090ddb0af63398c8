"""Regenerate tests/formats/golden/*.jsonl from ../shared/testdata/logs: `python -m tests.formats.regen`.

Read the diff of every regenerated golden before committing it: a golden is only as good as its review.
"""

from __future__ import annotations

import json
import sys

from tests.formats.cases import CASES, GOLDEN, LOGS, run_case


def write_golden(name: str) -> int:
    """Write one golden file; return its number of rows."""
    rows = run_case(name)
    text = "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows)
    (GOLDEN / f"{name}.jsonl").write_text(text, encoding="utf-8")
    return len(rows)


def main() -> int:
    if not LOGS.is_dir():
        print(f"shared test data not found at {LOGS}", file=sys.stderr)
        return 1
    GOLDEN.mkdir(exist_ok=True)
    for name in sorted(CASES):
        print(f"{name}: {write_golden(name)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
