"""Shared test helpers. Tests that need the real benchmark images skip, with the reason, when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def shared_data_root() -> Path:
    return Path(os.environ.get("SRKIT_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data (or $SRKIT_DATA); skips the test when it is absent."""
    root = shared_data_root()
    if not (root / "benchmark").is_dir():
        pytest.skip(f"shared benchmark data not found at {root} (set SRKIT_DATA)")
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    # The tests run many small ops: a second intra-op thread buys little and, on a busy 2-core machine,
    # made some files 10-100x slower.
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
