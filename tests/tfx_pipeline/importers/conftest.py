"""Fixtures of the importer tests: the shared real data, reading a written log back."""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Callable, Counter, Dict, List

import pytest

from tfx_pipeline.eventlog.formats import DeadLetter
from tfx_pipeline.eventlog.logdir import read_log
from tfx_pipeline.eventlog.validation import Event
from transforms import features

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
