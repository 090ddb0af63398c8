"""Shared fixtures for the ledger tests."""

from pathlib import Path

import pytest

from .vectors import MERKLE_DIR


@pytest.fixture(scope="session")
def merkle_dir() -> Path:
    """Return ../shared/testdata/merkle beside the checkout, failing loudly if it is missing."""
    if not MERKLE_DIR.is_dir():
        pytest.fail(f"test vectors missing: {MERKLE_DIR} (the shared/testdata folder beside the checkout)")
    return MERKLE_DIR
