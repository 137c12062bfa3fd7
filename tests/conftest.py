"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The real datasets live beside the repository, never inside it (see ../shared/data/README.md).
#: CRACKSEG_SHARED_DATA overrides the location (e.g. when the checkout lives elsewhere).
SHARED_DATA = Path(os.environ.get("CRACKSEG_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
SKIP_REASON = (
    "../shared/data not present: real-dataset tests need the shared datasets beside the repo"
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ``../shared/data`` (DeepCrack and CRACK500); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(SKIP_REASON)
    return SHARED_DATA


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``slow`` unless ``CRACKSEG_SLOW=1`` (the marker's documented switch)."""
    if os.environ.get("CRACKSEG_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set CRACKSEG_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """The int8 parity answers (crackseg.inference.graphs) go to a folder of this test session,
    not to the user's ~/.cache/crackseg; subprocesses inherit it."""
    os.environ["CRACKSEG_CACHE"] = str(tmp_path_factory.mktemp("crackseg-cache"))
