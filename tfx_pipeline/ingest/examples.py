"""Turning one user's events into training examples, with point-in-time histories.

This is the heart of ingest, kept free of Beam so it can be checked by hand: Beam groups
the events by user and calls ``build_user_examples`` once per user.

How one user is processed (n events, H = max_history):

1. Sort the events by (time, event order, ...), impressions before clicks before buys
   within a second; drop exact duplicates as dead letters. O(n log n) time.
2. Backward pass: attribute each buy to the latest click of the same item within the
   conversion window, and each click to the latest impression of that item within the
   click window (last-touch attribution). This fixes every label before any example is
   made, so examples are final the moment they are built and nothing waits.
3. Forward pass: keep the newest H history events in a ring buffer; a history event joins
   the buffer only once time has moved past its second, so a candidate sees exactly the
   events strictly before its timestamp. Each candidate copies the buffer and is emitted
   at once. O(n * H) time.

Memory per user is the compact event list (one tuple of a few fields per event, about
150 bytes), the set of items the user chose and the H-long buffer: it grows linearly with
the user's own events and not with the number of examples made from them, so a user with
100,000 events costs tens of megabytes, and hot items cost nothing extra (item statistics
are a separate combine).
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import hashlib
import json
import random
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple, Union

from tfx_pipeline.eventlog.formats import DeadLetter
from tfx_pipeline.eventlog.validation import Event, Reason, Window
from tfx_pipeline.ingest.config import EVAL, TRAIN, IngestConfig, Protocol, Sampling, Split
from transforms import features

# Order of event types within one second: an impression precedes what it caused.
EVENT_RANK = {name: rank for rank, name in enumerate(features.EVENT_TYPES)}
_SIDE_NAMES = tuple(f.name for f in features.SIDE_FIELDS)
_ITEM_SIDE = tuple(i for i, f in enumerate(features.SIDE_FIELDS) if f.scope == features.Scope.ITEM)


class CompactEvent(NamedTuple):
    """An event as it travels through the shuffle, keyed by user elsewhere."""

    timestamp: int
    rank: int  # EVENT_RANK of the event type
    item: str
    category: str
    side: Tuple[Any, ...]  # values of features.SIDE_FIELDS in order, None where absent
    source: str
    line: int

    @property
    def event(self) -> str:
        return features.EVENT_TYPES[self.rank]

    def sort_key(self) -> Tuple:
        side = tuple("" if v is None else repr(v) for v in self.side)
        return (self.timestamp, self.rank, self.item, self.category, side, self.source, self.line)

    def identity(self) -> Tuple:
        """Everything but where the row was read: equal identities are duplicate rows."""
        return (self.timestamp, self.rank, self.item, self.category, self.side)


def compact(event: Event, source: str, line: int) -> Tuple[str, CompactEvent]:
    """(user_id, CompactEvent) of a validated event."""
    return event[features.USER_ID.name], CompactEvent(
        event[features.TIMESTAMP.name],
        EVENT_RANK[event[features.EVENT.name]],
        event[features.ITEM_ID.name],
        event[features.CATEGORY_ID.name],
        tuple(event.get(name) for name in _SIDE_NAMES),
        source,
        line,
    )


def expand(user: str, event: CompactEvent) -> Event:
    """The event dict of a CompactEvent (for dead letters of duplicates)."""
    data: Event = {
        features.USER_ID.name: user,
        features.ITEM_ID.name: event.item,
        features.CATEGORY_ID.name: event.category,
        features.EVENT.name: event.event,
        features.TIMESTAMP.name: event.timestamp,
    }
    data.update({name: value for name, value in zip(_SIDE_NAMES, event.side) if value is not None})
    return data


@dataclasses.dataclass(frozen=True)
class ItemInfo:
    category: str
    side: Tuple[Any, ...]  # item-scope side values, in features.SIDE_FIELDS order (others None)
    count: int  # how often anyone chose the item (popularity)


class ItemTable:
    """Every item that was chosen at least once, with its category, for negative sampling.

    Sampling is by popularity (weight = times chosen) or uniform, and rejects items the
    user chose; weights are cumulative sums searched with bisect, O(log M) per draw.
    """

    MAX_DRAWS = 64

    def __init__(self, items: Dict[str, ItemInfo], sampling: Sampling):
        self.items = items
        self._ids = sorted(items)
        weights = [items[i].count if sampling == Sampling.POPULARITY else 1 for i in self._ids]
        self._cumulative = []
        total = 0
        for weight in weights:
            total += weight
            self._cumulative.append(total)
        self._total = total

    def __len__(self) -> int:
        return len(self._ids)

    def sample(self, rng: random.Random, exclude: Set[str]) -> Optional[str]:
        """An item not in `exclude`, or None when every item is excluded."""
        if self._total == 0:
            return None
        for _ in range(self.MAX_DRAWS):
            index = bisect.bisect_right(self._cumulative, rng.random() * self._total)
            item = self._ids[min(index, len(self._ids) - 1)]
            if item not in exclude:
                return item
        # The user chose most items: draw uniformly from what is left.
        remaining = [i for i in self._ids if i not in exclude]
        return rng.choice(remaining) if remaining else None


def stable_hash(*parts: Any) -> int:
    """A 64-bit hash that is the same on every machine and Python run."""
    text = json.dumps(parts, ensure_ascii=False, default=str).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def user_in_eval(user: str, config: IngestConfig) -> bool:
    return stable_hash("split", config.seed, user) % 100 < config.eval_percent


class ExampleOut(NamedTuple):
    split: str
    features: Dict[str, List[Any]]


class _HistoryStep(NamedTuple):
    item: str
    category: str
    timestamp: int
    negative_item: str
    negative_category: str


def _labels(events: Sequence[CompactEvent], config: IngestConfig) -> Tuple[List[int], List[int]]:
    """Backward pass: click and conversion label of every event, by last-touch attribution.

    A buy converts the latest click of the same item at most conversion_window earlier; a
    click clicks the latest impression of the same item at most click_window earlier. For a
    click the labels say whether it converted; for an impression, whether it was clicked and
    whether that click converted.
    """
    click = [0] * len(events)
    conversion = [0] * len(events)
    next_buy: Dict[str, int] = {}
    next_click: Dict[str, int] = {}  # item -> index of the nearest later click not yet attributed
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        kind = event.event
        if kind == features.CONVERSION_EVENT:
            next_buy[event.item] = event.timestamp
        elif kind == features.CLICK_EVENT:
            click[index] = 1
            buy = next_buy.get(event.item)
            if buy is not None and buy - event.timestamp < config.conversion_window_seconds:
                conversion[index] = 1
                del next_buy[event.item]
            next_click[event.item] = index
        elif kind == features.IMPRESSION_EVENT:
            later = next_click.get(event.item)
            if later is not None and events[later].timestamp - event.timestamp < config.click_window_seconds:
                click[index] = 1
                conversion[index] = conversion[later]
                del next_click[event.item]
    return click, conversion


def _candidate_indices(
    events: Sequence[CompactEvent], config: IngestConfig, target: Window
) -> List[int]:
    """Indices of the events that become positive or shown candidates."""
    kind = features.IMPRESSION_EVENT if config.protocol == Protocol.IMPRESSIONS else features.CLICK_EVENT
    indices = [i for i, e in enumerate(events) if e.event == kind and target.contains(e.timestamp)]
    if config.protocol == Protocol.DIEN:
        return indices[-1:]
    return indices


class UserExampleBuilder:
    """Builds the examples of one user; see the module docstring for the algorithm."""

    def __init__(self, config: IngestConfig, items: ItemTable, target: Window,
                 eval_window: Optional[Window] = None):
        if config.protocol == Protocol.AUTO or config.split is None:
            raise ValueError("UserExampleBuilder needs a resolved config; call config.resolved(...) first.")
        if config.split == Split.LAST_DAY and eval_window is None:
            raise ValueError("split 'last_day' needs the eval span's window (eval_window).")
        self.config = config
        self.items = items
        self.target = target
        self.eval_window = eval_window
        self.stats: collections.Counter = collections.Counter()

    def build(self, user: str, events: Iterable[CompactEvent]) -> Iterator[Union[ExampleOut, DeadLetter]]:
        config = self.config
        ordered: List[CompactEvent] = []
        previous = None
        for event in sorted(events, key=CompactEvent.sort_key):
            identity = event.identity()
            if identity == previous:
                self.stats["duplicate_rows"] += 1
                yield DeadLetter(event.source, event.line, Reason.DUPLICATE_ROW.value,
                                 "the same event appears earlier in this span",
                                 json.dumps(expand(user, event), ensure_ascii=False).encode("utf-8"))
                continue
            previous = identity
            ordered.append(event)

        candidates = _candidate_indices(ordered, config, self.target)
        if not candidates:
            return
        click, conversion = _labels(ordered, config)
        chosen = {e.item for e in ordered if e.event in features.POSITIVE_EVENTS}
        rng = random.Random(stable_hash("negatives", config.seed, user))
        last_time = ordered[candidates[-1]].timestamp
        in_eval_users = config.split == Split.USER_HASH and user_in_eval(user, config)
        sampled = config.protocol != Protocol.IMPRESSIONS
        needs_history = config.protocol in (Protocol.DIN, Protocol.DIEN)

        history: collections.deque = collections.deque(maxlen=config.max_history)
        waiting: List[_HistoryStep] = []  # history events of the current second
        current_second = None
        is_candidate = set(candidates)
        for index, event in enumerate(ordered):
            if event.timestamp != current_second:
                history.extend(waiting)
                waiting = []
                current_second = event.timestamp
            if index in is_candidate and (history or not needs_history):
                split = self._split(event.timestamp, last_time, in_eval_users)
                steps = tuple(history)
                yield self._example(user, event, event.item, event.category, event.side,
                                    click[index], conversion[index], steps, split)
                if sampled:
                    for _ in range(config.negatives_per_positive):
                        negative = self.items.sample(rng, chosen)
                        if negative is None:
                            self.stats["candidates_without_negative"] += 1
                            continue
                        info = self.items.items[negative]
                        side = tuple(info.side[i] if i in _ITEM_SIDE else v for i, v in enumerate(event.side))
                        yield self._example(user, event, negative, info.category, side, 0, 0, steps, split)
            if event.event in config.history_events:
                waiting.append(self._step(event, rng, chosen))

    def _split(self, timestamp: int, last_time: int, in_eval_users: bool) -> str:
        split = self.config.split
        if split == Split.LAST_DAY:
            return EVAL if self.eval_window.contains(timestamp) else TRAIN
        if split == Split.LAST_EVENT:
            return EVAL if timestamp == last_time else TRAIN
        return EVAL if in_eval_users else TRAIN

    def _step(self, event: CompactEvent, rng: random.Random, chosen: Set[str]) -> _HistoryStep:
        negative_item, negative_category = "", ""
        if self.config.history_negatives:
            negative = self.items.sample(rng, chosen)
            if negative is None:
                self.stats["history_steps_without_negative"] += 1
            else:
                negative_item, negative_category = negative, self.items.items[negative].category
        return _HistoryStep(event.item, event.category, event.timestamp, negative_item, negative_category)

    def _example(self, user: str, event: CompactEvent, item: str, category: str,
                 side: Tuple[Any, ...], click: int, conversion: int,
                 steps: Tuple[_HistoryStep, ...], split: str) -> ExampleOut:
        values: Dict[str, List[Any]] = {
            features.CANDIDATE_USER.name: [user],
            features.CANDIDATE_ITEM.name: [item],
            features.CANDIDATE_CATEGORY.name: [category],
            features.CANDIDATE_TIME.name: [event.timestamp],
            features.HISTORY_ITEMS.name: [s.item for s in steps],
            features.HISTORY_CATEGORIES.name: [s.category for s in steps],
            features.HISTORY_TIME_GAPS.name: [event.timestamp - s.timestamp for s in steps],
            features.CLICK_LABEL.name: [click],
            features.CONVERSION_LABEL.name: [conversion],
        }
        if self.config.history_negatives:
            values[features.HISTORY_NEGATIVE_ITEMS.name] = [s.negative_item for s in steps]
            values[features.HISTORY_NEGATIVE_CATEGORIES.name] = [s.negative_category for s in steps]
        for name, value in zip(_SIDE_NAMES, side):
            if value is not None:
                values[name] = [value]
        self.stats[f"examples_{split}"] += 1
        self.stats[f"clicks_{split}"] += click
        return ExampleOut(split, values)


def item_info(event: CompactEvent) -> Tuple[str, Tuple[int, str, Tuple[Any, ...]]]:
    """(item, (1, category, item-scope side)) of a chosen event, to be combined per item."""
    side = tuple(v if i in _ITEM_SIDE else None for i, v in enumerate(event.side))
    return event.item, (1, event.category, side)


def combine_item_info(values: Iterable[Tuple[int, str, Tuple[Any, ...]]]) -> Tuple[int, str, Tuple[Any, ...]]:
    """Count, and the smallest (category, side) seen, so the result does not depend on order."""
    count = 0
    best = None
    for n, category, side in values:
        count += n
        key = (category, tuple("" if v is None else repr(v) for v in side))
        if best is None or key < best[0]:
            best = (key, category, side)
    return count, best[1], best[2]


def item_table(pairs: Iterable[Tuple[str, Tuple[int, str, Tuple[Any, ...]]]], sampling: Sampling) -> ItemTable:
    return ItemTable({item: ItemInfo(category, side, count) for item, (count, category, side) in pairs}, sampling)
