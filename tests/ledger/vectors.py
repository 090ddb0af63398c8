"""Where the shared test vectors live, and small readers for them."""

import base64
import json
from pathlib import Path

MERKLE_DIR = Path(__file__).parents[2].parent / "shared" / "testdata" / "merkle"
TD_DIR = MERKLE_DIR / "transparency-dev-merkle" / "testdata"


def vector_files(kind: str) -> list[Path]:
    """Return the transparency-dev vector files of one kind (inclusion or consistency), or a marker if missing."""
    files = sorted((TD_DIR / kind).rglob("*.json"))
    return files or [TD_DIR / kind / "MISSING"]


def load_json(path: Path) -> dict:
    """Load a JSON vector file."""
    return json.loads(path.read_text())


def b64(value: str | None) -> bytes:
    """Decode a Go []byte JSON field (base64; null or empty is empty)."""
    return base64.b64decode(value) if value else b""


def b64_list(values: list[str] | None) -> list[bytes]:
    """Decode a Go [][]byte JSON field."""
    return [b64(v) for v in values or []]
