"""Tests of the event-log simulator: planted signal, determinism, log validity, formats."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest

from tfx_pipeline import simulator
from tfx_pipeline.eventlog import logdir, spans
from tfx_pipeline.eventlog.formats import DeadLetter
from transforms import features

USER = features.USER_ID.name
ITEM = features.ITEM_ID.name
CATEGORY = features.CATEGORY_ID.name
EVENT = features.EVENT.name
TIMESTAMP = features.TIMESTAMP.name
IMPRESSION = features.EventType.IMPRESSION.value
CLICK = features.EventType.CLICK.value
BUY = features.EventType.BUY.value
CART = features.EventType.CART.value
FAV = features.EventType.FAV.value

# Small enough to run in about a second, large enough for stable AUCs (~18k eval impressions).
SIGNAL_CONFIG = simulator.SimulatorConfig(users=300, items=500, days=4, seed=11)
SMALL_CONFIG = simulator.SimulatorConfig(users=40, items=200, days=2, seed=3, categories=10)


# ------------------------------------------------------------------------------ helpers


def auc(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula; tied scores get their average rank."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based ranks
    ranks = average_rank[inverse]
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError(f"AUC needs both classes. Received: {positives} positives, {negatives} negatives.")
    return float((ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def event_key(event: Dict) -> Tuple:
    return tuple(event.get(f.name) for f in features.LOG_FIELDS)


def file_digests(log_dir: str) -> Dict[str, str]:
    digests = {}
    for root, _, names in os.walk(log_dir):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as stream:
                digests[os.path.relpath(path, log_dir)] = hashlib.sha256(stream.read()).hexdigest()
    return digests


def read_events(log_dir: str) -> List[Dict]:
    results = list(logdir.read_log(log_dir))
    dead = [r for r in results if isinstance(r, DeadLetter)]
    assert dead == [], f"dead letters: {dead[:3]}"
    return results


@pytest.fixture(scope="module")
def signal_traces() -> List[simulator.UserTrace]:
    return list(simulator.iter_user_traces(SIGNAL_CONFIG))


@pytest.fixture(scope="module")
def small_log(tmp_path_factory) -> Tuple[str, logdir.Manifest]:
    out = str(tmp_path_factory.mktemp("small") / "log")
    return out, simulator.simulate(SMALL_CONFIG, out, workers=1)


# ------------------------------------------------------------------------ AUC helper


def test_auc_matches_hand_computed_values():
    labels = [1, 0, 1, 0, 0]
    scores = [0.8, 0.1, 0.4, 0.4, 0.35]
    # Positive 0.8 beats all 3 negatives; positive 0.4 beats 0.1 and 0.35, ties 0.4 (counts 1/2).
    assert auc(labels, scores) == pytest.approx((3 + 2.5) / 6)
    assert auc([0, 1], [0.2, 0.9]) == 1.0
    assert auc([1, 0], [0.2, 0.9]) == 0.0
    assert auc([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]) == 0.5


# ----------------------------------------------------------------------- planted signal


def _last_day_scores(traces: Sequence[simulator.UserTrace], config: simulator.SimulatorConfig):
    """Truth, history and popularity scores of the last day's impressions.

    The popularity baselines are fitted on the earlier days of the log: item click rate
    (smoothed towards the global rate) and item impression count. The history score uses
    the log only: the user's clicks in the impression's category in the 3 days before it,
    and how recent the last one is.
    """
    last_day = config.span(config.days - 1).start
    shown, clicks = collections.Counter(), collections.Counter()
    rows = []  # (item, true probability, history score, clicked)
    for trace in traces:
        history = collections.defaultdict(list)  # category -> click times
        truth = iter(zip(trace.click_probability.tolist(), trace.clicked.tolist()))
        for event in trace.events:
            if event[EVENT] == CLICK:
                history[event[CATEGORY]].append(event[TIMESTAMP])
            if event[EVENT] != IMPRESSION:
                continue
            probability, clicked = next(truth)
            now = event[TIMESTAMP]
            if now < last_day:
                shown[event[ITEM]] += 1
                clicks[event[ITEM]] += clicked
                continue
            recent = [t for t in history[event[CATEGORY]] if now - 3 * 86400 <= t < now]
            score = math.log1p(len(recent)) + (math.exp(-(now - max(recent)) / 21600.0) if recent else 0.0)
            rows.append((event[ITEM], probability, score, clicked))
    global_rate = sum(clicks.values()) / sum(shown.values())
    items = [r[0] for r in rows]
    labels = np.array([r[3] for r in rows])
    return {
        "labels": labels,
        "truth": np.array([r[1] for r in rows]),
        "history": np.array([r[2] for r in rows]),
        "item_click_rate": np.array([(clicks[i] + 10 * global_rate) / (shown[i] + 10) for i in items]),
        "item_popularity": np.array([shown[i] for i in items], dtype=float),
    }


def test_true_click_probability_beats_history_free_popularity_by_far(signal_traces):
    scores = _last_day_scores(signal_traces, SIGNAL_CONFIG)
    labels = scores["labels"]
    assert labels.size > 10000 and labels.sum() > 500
    truth_auc = auc(labels, scores["truth"])
    click_rate_auc = auc(labels, scores["item_click_rate"])
    popularity_auc = auc(labels, scores["item_popularity"])
    best_popularity = max(click_rate_auc, popularity_auc, 1.0 - popularity_auc)
    # Measured with seed 11: truth 0.888, item click rate 0.693, item popularity 0.469.
    assert truth_auc > 0.8
    assert truth_auc > best_popularity + 0.15, (truth_auc, click_rate_auc, popularity_auc)


def test_click_history_in_the_log_recovers_most_of_the_signal(signal_traces):
    scores = _last_day_scores(signal_traces, SIGNAL_CONFIG)
    labels = scores["labels"]
    history_auc = auc(labels, scores["history"])
    click_rate_auc = auc(labels, scores["item_click_rate"])
    # Measured with seed 11: history 0.866 against item click rate 0.693.
    assert history_auc > click_rate_auc + 0.12, (history_auc, click_rate_auc)


def test_rates_are_realistic(signal_traces):
    counts = collections.Counter(e[EVENT] for t in signal_traces for e in t.events)
    ctr = counts[CLICK] / counts[IMPRESSION]
    cvr = counts[BUY] / counts[CLICK]
    assert 0.03 <= ctr <= 0.10, counts
    assert 0.05 <= cvr <= 0.20, counts
    assert counts[CART] > 0 and counts[FAV] > 0
    # The truth is calibrated: mean probability matches the realised click rate.
    probabilities = np.concatenate([t.click_probability for t in signal_traces])
    assert probabilities.mean() == pytest.approx(ctr, rel=0.05)


def test_trace_truth_is_aligned_with_impressions(signal_traces):
    for trace in signal_traces[:50]:
        impressions = [e for e in trace.events if e[EVENT] == IMPRESSION]
        clicks = [e for e in trace.events if e[EVENT] == CLICK]
        assert len(impressions) == trace.click_probability.size == trace.clicked.size
        assert len(clicks) == int(trace.clicked.sum())
        clicked_items = {(e[ITEM], e[TIMESTAMP]) for e in clicks}
        for impression, was_clicked in zip(impressions, trace.clicked.tolist()):
            followed = any((impression[ITEM], impression[TIMESTAMP] + d) in clicked_items for d in range(2, 31))
            assert followed == was_clicked


# ---------------------------------------------------------------------------- behaviour


def test_outcomes_follow_a_click_of_the_same_user_and_item(signal_traces):
    for trace in signal_traces:
        first_click: Dict[str, int] = {}
        for event in trace.events:
            kind, item, when = event[EVENT], event[ITEM], event[TIMESTAMP]
            if kind == CLICK:
                first_click.setdefault(item, when)
            elif kind in (BUY, CART, FAV):
                assert item in first_click and first_click[item] < when, (trace.user_id, event)
        times = [e[TIMESTAMP] for e in trace.events]
        assert times == sorted(times)


def test_conversions_come_minutes_after_their_click(signal_traces):
    delays = []
    for trace in signal_traces:
        last_click: Dict[str, int] = {}
        for event in trace.events:
            if event[EVENT] == CLICK:
                last_click[event[ITEM]] = event[TIMESTAMP]
            elif event[EVENT] == BUY:
                delays.append(event[TIMESTAMP] - last_click[event[ITEM]])
    assert delays and min(delays) >= 120 and max(delays) <= 1800


def test_interests_drift_over_days(signal_traces):
    changed = [t for t in signal_traces if len(set(t.interests_by_day)) > 1]
    # Drift 0.3 a day over 3 transitions: about 1 - 0.7**3 = 66% of users move.
    assert 0.5 * len(signal_traces) < len(changed) < 0.85 * len(signal_traces)
    for trace in signal_traces:
        for before, after in zip(trace.interests_by_day, trace.interests_by_day[1:]):
            assert len(set(before) - set(after)) <= 1  # at most one interest replaced a day
            assert len(set(after)) == SIGNAL_CONFIG.interests


def test_no_drift_keeps_interests():
    config = dataclasses.replace(SMALL_CONFIG, drift=0.0, days=4)
    for trace in simulator.iter_user_traces(config, users=range(20)):
        assert len(set(trace.interests_by_day)) == 1


def test_user_and_item_fields_are_fixed(signal_traces):
    user_fields = [features.log_field(n).name for n in ("user_age", "user_gender", "user_segment")]
    price = features.log_field("item_price").name
    prices: Dict[str, float] = {}
    for trace in signal_traces:
        assert len({tuple(e[f] for f in user_fields) for e in trace.events}) <= 1  # 0: an idle user
        for event in trace.events:
            assert prices.setdefault(event[ITEM], event[price]) == event[price]


def test_user_history_state_stays_within_the_window():
    config = dataclasses.replace(SMALL_CONFIG, days=10)
    world = simulator.build_world(config)
    state = simulator.new_user(world, config, 0)
    window = int(config.behaviour.history_window_days * 86400)
    for day in range(config.days):
        simulator.simulate_user_day(world, config, state, day)
        assert state.click_times.size == state.click_categories.size
        if state.click_times.size:
            assert state.click_times.min() >= config.span(day).start - window


def test_days_of_a_user_must_come_in_order():
    world = simulator.build_world(SMALL_CONFIG)
    state = simulator.new_user(world, SMALL_CONFIG, 0)
    with pytest.raises(ValueError, match=r"u0 expects day 0\. Received: day=1"):
        simulator.simulate_user_day(world, SMALL_CONFIG, state, 1)


def test_user_traces_do_not_depend_on_which_users_are_simulated():
    everyone = {t.user_id: t for t in simulator.iter_user_traces(SMALL_CONFIG)}
    some = list(simulator.iter_user_traces(SMALL_CONFIG, users=[7, 3]))
    assert [t.user_id for t in some] == ["u7", "u3"]
    for trace in some:
        assert trace.events == everyone[trace.user_id].events
        np.testing.assert_array_equal(trace.click_probability, everyone[trace.user_id].click_probability)


# --------------------------------------------------------------------------- the files


def test_log_validates_and_matches_the_manifest(small_log):
    out, manifest = small_log
    events = read_events(out)
    assert manifest.source == simulator.SOURCE
    assert manifest.utc_offset_seconds == 0
    assert manifest.side_fields == [f.name for f in simulator.SIDE_FIELDS]
    assert manifest.counts["good"] == len(events) and manifest.counts["bad"] == 0
    assert manifest.events_per_type == dict(sorted(collections.Counter(e[EVENT] for e in events).items()))
    per_span = collections.Counter(spans.span_of(e[TIMESTAMP]).name for e in events)
    assert manifest.events_per_span == dict(sorted(per_span.items()))
    assert list(manifest.events_per_span) == [SMALL_CONFIG.span(d).name for d in range(SMALL_CONFIG.days)]
    assert logdir.read_manifest(out).to_json() == manifest.to_json()
    for day in range(SMALL_CONFIG.days):
        span_dir = os.path.join(out, SMALL_CONFIG.span(day).name)
        assert sorted(os.listdir(span_dir)) == ["events-00000.csv", "events-00001.csv"]


def test_log_holds_exactly_the_traced_events(small_log):
    out, _ = small_log
    traced = sorted(event_key(e) for t in simulator.iter_user_traces(SMALL_CONFIG) for e in t.events)
    assert sorted(event_key(e) for e in read_events(out)) == traced


def test_users_are_split_over_fixed_shards(small_log):
    out, _ = small_log
    for shard in range(SMALL_CONFIG.shards):
        path = os.path.join(out, SMALL_CONFIG.span(0).name, f"events-{shard:05d}.csv")
        with open(path, encoding="utf-8") as stream:
            users = {line.split(",", 1)[0] for line in list(stream)[1:]}
        assert users and all(int(u[1:]) % SMALL_CONFIG.shards == shard for u in users)


def test_manifest_details_regenerate_the_config(small_log):
    _, manifest = small_log
    assert simulator.SimulatorConfig.from_details(manifest.details) == SMALL_CONFIG
    for name in ("users", "items", "days", "seed", "categories", "interests", "drift", "shards"):
        assert manifest.details[name] == getattr(SMALL_CONFIG, name)
    assert manifest.details["start_date"] == "2024-01-01"
    assert manifest.details["behaviour"]["recency_effect"] == SMALL_CONFIG.behaviour.recency_effect


def test_same_seed_gives_identical_bytes_whatever_the_workers(small_log, tmp_path):
    out, _ = small_log
    again = str(tmp_path / "again")
    parallel = str(tmp_path / "parallel")
    simulator.simulate(SMALL_CONFIG, again, workers=1)
    simulator.simulate(SMALL_CONFIG, parallel, workers=2)
    expected = file_digests(out)
    assert len(expected) == 1 + SMALL_CONFIG.days * SMALL_CONFIG.shards
    assert file_digests(again) == expected
    assert file_digests(parallel) == expected


def test_different_seed_gives_different_log(small_log, tmp_path):
    out, _ = small_log
    other = str(tmp_path / "other")
    simulator.simulate(dataclasses.replace(SMALL_CONFIG, seed=SMALL_CONFIG.seed + 1), other, workers=1)
    expected, got = file_digests(out), file_digests(other)
    assert set(expected) == set(got)
    assert all(expected[name] != got[name] for name in expected)


def test_more_shards_than_users(tmp_path):
    config = dataclasses.replace(SMALL_CONFIG, users=1, shards=3, sessions_per_day=5.0)
    manifest = simulator.simulate(config, str(tmp_path / "log"), workers=1)
    events = read_events(str(tmp_path / "log"))
    assert len(events) == manifest.counts["good"] > 0
    assert {e[USER] for e in events} == {"u0"}
    assert os.listdir(tmp_path / "log" / config.span(0).name) == ["events-00000.csv"]


def test_formats_read_back_equal(small_log, tmp_path):
    out, manifest = small_log
    csv_events = sorted(event_key(e) for e in read_events(out))
    for fmt in ("jsonl", "parquet"):
        path = str(tmp_path / fmt)
        other = simulator.simulate(dataclasses.replace(SMALL_CONFIG, file_format=fmt), path, workers=1)
        assert os.path.exists(os.path.join(path, SMALL_CONFIG.span(0).name, f"events-00000.{fmt}"))
        assert sorted(event_key(e) for e in read_events(path)) == csv_events
        assert other.events_per_span == manifest.events_per_span
        assert other.file_format.value == fmt


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"users": 0}, r"`users` must be at least 1\. Received: users=0"),
        ({"items": 5, "categories": 10}, r"`items` must be at least `categories`.*items=5, categories=10"),
        ({"interests": 10, "categories": 10}, r"`interests` must be below `categories`"),
        ({"drift": 1.5}, r"`drift` must be between 0.0 and 1.0\. Received: drift=1.5"),
        ({"days": 2.5}, r"`days` must be an integer\. Received: days=2.5"),
        ({"seed": -1}, r"`seed` must be at least 0"),
        ({"start_date": "2024-02-30"}, r"`start_date` must be a date in the form YYYY-MM-DD.*'2024-02-30'"),
        ({"file_format": "xml"}, r"`file_format` must be one of \['csv', 'jsonl', 'parquet'\]\. Received: 'xml'"),
    ],
)
def test_bad_config_says_what_was_received(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SMALL_CONFIG, **changes)


def test_bad_behaviour_says_what_was_received():
    with pytest.raises(ValueError, match=r"`candidate_mix` must be three.*Received: candidate_mix=\(1.0, -1.0, 0.0\)"):
        simulator.BehaviourParams(candidate_mix=(1, -1, 0))
    with pytest.raises(ValueError, match=r"`click_bias` must be a finite number\. Received: click_bias=nan"):
        simulator.BehaviourParams(click_bias=float("nan"))
    with pytest.raises(ValueError, match=r"`fav_given_click` must be between 0.0 and 1.0"):
        simulator.BehaviourParams(fav_given_click=2.0)


def test_unknown_details_are_refused(small_log):
    details = dict(small_log[1].details, colour="red")
    with pytest.raises(ValueError, match=r"Unknown simulator parameters \['colour'\]"):
        simulator.SimulatorConfig.from_details(details)


def test_refuses_a_non_empty_output_and_bad_workers(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "other.txt").write_text("x")
    with pytest.raises(ValueError, match="is not empty. Expected a new or empty directory"):
        simulator.simulate(SMALL_CONFIG, str(tmp_path / "full"))
    with pytest.raises(ValueError, match=r"`workers` must be at least 1\. Received: workers=0"):
        simulator.simulate(SMALL_CONFIG, str(tmp_path / "new"), workers=0)
