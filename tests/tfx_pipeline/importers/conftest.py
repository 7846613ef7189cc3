"""Fixtures of the importer tests: the shared real data, reading a written log back."""

from __future__ import annotations

import collections
import dataclasses
import os
from pathlib import Path
from typing import Callable, Counter, Dict, List

import pytest

from tfx_pipeline.eventlog.formats import DeadLetter
from tfx_pipeline.eventlog.logdir import read_log
from tfx_pipeline.eventlog.validation import Event
from transforms import features

# tests/tfx_pipeline/importers/conftest.py -> parents[3] is the repository root; the data
# lives beside it, in ../shared/data (see its README).
SHARED_DATA = (Path(__file__).resolve().parents[3] / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data_session() -> Callable[[str], Path]:
    """A function: path under the shared data folder -> that path, or skip/fail if absent.

    Missing data fails the test when CI == "true" (CI must have the data), else skips it.
    Same rule as ``shared_data`` of tests/conftest.py, but session-scoped, so that the
    module-scoped fixtures that import a whole dataset once can use it.
    """

    def require(relative: str) -> Path:
        path = SHARED_DATA / relative
        if not path.exists():
            message = (
                f"shared data {path} is missing: expected the real datasets in ../shared/data "
                "beside the repository (see its README.md)"
            )
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        return path

    return require


@dataclasses.dataclass
class ReadBack:
    """A log as ``read_log`` returns it: the events and the dead letters."""

    events: List[Event]
    dead_letters: List[DeadLetter]

    def per_type(self) -> Counter:
        return collections.Counter(e[features.EVENT.name] for e in self.events)

    def distinct(self, field: features.LogField) -> int:
        return len({e[field.name] for e in self.events})


def read_back(log_dir: os.PathLike) -> ReadBack:
    """Reads a whole log with ``read_log``."""
    events: List[Event] = []
    letters: List[DeadLetter] = []
    for result in read_log(str(log_dir)):
        (letters if isinstance(result, DeadLetter) else events).append(result)
    return ReadBack(events, letters)


@pytest.fixture(scope="session")
def read_log_back() -> Callable[[os.PathLike], ReadBack]:
    """``read_back`` as a fixture (test modules do not import each other's conftest)."""
    return read_back


def reasons_of(dead_letters: List[DeadLetter]) -> Dict[int, str]:
    """line -> reason of each dead letter (lines are unique in the small test files)."""
    return {letter.line: letter.reason for letter in dead_letters}


@pytest.fixture(scope="session")
def dead_letter_reasons() -> Callable[[List[DeadLetter]], Dict[int, str]]:
    return reasons_of
