"""Deterministic event-log simulator: the embedded data source for the demo, tests and benchmarks.

It writes a canonical event log (``tfx_pipeline.eventlog``) of impressions with click,
cart, fav and buy outcomes, whose click probability depends strongly on how recently and
how often the user clicked the candidate's category. A model with target attention over
the click history can learn that; a model that ignores history cannot (see
``docs/simulator.md`` for the measured gap).

Generative process
------------------
Global tables, drawn once from the master seed:

* ``categories`` categories with Zipf-like popularity ``w_c ∝ rank_c^-0.6`` (ranks a
  random permutation). Items get categories in proportion to ``w_c``; every category holds
  at least one item.
* ``items`` items with Zipf-like popularity ``w_j ∝ rank_j^-1.0`` (ranks a random
  permutation, so popularity does not follow the id), a quality ``q_j ~ N(0, 0.4)`` and a
  price ``exp(N(log 30, 0.8))`` per category times ``exp(N(0, 0.4))`` per item, rounded to
  cents and at least 0.50.

Per user (seeded from ``(seed, user index)``): age, gender, segment (new, casual, loyal), a
preferred device, an activity level ``sessions_per_day * segment multiplier * Gamma(2, 1/2)``
and ``interests`` distinct latent interest categories drawn by ``w_c`` with Dirichlet(2)
weights. The user's click history keeps only the clicks of the last
``history_window_days``, so per-user state stays small.

Per user and day (seeded from ``(seed, user index, day)``, so the result is the same in
whatever order or process users and days are simulated):

1. Drift: from the second day on, with probability ``drift`` one interest slot (chosen
   uniformly) is replaced by a category not yet held, drawn by ``w_c``.
2. Sessions: ``Poisson(activity)`` sessions at random non-overlapping times of the UTC day,
   each with a device (the preferred one with probability 0.85) and a page (home, search,
   category, detail).
3. Candidates: ``1 + Poisson(impressions_per_session - 1)`` impressions (at most three
   times the mean), each from one source: with probability 0.5 an item of an interest
   category (category by interest weight), 0.2 an item of a recently clicked category
   (category of a uniformly drawn click of the window, so frequent categories come up
   more; an interest category if there is no click yet), 0.3 a globally popular item (by
   ``w_j``). Within a category items are drawn by ``w_j``. Twice the needed candidates are
   drawn and repeats dropped, so an item is shown at most once per session. Impressions
   are 3 to 20 seconds apart.
4. Click: with ``n_c`` the number of the user's clicks in the impression's category ``c``
   at times in ``[t - history_window, t)``, ``t`` the impression time, and ``t_c`` the last
   of them (the history is updated when a session ends, so clicks of the same session do
   not count)::

       logit = click_bias + segment bias + device effect + page effect + q_j
               + interest_effect * [c in the current interests]
               + frequency_effect * log1p(n_c)
               + recency_effect * exp(-(t - t_c) / recency_tau)     (0 when n_c = 0)
       p_click = sigmoid(logit)

   A click follows its impression by 2 to 30 seconds.
5. After a click: ``buy`` with ``p_buy = sigmoid(conversion_bias + conversion_price_effect *
   z(log price) + conversion_interest_effect * [c in interests] +
   conversion_frequency_effect * log1p(n_c))``, 2 to 30 minutes after the click; ``cart``
   with probability 0.6 if bought (before the buy) and 0.08 if not; ``fav`` with probability
   0.05. Only clicks enter the history.

With the default constants the click-through rate starts near 3% on the first day (no
history yet) and settles near 8% once histories fill the window; over a week it is about
7%, and the conversion rate given a click 12-16%. The true probabilities are returned by
``iter_user_traces`` and never written to the log.

Output
------
Users are split into ``shards`` fixed shards (user ``u`` in shard ``u % shards``); each
shard is written by one process as ``LOG/span-YYYYMMDD/events-<shard>.<ext>`` (UTC), day by
day, one ``LogWriter`` per shard and day so that finished files are closed at once. The
merged manifest (source ``simulator``, details = every parameter) is written last. Same
parameters give byte-identical files whatever the number of worker processes.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import math
import multiprocessing
import os
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from tfx_pipeline.eventlog import spans
from tfx_pipeline.eventlog.formats import FileFormat
from tfx_pipeline.eventlog.logdir import LogWriter, Manifest, merge_manifests
from transforms import features

SOURCE = "simulator"
GENERATOR_VERSION = 1

# The side fields the simulator writes, by scope.
_AGE = features.log_field("user_age")
_GENDER = features.log_field("user_gender")
_SEGMENT = features.log_field("user_segment")
_PRICE = features.log_field("item_price")
_DEVICE = features.log_field("device")
_PAGE = features.log_field("page")
SIDE_FIELDS: Tuple[features.LogField, ...] = (_AGE, _GENDER, _SEGMENT, _PRICE, _DEVICE, _PAGE)

_USER_KEY = features.USER_ID.name
_ITEM_KEY = features.ITEM_ID.name
_CATEGORY_KEY = features.CATEGORY_ID.name
_EVENT_KEY = features.EVENT.name
_TIMESTAMP_KEY = features.TIMESTAMP.name

# Event codes, in the order events of one second are written.
_IMPRESSION, _CLICK, _FAV, _CART, _BUY = range(5)
_EVENT_NAMES: Tuple[str, ...] = (
    features.EventType.IMPRESSION.value,
    features.EventType.CLICK.value,
    features.EventType.FAV.value,
    features.EventType.CART.value,
    features.EventType.BUY.value,
)

# Categorical values and their additive click-logit effects.
GENDERS: Tuple[str, ...] = ("F", "M")
GENDER_PROBABILITIES = (0.55, 0.45)
SEGMENTS: Tuple[str, ...] = ("new", "casual", "loyal")
SEGMENT_PROBABILITIES = (0.3, 0.5, 0.2)
SEGMENT_ACTIVITY = (0.6, 1.0, 1.6)  # sessions multiplier; mean over segments is 1.0
SEGMENT_CLICK_EFFECT = (-0.2, 0.0, 0.2)
DEVICES: Tuple[str, ...] = ("ios", "android", "web")
DEVICE_PROBABILITIES = (0.4, 0.45, 0.15)
DEVICE_CLICK_EFFECT = (0.1, 0.0, -0.1)
PREFERRED_DEVICE_PROBABILITY = 0.85
PAGES: Tuple[str, ...] = ("home", "search", "category", "detail")
PAGE_PROBABILITIES = (0.5, 0.2, 0.2, 0.1)
PAGE_CLICK_EFFECT = (0.0, 0.3, 0.1, 0.2)

# Candidate sources, in the order of BehaviourParams.candidate_mix.
_FROM_INTEREST, _FROM_RECENT, _FROM_POPULAR = range(3)

# Timing, in seconds.
IMPRESSION_GAP = (3, 20)
CLICK_DELAY = (2, 30)
FAV_DELAY = (5, 60)  # after the click
CART_DELAY = (10, 110)  # after the click; always before a buy
BUY_DELAY = (120, 1800)  # after the click
_MAX_SESSION_LENGTH_FACTOR = 3  # at most this times impressions_per_session per session

# Seed-sequence domains: what a random stream is for.
_WORLD_STREAM, _USER_STREAM, _DAY_STREAM = range(3)


# ------------------------------------------------------------------------- configuration


def _check_number(
    name: str, value: Any, kind: type, low: Optional[float] = None, high: Optional[float] = None
) -> None:
    """Raises a ValueError unless `value` is a finite `kind` (int or float) in [low, high]."""
    ok_type = isinstance(value, (int, float)) if kind is float else isinstance(value, int)
    if isinstance(value, bool) or not ok_type:
        raise ValueError(
            f"`{name}` must be {'a number' if kind is float else 'an integer'}. "
            f"Received: {name}={value!r} ({type(value).__name__})."
        )
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number. Received: {name}={value!r}.")
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            expected = f"at least {low}"
        elif low is None:
            expected = f"at most {high}"
        else:
            expected = f"between {low} and {high}"
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}.")


@dataclasses.dataclass(frozen=True)
class BehaviourParams:
    """The constants of the click and conversion model (see the module docstring).

    Recorded in the manifest. The defaults give a click-through rate of 5-8% and a
    conversion rate given a click of 12-16% (see docs/simulator.md).
    """

    click_bias: float = -5.3
    item_quality_std: float = 0.4
    interest_effect: float = 1.2
    frequency_effect: float = 0.6
    recency_effect: float = 1.5
    recency_tau_hours: float = 6.0
    history_window_days: float = 3.0
    conversion_bias: float = -3.4
    conversion_price_effect: float = -0.5
    conversion_interest_effect: float = 0.7
    conversion_frequency_effect: float = 0.3
    cart_given_buy: float = 0.6
    cart_given_no_buy: float = 0.08
    fav_given_click: float = 0.05
    # Candidate sources: interest categories, recently clicked categories, popular items.
    candidate_mix: Tuple[float, float, float] = (0.5, 0.2, 0.3)
    item_zipf_exponent: float = 1.0
    category_zipf_exponent: float = 0.6

    def __post_init__(self) -> None:
        mix = self.candidate_mix
        try:
            mix = tuple(float(x) for x in mix)
        except (TypeError, ValueError):
            pass
        if (
            not isinstance(mix, tuple) or len(mix) != 3 or not all(math.isfinite(x) and x >= 0 for x in mix)
            or sum(mix) <= 0
        ):
            raise ValueError(
                "`candidate_mix` must be three non-negative weights (interest, recent, popular) "
                f"with a positive sum. Received: candidate_mix={mix!r}."
            )
        object.__setattr__(self, "candidate_mix", mix)
        for field in dataclasses.fields(self):
            if field.name != "candidate_mix":
                _check_number(field.name, getattr(self, field.name), float)
        for name in ("recency_tau_hours", "history_window_days"):
            _check_number(name, getattr(self, name), float, 1e-6)
        for name in ("cart_given_buy", "cart_given_no_buy", "fav_given_click"):
            _check_number(name, getattr(self, name), float, 0.0, 1.0)
        for name in ("item_quality_std", "item_zipf_exponent", "category_zipf_exponent"):
            _check_number(name, getattr(self, name), float, 0.0)


@dataclasses.dataclass(frozen=True)
class SimulatorConfig:
    """Everything that determines a simulated log. Field names match the CLI flags.

    Attributes:
      users: number of users, ids ``u0`` .. ``u<users-1>``.
      items: number of items, ids ``i0`` ..; at least ``categories``.
      days: number of UTC days (spans) from ``start_date``.
      seed: master seed (non-negative integer).
      start_date: first day; a ``datetime.date`` or ``YYYY-MM-DD`` text.
      categories: number of item categories, ids ``c0`` ...
      interests: latent interest categories per user.
      drift: daily probability that one of a user's interests is replaced.
      sessions_per_day: mean sessions of an average user per day.
      impressions_per_session: mean impressions per session.
      shards: fixed number of output shards (files per span); independent of workers.
      file_format: csv, jsonl or parquet.
      behaviour: the click and conversion model constants.
    """

    users: int = 1000
    items: int = 2000
    days: int = 7
    seed: int = 0
    start_date: Union[dt.date, str] = dt.date(2024, 1, 1)
    categories: int = 20
    interests: int = 3
    drift: float = 0.3
    sessions_per_day: float = 3.0
    impressions_per_session: int = 20
    shards: int = 2
    file_format: Union[FileFormat, str] = FileFormat.CSV
    behaviour: BehaviourParams = BehaviourParams()

    def __post_init__(self) -> None:
        _check_number("users", self.users, int, 1)
        _check_number("items", self.items, int, 1)
        _check_number("days", self.days, int, 1, 36500)
        _check_number("seed", self.seed, int, 0)
        _check_number("categories", self.categories, int, 1)
        _check_number("interests", self.interests, int, 1)
        _check_number("drift", self.drift, float, 0.0, 1.0)
        _check_number("sessions_per_day", self.sessions_per_day, float, 0.01, 20.0)
        _check_number("impressions_per_session", self.impressions_per_session, int, 1, 1000)
        _check_number("shards", self.shards, int, 1, 10000)
        if self.items < self.categories:
            raise ValueError(
                f"`items` must be at least `categories` so every category has an item. "
                f"Received: items={self.items}, categories={self.categories}. "
                "Raise items or lower categories."
            )
        if self.interests > self.categories or (self.drift > 0 and self.interests == self.categories):
            raise ValueError(
                "`interests` must be below `categories` (drift needs a category to move to). "
                f"Received: interests={self.interests}, categories={self.categories}, drift={self.drift}. "
                "Lower interests or raise categories."
            )
        object.__setattr__(self, "start_date", _parse_date(self.start_date))
        object.__setattr__(self, "file_format", _parse_format(self.file_format))
        if not isinstance(self.behaviour, BehaviourParams):
            raise ValueError(
                f"`behaviour` must be a BehaviourParams. Received: {type(self.behaviour).__name__}."
            )

    @property
    def side_field_names(self) -> List[str]:
        return [f.name for f in SIDE_FIELDS]

    def span(self, day: int) -> spans.Span:
        """The UTC span of day `day` (0-based)."""
        return spans.Span(self.start_date + dt.timedelta(days=day), 0)

    def shard_users(self, shard: int) -> range:
        """The user indices of one shard."""
        return range(shard, self.users, self.shards)

    def to_details(self) -> Dict[str, Any]:
        """Every parameter, JSON-ready, for the manifest."""
        details = dataclasses.asdict(self)
        details["start_date"] = self.start_date.isoformat()
        details["file_format"] = FileFormat(self.file_format).value
        details["behaviour"]["candidate_mix"] = list(self.behaviour.candidate_mix)
        details["generator_version"] = GENERATOR_VERSION
        return details

    @classmethod
    def from_details(cls, details: Mapping[str, Any]) -> "SimulatorConfig":
        """The config recorded by ``to_details`` (e.g. a manifest's details), to regenerate a log."""
        values = dict(details)
        version = values.pop("generator_version", GENERATOR_VERSION)
        if version != GENERATOR_VERSION:
            raise ValueError(
                f"The log was written by simulator version {version}; this is version "
                f"{GENERATOR_VERSION}, which would not reproduce it. Use a matching ctrflow release."
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known) + sorted(
            f"behaviour.{k}" for k in set(values.get("behaviour", {})) - {f.name for f in dataclasses.fields(BehaviourParams)}
        )
        if unknown:
            raise ValueError(
                f"Unknown simulator parameters {unknown}; expected only {sorted(known)} "
                "(and BehaviourParams fields under behaviour). Was the log written by another version?"
            )
        values["behaviour"] = BehaviourParams(**values.get("behaviour", {}))
        return cls(**values)


def _parse_date(value: Union[dt.date, str]) -> dt.date:
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"`start_date` must be a date in the form YYYY-MM-DD, e.g. 2024-01-01. Received: {value!r}."
            ) from None
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise ValueError(f"`start_date` must be a datetime.date or YYYY-MM-DD text. Received: {value!r}.")
    if value.year < 1970 or value.year > 9000:
        raise ValueError(f"`start_date` must lie between 1970 and 9000. Received: {value.isoformat()}.")
    return value


