"""Shared test setup: TensorFlow's Keras 2 switch, and where the real datasets live."""

from __future__ import annotations

import os
import pathlib

import pytest

# tensorflow-transform sets this on import; set it before anything imports TensorFlow so
# every test sees tf_keras (Keras 2), as the package does.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def require_shared_file(relative: str) -> pathlib.Path:
    """The path of a file under ../shared/data; fails under CI=true when it is missing, else skips."""
    path = SHARED_DATA / relative
    if not path.exists():
        message = f"real dataset file {path} is missing (expected ../shared/data beside the repository)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_data():
    """Resolves files of ../shared/data: `shared_data("taobao_userbehavior/UserBehavior_head.csv")`."""
    return require_shared_file
