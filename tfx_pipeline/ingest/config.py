"""How ingest turns an event log into training examples: protocol, history, negatives, split."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any, Dict, Mapping, Optional, Tuple

from transforms import features


class Protocol(str, enum.Enum):
    """Which events become candidates, and where negatives come from.

    - ``impressions``: every impression is a candidate; a click of the same item within
      ``click_window_seconds`` labels it clicked, a buy within ``conversion_window_seconds``
      of that click labels it converted. For logs with impressions (the simulator, ad logs).
    - ``sampled``: every click is a positive candidate with ``negatives_per_positive``
      sampled negatives at the same time and with the same history. For logs without
      impressions (Taobao, MovieLens).
    - ``din``: the DIN paper's Amazon protocol (protocol A): per user with n clicks, targets
      2..n-1 with the clicks before them as history train, the last click tests; each target
      gets one sampled negative with the same history.
    - ``dien``: the DIEN paper's protocol (protocol B): one positive (the user's last click)
      and one sampled negative per user; users split 90/10 between train and eval.
    - ``auto``: ``impressions`` if the log has impressions, else ``sampled``.
    """

    AUTO = "auto"
    IMPRESSIONS = "impressions"
    SAMPLED = "sampled"
    DIN = "din"
    DIEN = "dien"


class Split(str, enum.Enum):
    """How candidates are split into train and eval (never both).

    - ``last_day``: eval holds the candidates of the newest span, train the older ones.
    - ``last_event``: eval holds each user's last candidates (the newest candidate time of
      that user, with its negatives), train the rest.
    - ``user_hash``: eval holds the users whose id hashes into ``eval_percent`` of 100 buckets.
    """

    LAST_DAY = "last_day"
    LAST_EVENT = "last_event"
    USER_HASH = "user_hash"


class Sampling(str, enum.Enum):
    """How negative items are drawn from the items a user never chose."""

    POPULARITY = "popularity"  # proportional to how often the item was chosen by anyone
    UNIFORM = "uniform"


DEFAULT_SPLIT = {
    Protocol.IMPRESSIONS: Split.LAST_DAY,
    Protocol.SAMPLED: Split.LAST_DAY,
    Protocol.DIN: Split.LAST_EVENT,
    Protocol.DIEN: Split.USER_HASH,
}

TRAIN = "train"
EVAL = "eval"
SPLITS = (TRAIN, EVAL)


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    """Settings of one ingest run. ``resolved()`` fills the protocol-dependent defaults."""

    protocol: Protocol = Protocol.AUTO
    split: Optional[Split] = None  # None: the protocol's default (DEFAULT_SPLIT)
    max_history: int = 100
    negatives_per_positive: int = 1
    negative_sampling: Sampling = Sampling.POPULARITY
    history_negatives: bool = True  # one sampled negative per history step, for DIEN
    eval_percent: int = 10
    click_window_seconds: int = 3600
    conversion_window_seconds: int = 7 * 86400
    history_events: Tuple[str, ...] = (features.CLICK_EVENT,)
    seed: int = 0
    max_bad_fraction: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(self, "protocol", _member(Protocol, "protocol", self.protocol))
        if self.split is not None:
            object.__setattr__(self, "split", _member(Split, "split", self.split))
        object.__setattr__(self, "negative_sampling",
                           _member(Sampling, "negative_sampling", self.negative_sampling))
        object.__setattr__(self, "history_events", tuple(self.history_events))
        _require(self.max_history >= 1, "max_history", self.max_history, "an integer >= 1")
        _require(self.negatives_per_positive >= 1, "negatives_per_positive",
                 self.negatives_per_positive, "an integer >= 1")
        _require(0 < self.eval_percent < 100, "eval_percent", self.eval_percent, "an integer in 1..99")
        _require(self.click_window_seconds > 0, "click_window_seconds", self.click_window_seconds, "> 0")
        _require(self.conversion_window_seconds > 0, "conversion_window_seconds",
                 self.conversion_window_seconds, "> 0")
        _require(0.0 <= self.max_bad_fraction <= 1.0, "max_bad_fraction", self.max_bad_fraction,
                 "a fraction in [0, 1]")
        unknown = [e for e in self.history_events if e not in features.POSITIVE_EVENTS]
        _require(bool(self.history_events) and not unknown, "history_events", self.history_events,
                 f"a non-empty subset of {list(features.POSITIVE_EVENTS)}")

    def resolved(self, log_has_impressions: bool) -> "IngestConfig":
        """This config with ``auto`` and the default split made concrete."""
        protocol = self.protocol
        if protocol == Protocol.AUTO:
            protocol = Protocol.IMPRESSIONS if log_has_impressions else Protocol.SAMPLED
        if protocol == Protocol.IMPRESSIONS and not log_has_impressions:
            raise ValueError(
                "protocol 'impressions' needs impression events, and this log has none. "
                "Use protocol 'sampled' (or 'din'/'dien') to sample negatives instead."
            )
        split = self.split or DEFAULT_SPLIT[protocol]
        return dataclasses.replace(self, protocol=protocol, split=split)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["protocol"] = self.protocol.value
        data["split"] = self.split.value if self.split else None
        data["negative_sampling"] = self.negative_sampling.value
        data["history_events"] = list(self.history_events)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "IngestConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown ingest settings {unknown}. Expected only {sorted(known)}.")
        try:
            return cls(**dict(data))
        except ValueError as err:
            raise ValueError(f"Bad ingest settings: {err}") from None

    @classmethod
    def from_json(cls, text: str) -> "IngestConfig":
        return cls.from_dict(json.loads(text))


def _member(enum_class, name: str, value: Any):
    try:
        return enum_class(value)
    except ValueError:
        raise ValueError(
            f"`{name}` must be one of {[m.value for m in enum_class]}. Received: {name}={value!r}"
        ) from None


def _require(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