def _parse_format(value: Union[FileFormat, str]) -> FileFormat:
    try:
        return FileFormat(value)
    except ValueError:
        raise ValueError(
            f"`file_format` must be one of {[f.value for f in FileFormat]}. Received: {value!r}."
        ) from None


# ------------------------------------------------------------------------- random streams


def _stream(seed: int, *key: int) -> np.random.Generator:
    """An independent random stream for `key` under the master seed."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _zipf_weights(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Zipf-like weights rank^-exponent with ranks in random order, summing to one."""
    ranks = rng.permutation(n) + 1.0
    weights = ranks ** -exponent
    return weights / weights.sum()


def _cdf(weights: Sequence[float]) -> np.ndarray:
    """Cumulative distribution of non-negative weights, ending at exactly 1."""
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64))
    cumulative /= cumulative[-1]
    cumulative[-1] = 1.0
    return cumulative


_PAGE_CDF = _cdf(PAGE_PROBABILITIES)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# --------------------------------------------------------------------------- global tables


@dataclasses.dataclass(frozen=True)
class World:
    """Items and categories: the global tables, from the master seed only.

    ``category_order`` lays the items out by category and ``category_keys[p]`` is the
    item's category plus its within-category popularity CDF, so that one ``searchsorted``
    draws items for a whole vector of categories.
    """

    category_weights: np.ndarray  # [C] popularity, sums to 1
    item_category: np.ndarray  # [I] category index per item
    item_quality: np.ndarray  # [I] additive click logit
    item_price: np.ndarray  # [I] price, two decimals
    item_price_z: np.ndarray  # [I] standardized log price
    popular_cdf: np.ndarray  # [I] CDF of global item popularity
    category_order: np.ndarray  # [I] item indices sorted by category
    category_keys: np.ndarray  # [I] category + within-category CDF, in category_order
    category_offsets: np.ndarray  # [C + 1] start of each category in category_order
    source_cdf: np.ndarray  # [3] CDF of the candidate sources (interest, recent, popular)
    item_ids: List[str]
    item_category_ids: List[str]
    item_price_list: List[float]

    def items_of_categories(self, categories: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """One item per category, drawn by popularity within the category."""
        positions = np.searchsorted(self.category_keys, categories + uniforms, side="right")
        positions = np.clip(positions, self.category_offsets[categories], self.category_offsets[categories + 1] - 1)
        return self.category_order[positions]

    def popular_items(self, uniforms: np.ndarray) -> np.ndarray:
        """Items drawn by global popularity."""
        return np.minimum(np.searchsorted(self.popular_cdf, uniforms, side="right"), self.popular_cdf.size - 1)


def build_world(config: SimulatorConfig) -> World:
    """The item and category tables of `config` (depends on seed, items, categories only)."""
    rng = _stream(config.seed, _WORLD_STREAM)
    behaviour = config.behaviour
    num_items, num_categories = config.items, config.categories
    category_weights = _zipf_weights(rng, num_categories, behaviour.category_zipf_exponent)
    item_category = np.concatenate([
        np.arange(num_categories),
        rng.choice(num_categories, size=num_items - num_categories, p=category_weights),
    ])
    item_category = rng.permutation(item_category)
    item_weights = _zipf_weights(rng, num_items, behaviour.item_zipf_exponent)
    item_quality = rng.normal(0.0, behaviour.item_quality_std, num_items)
    category_price = np.exp(rng.normal(math.log(30.0), 0.8, num_categories))
    item_price = np.maximum(np.round(category_price[item_category] * np.exp(rng.normal(0.0, 0.4, num_items)), 2), 0.5)
    log_price = np.log(item_price)
    item_price_z = (log_price - log_price.mean()) / max(float(log_price.std()), 1e-9)

    category_order = np.argsort(item_category, kind="stable")
    sorted_categories = item_category[category_order]
    category_offsets = np.searchsorted(sorted_categories, np.arange(num_categories + 1))
    within = np.empty(num_items)
    for c in range(num_categories):
        lo, hi = category_offsets[c], category_offsets[c + 1]
        cumulative = np.cumsum(item_weights[category_order[lo:hi]])
        within[lo:hi] = cumulative / cumulative[-1]
    popular_cdf = np.cumsum(item_weights)
    popular_cdf /= popular_cdf[-1]
    return World(
        category_weights=category_weights,
        item_category=item_category,
        item_quality=item_quality,
        item_price=item_price,
        item_price_z=item_price_z,
        popular_cdf=popular_cdf,
        category_order=category_order,
        category_keys=sorted_categories + within,
        category_offsets=category_offsets,
        source_cdf=_cdf(behaviour.candidate_mix),
        item_ids=[f"i{j}" for j in range(num_items)],
        item_category_ids=[f"c{c}" for c in item_category.tolist()],
        item_price_list=item_price.tolist(),
    )


# ------------------------------------------------------------------------------- users


@dataclasses.dataclass
class UserState:
    """One user: fixed profile plus the small state carried from day to day."""

    index: int
    user_id: str
    age: float
    gender: str
    segment: int
    preferred_device: int
    activity: float  # mean sessions per day
    interests: np.ndarray  # [interests] category indices
    interest_cdf: np.ndarray  # [interests] cumulative interest weights
    click_times: np.ndarray  # clicks within the history window: unix seconds
    click_categories: np.ndarray  # ... and their categories
    next_day: int = 0  # the day to simulate next

    def forget_before(self, timestamp: int) -> None:
        """Drops clicks older than `timestamp`; they can no longer count."""
        keep = self.click_times >= timestamp
        if not keep.all():
            self.click_times = self.click_times[keep]
            self.click_categories = self.click_categories[keep]

    def remember(self, times: np.ndarray, categories: np.ndarray) -> None:
        if times.size:
            self.click_times = np.concatenate([self.click_times, times])
            self.click_categories = np.concatenate([self.click_categories, categories])


def new_user(world: World, config: SimulatorConfig, index: int) -> UserState:
    """A user's profile and initial interests, from ``(seed, index)``."""
    rng = _stream(config.seed, _USER_STREAM, index)
    segment = int(rng.choice(len(SEGMENTS), p=SEGMENT_PROBABILITIES))
    interests = rng.choice(config.categories, size=config.interests, replace=False, p=world.category_weights)
    weights = rng.dirichlet(np.full(config.interests, 2.0))
    return UserState(
        index=index,
        user_id=f"u{index}",
        age=float(np.clip(np.round(rng.normal(34.0, 11.0)), 16, 75)),
        gender=GENDERS[int(rng.choice(len(GENDERS), p=GENDER_PROBABILITIES))],
        segment=segment,
        preferred_device=int(rng.choice(len(DEVICES), p=DEVICE_PROBABILITIES)),
        activity=config.sessions_per_day * SEGMENT_ACTIVITY[segment] * float(rng.gamma(2.0, 0.5)),
        interests=interests,
        interest_cdf=np.cumsum(weights) / weights.sum(),
        click_times=np.empty(0, dtype=np.int64),
        click_categories=np.empty(0, dtype=np.int64),
    )


def _drift(world: World, config: SimulatorConfig, state: UserState, rng: np.random.Generator) -> None:
    """With probability ``drift``, replaces one interest by a category not yet held."""
    if rng.random() >= config.drift:
        return
    slot = int(rng.integers(config.interests))
    weights = world.category_weights.copy()
    weights[state.interests] = 0.0
    new_category = int(rng.choice(config.categories, p=weights / weights.sum()))
    interests = state.interests.copy()
    interests[slot] = new_category
    state.interests = interests


# ---------------------------------------------------------------------------- sessions


@dataclasses.dataclass
class _Session:
    """The events of one session (unsorted columns) and the truth of its impressions."""

    timestamps: np.ndarray
    codes: np.ndarray
    items: np.ndarray
    click_probability: np.ndarray  # per impression, in impression order
    conversion_probability: np.ndarray
    clicked: np.ndarray


def _max_session_seconds(config: SimulatorConfig) -> int:
    """An upper bound on the time from a session's first impression to its last event."""
    length = _MAX_SESSION_LENGTH_FACTOR * config.impressions_per_session
    return (length - 1) * IMPRESSION_GAP[1] + CLICK_DELAY[1] + BUY_DELAY[1] + 1


def _session_starts(config: SimulatorConfig, state: UserState, rng: np.random.Generator) -> np.ndarray:
    """Non-overlapping session start offsets within the day, in seconds, ascending."""
    span_seconds = _max_session_seconds(config)
    max_sessions = spans.SECONDS_PER_DAY // span_seconds
    count = min(int(rng.poisson(state.activity)), max_sessions)
    free = spans.SECONDS_PER_DAY - count * span_seconds
    return np.sort(rng.integers(0, free + 1, size=count)) + np.arange(count) * span_seconds


def _uniform_seconds(uniforms: np.ndarray, bounds: Tuple[int, int]) -> np.ndarray:
    """Whole seconds uniform in [low, high], from uniforms in [0, 1)."""
    low, high = bounds
    return low + (uniforms * (high - low + 1)).astype(np.int64)


def _draw_candidates(world: World, config: SimulatorConfig, state: UserState, rng: np.random.Generator) -> np.ndarray:
    """The items shown in one session, distinct, in display order."""
    mean = config.impressions_per_session
    length = min(1 + int(rng.poisson(mean - 1)), _MAX_SESSION_LENGTH_FACTOR * mean)
    draws = 2 * length  # oversample so that duplicates can be dropped
    source_u, interest_u, recent_u, item_u = rng.random((4, draws))
    source = np.searchsorted(world.source_cdf, source_u, side="right")
    slots = np.minimum(np.searchsorted(state.interest_cdf, interest_u, side="right"), config.interests - 1)
    categories = state.interests[slots]
    if state.click_categories.size:
        recent = state.click_categories[(recent_u * state.click_categories.size).astype(np.int64)]
        categories = np.where(source == _FROM_RECENT, recent, categories)
    items = np.where(
        source == _FROM_POPULAR, world.popular_items(item_u), world.items_of_categories(categories, item_u)
    )
    _, first = np.unique(items, return_index=True)
    return items[np.sort(first)[:length]]


def _history_features(
    state: UserState, categories: np.ndarray, timestamps: np.ndarray, window: float
) -> Tuple[np.ndarray, np.ndarray]:
    """Per impression: clicks in its category within the window, and the last such click time."""
    if state.click_times.size == 0:
        return np.zeros(categories.size, dtype=np.int64), np.zeros(categories.size, dtype=np.int64)
    mask = (state.click_categories[None, :] == categories[:, None]) & (
        state.click_times[None, :] >= timestamps[:, None] - window
    )
    counts = mask.sum(axis=1)
    last = np.where(mask, state.click_times[None, :], 0).max(axis=1)
    return counts, last


def _click_and_buy_probabilities(
    world: World, config: SimulatorConfig, state: UserState, items: np.ndarray,
    timestamps: np.ndarray, device: int, page: int,
) -> Tuple[np.ndarray, np.ndarray]:
    """The true click probability of each impression and buy probability given a click."""
    behaviour = config.behaviour
    categories = world.item_category[items]
    interest_mask = np.zeros(config.categories, dtype=bool)
    interest_mask[state.interests] = True
    in_interest = interest_mask[categories]
    counts, last = _history_features(
        state, categories, timestamps, behaviour.history_window_days * spans.SECONDS_PER_DAY
    )
    recency = np.where(counts > 0, np.exp(-(timestamps - last) / (behaviour.recency_tau_hours * 3600.0)), 0.0)
    log_counts = np.log1p(counts)
    click_logit = (
        behaviour.click_bias
        + SEGMENT_CLICK_EFFECT[state.segment]
        + DEVICE_CLICK_EFFECT[device]
        + PAGE_CLICK_EFFECT[page]
        + world.item_quality[items]
        + behaviour.interest_effect * in_interest
        + behaviour.frequency_effect * log_counts
        + behaviour.recency_effect * recency
    )
    buy_logit = (
        behaviour.conversion_bias
        + behaviour.conversion_price_effect * world.item_price_z[items]
        + behaviour.conversion_interest_effect * in_interest
        + behaviour.conversion_frequency_effect * log_counts
    )
    return _sigmoid(click_logit), _sigmoid(buy_logit)


def _simulate_session(
    world: World,
    config: SimulatorConfig,
    state: UserState,
    rng: np.random.Generator,
    start: int,
    device: int,
    page: int,
) -> _Session:
    """One session: candidates, click and conversion probabilities, sampled outcomes.

    Updates the user's click history at the end, so that the next session sees it.
    """
    behaviour = config.behaviour
    items = _draw_candidates(world, config, state, rng)
    n = items.size
    # One block of uniforms per session; every row is drawn in full, whatever the outcomes.
    gap_u, click_u, buy_u, cart_u, fav_u, click_d, fav_d, cart_d, buy_d = rng.random((9, n))
    gaps = _uniform_seconds(gap_u, IMPRESSION_GAP)
    gaps[0] = 0
    timestamps = start + np.cumsum(gaps)
    p_click, p_buy = _click_and_buy_probabilities(world, config, state, items, timestamps, device, page)
    clicked = click_u < p_click
    bought = clicked & (buy_u < p_buy)
    carted = clicked & (cart_u < np.where(bought, behaviour.cart_given_buy, behaviour.cart_given_no_buy))
    faved = clicked & (fav_u < behaviour.fav_given_click)
    click_time = timestamps + _uniform_seconds(click_d, CLICK_DELAY)
    parts = [
        (timestamps, _IMPRESSION, items),
        (click_time[clicked], _CLICK, items[clicked]),
        ((click_time + _uniform_seconds(fav_d, FAV_DELAY))[faved], _FAV, items[faved]),
        ((click_time + _uniform_seconds(cart_d, CART_DELAY))[carted], _CART, items[carted]),
        ((click_time + _uniform_seconds(buy_d, BUY_DELAY))[bought], _BUY, items[bought]),
    ]
    state.remember(click_time[clicked], world.item_category[items[clicked]])
    return _Session(
        timestamps=np.concatenate([p[0] for p in parts]),
        codes=np.concatenate([np.full(p[0].size, p[1], dtype=np.int64) for p in parts]),
        items=np.concatenate([p[2] for p in parts]),
        click_probability=p_click,
        conversion_probability=p_buy,
        clicked=clicked,
    )


# -------------------------------------------------------------------------------- days


@dataclasses.dataclass
class DayTrace:
    """One user's day: the log events (time order) and the truth behind its impressions.

    ``click_probability``, ``conversion_probability`` and ``clicked`` are aligned with the
    impression events of ``events`` in order. ``interests`` are the latent interest
    categories (ids) of the day, after drift.
    """

    events: List[Dict[str, Any]]
    click_probability: np.ndarray
    conversion_probability: np.ndarray
    clicked: np.ndarray
    interests: Tuple[str, ...]


def _session_events(world: World, state: UserState, session: _Session, device: int, page: int) -> List[Dict[str, Any]]:
    """The rows of one session, sorted by time, then event code, then item."""
    order = np.lexsort((session.items, session.codes, session.timestamps))
    user_id, age, gender, segment = state.user_id, state.age, state.gender, SEGMENTS[state.segment]
    device_name, page_name = DEVICES[device], PAGES[page]
    item_ids, category_ids, prices = world.item_ids, world.item_category_ids, world.item_price_list
    return [
        {
            _USER_KEY: user_id,
            _ITEM_KEY: item_ids[item],
            _CATEGORY_KEY: category_ids[item],
            _EVENT_KEY: _EVENT_NAMES[code],
            _TIMESTAMP_KEY: timestamp,
            _AGE.name: age,
            _GENDER.name: gender,
            _SEGMENT.name: segment,
            _PRICE.name: prices[item],
            _DEVICE.name: device_name,
            _PAGE.name: page_name,
        }
        for timestamp, code, item in zip(
            session.timestamps[order].tolist(), session.codes[order].tolist(), session.items[order].tolist()
        )
    ]


def simulate_user_day(world: World, config: SimulatorConfig, state: UserState, day: int) -> DayTrace:
    """Simulates day `day` (0-based) of one user and advances the user's state.

    Days of one user must be simulated in order; users are independent of each other.
    """
    if day != state.next_day:
        raise ValueError(
            f"Days of a user must be simulated in order: {state.user_id} expects day {state.next_day}. "
            f"Received: day={day}. Start from new_user() to simulate from day 0."
        )
    state.next_day += 1
    rng = _stream(config.seed, _DAY_STREAM, state.index, day)
    if day > 0:
        _drift(world, config, state, rng)
    day_start = config.span(day).start
    state.forget_before(day_start - int(config.behaviour.history_window_days * spans.SECONDS_PER_DAY))
    events: List[Dict[str, Any]] = []
    p_click, p_buy, clicked = [], [], []
    for offset in _session_starts(config, state, rng).tolist():
        switch_u, device_u, page_u = rng.random(3)
        device = state.preferred_device
        if switch_u >= PREFERRED_DEVICE_PROBABILITY:
            device = int(device_u * len(DEVICES))
        page = int(np.searchsorted(_PAGE_CDF, page_u, side="right"))
        session = _simulate_session(world, config, state, rng, day_start + offset, device, page)
        events.extend(_session_events(world, state, session, device, page))
        p_click.append(session.click_probability)
        p_buy.append(session.conversion_probability)
        clicked.append(session.clicked)
    return DayTrace(
        events=events,
        click_probability=np.concatenate(p_click) if p_click else np.empty(0),
        conversion_probability=np.concatenate(p_buy) if p_buy else np.empty(0),
        clicked=np.concatenate(clicked) if clicked else np.empty(0, dtype=bool),
        interests=tuple(f"c{c}" for c in state.interests.tolist()),
    )


@dataclasses.dataclass
class UserTrace:
    """All days of one user: events in time order and the truth of each impression.

    ``interests_by_day[d]`` are the user's latent interest categories on day ``d``.
    """

    user_id: str
    events: List[Dict[str, Any]]
    click_probability: np.ndarray
    conversion_probability: np.ndarray
    clicked: np.ndarray
    interests_by_day: List[Tuple[str, ...]]


def iter_user_traces(config: SimulatorConfig, users: Optional[Iterable[int]] = None) -> Iterator[UserTrace]:
    """Yields, per user, the events the log holds and the true probabilities behind them.

    Args:
      config: the simulation.
      users: user indices to simulate (default: all). Each user's trace is the same as in
        the written log, whatever users are asked for.
    """
    world = build_world(config)
    for index in range(config.users) if users is None else users:
        if not 0 <= index < config.users:
            raise ValueError(f"User index must lie in [0, {config.users}). Received: {index}.")
        state = new_user(world, config, index)
        days = [simulate_user_day(world, config, state, day) for day in range(config.days)]
        yield UserTrace(
            user_id=state.user_id,
            events=[event for trace in days for event in trace.events],
            click_probability=np.concatenate([t.click_probability for t in days]),
            conversion_probability=np.concatenate([t.conversion_probability for t in days]),
            clicked=np.concatenate([t.clicked for t in days]),
            interests_by_day=[t.interests for t in days],
        )


# ------------------------------------------------------------------------------ writing


class WorkerError(RuntimeError):
    """A worker process writing shards died; the log is incomplete (it has no manifest)."""


def write_shard(config: SimulatorConfig, out_dir: str, shard: int) -> List[Manifest]:
    """Writes the events of one shard's users, day by day; returns one manifest per day.

    Each day gets its own ``LogWriter`` (shard number `shard`) that is closed when the day
    is done, so memory holds one day of one shard at most (Parquet buffers a file until
    it is closed) and the per-user state.
    """
    if not 0 <= shard < config.shards:
        raise ValueError(f"`shard` must lie in [0, {config.shards}). Received: shard={shard}.")
    world = build_world(config)
    users = [new_user(world, config, index) for index in config.shard_users(shard)]
    manifests = []
    for day in range(config.days):
        writer = LogWriter(out_dir, config.file_format, 0, config.side_field_names, shard=shard)
        try:
            for state in users:
                for event in simulate_user_day(world, config, state, day).events:
                    writer.write(event)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        manifests.append(writer.manifest(SOURCE))
    return manifests


def _write_shard_task(task: Tuple[SimulatorConfig, str, int]) -> List[Manifest]:
    return write_shard(*task)


def _run_in_processes(tasks: Sequence[Tuple[SimulatorConfig, str, int]], processes: int) -> List[List[Manifest]]:
    """Runs shard tasks in `processes` fresh processes; results in task order."""
    # spawn, not fork: the caller may hold threads (TensorFlow, Beam) that fork would copy.
    # A process pool executor, unlike multiprocessing.Pool, fails instead of hanging when a
    # worker dies.
    context = multiprocessing.get_context("spawn")
    try:
        with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context) as pool:
            return list(pool.map(_write_shard_task, tasks))
    except concurrent.futures.process.BrokenProcessPool as err:
        raise WorkerError(
            f"A simulator worker process died ({err}). It may have run out of memory, been killed, "
            "or failed to start because the calling script cannot be imported again by a spawned "
            "process (guard its entry point with `if __name__ == '__main__':`). "
            "Retry with workers=1 to run in this process."
        ) from err


def _prepare_out_dir(out_dir: str) -> None:
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise ValueError(f"Output {out_dir!r} is a file. Expected a new or empty directory; pass another path.")
        if os.listdir(out_dir):
            raise ValueError(
                f"Output directory {out_dir!r} is not empty. Expected a new or empty directory, so that "
                "the log holds only this simulation; delete it or pass another path."
            )
    os.makedirs(out_dir, exist_ok=True)


def simulate(config: SimulatorConfig, out_dir: str, workers: int = 2) -> Manifest:
    """Writes the log of `config` under `out_dir` and returns its manifest (written last).

    Args:
      config: what to simulate.
      out_dir: a new or empty directory.
      workers: processes writing shards in parallel (at most ``config.shards`` are used).
        The output does not depend on it.
    """
    _check_number("workers", workers, int, 1)
    _prepare_out_dir(out_dir)
    tasks = [(config, out_dir, shard) for shard in range(config.shards)]
    processes = min(workers, config.shards)
    if processes == 1:
        results = [_write_shard_task(task) for task in tasks]
    else:
        results = _run_in_processes(tasks, processes)
    manifest = merge_manifests([m for shard_manifests in results for m in shard_manifests], config.to_details())
    manifest.write(out_dir)
    return manifest
