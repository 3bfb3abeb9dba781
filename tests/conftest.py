import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VISIONFW_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data():
    """The read-only reference data folder (../shared/data); skips when it is absent."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"reference data not found at {SHARED_DATA} (set VISIONFW_SHARED_DATA)")
    return SHARED_DATA
