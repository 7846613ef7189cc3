"""Properties of ingest over random logs: no leakage, valid negatives, disjoint splits, no lost rows."""

import collections

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfx_pipeline.eventlog.formats import DeadLetter
from tfx_pipeline.eventlog.validation import Rejection, Window, validate_record
from tfx_pipeline.ingest import examples as ex
from tfx_pipeline.ingest.config import IngestConfig
from transforms import features

DAY = 86400
WINDOW = Window(0, 3 * DAY)
EVENTS = list(features.EVENT_TYPES) + ["teleport"]  # one unknown event type

row = st.fixed_dictionaries({
    "user_id": st.sampled_from(["u1", "u2", "ü3", "u,4", ""]),
    "item_id": st.sampled_from([f"i{k}" for k in range(8)]),
    "category_id": st.sampled_from(["c1", "c2", "c3"]),
    "event": st.sampled_from(EVENTS),
    "timestamp": st.one_of(st.integers(-10, 3 * DAY + 10), st.just("soon")),
})
logs = st.lists(row, min_size=1, max_size=80).flatmap(
    # repeat some rows to make duplicates
    lambda rows: st.lists(st.sampled_from(rows), max_size=10).map(lambda extra: rows + extra))
configs = st.builds(
    IngestConfig,
    protocol=st.sampled_from(["impressions", "sampled", "din", "dien"]),
    split=st.sampled_from([None, "last_day", "last_event", "user_hash"]),
    max_history=st.integers(1, 5),
    negatives_per_positive=st.integers(1, 3),
    negative_sampling=st.sampled_from(["popularity", "uniform"]),
    seed=st.integers(0, 3),
)


def ingest_in_memory(rows, config):
    """The pure pipeline: validate, group by user, item table, build; returns examples and dead letters."""
    dead, by_user = [], collections.defaultdict(list)
    for line, record in enumerate(rows, start=1):
        result = validate_record(record, WINDOW)
        if isinstance(result, Rejection):
            dead.append(result)
            continue
        user, event = ex.compact(result, "log.csv", line)
        by_user[user].append(event)
    chosen = [ex.item_info(e) for events in by_user.values() for e in events
              if e.event in features.POSITIVE_EVENTS]
    grouped = collections.defaultdict(list)
    for item, value in chosen:
        grouped[item].append(value)
    items = ex.item_table([(i, ex.combine_item_info(v)) for i, v in grouped.items()], config.negative_sampling)
    examples = []
    builder = ex.UserExampleBuilder(config, items, WINDOW, Window(2 * DAY, 3 * DAY))
    for user, events in by_user.items():
        for out in builder.build(user, events):
            (dead if isinstance(out, DeadLetter) else examples).append(out)
    return examples, dead, by_user, builder.stats


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=logs, config=configs)
def test_ingest_invariants(rows, config):
    has_impressions = any(r["event"] == "impression" for r in rows)
    if config.protocol.value == "impressions" and not has_impressions:
        config = IngestConfig(protocol="sampled", split=config.split)
    config = config.resolved(has_impressions)
    examples, dead, by_user, stats = ingest_in_memory(rows, config)

    # Counts are conserved: every input row is an event kept once, or a dead letter.
    kept = sum(len({e.identity() for e in events}) for events in by_user.values())
    assert kept + len(dead) == len(rows)

    positives = {u: {e.item for e in events if e.event in features.POSITIVE_EVENTS} for u, events in by_user.items()}
    times = {u: [e for e in events] for u, events in by_user.items()}
    identities = collections.Counter()
    for out in examples:
        f = out.features
        user, ts = f["user_id"][0], f["timestamp"][0]
        # No leakage: every history event is strictly older than the candidate and was chosen by the user.
        assert all(gap >= 1 for gap in f["history_time_gap"])
        assert len(f["history_item_id"]) <= config.max_history
        for item, gap in zip(f["history_item_id"], f["history_time_gap"]):
            assert any(e.item == item and e.timestamp == ts - gap and e.event in config.history_events
                       for e in times[user])
        # Negatives are never items the user chose, at any time.
        if f["click"] == [0] and config.protocol.value != "impressions":
            assert f["item_id"][0] not in positives[user]
        for negative in f["history_negative_item_id"]:
            assert negative == "" or negative not in positives[user]
        assert len(f["history_negative_item_id"]) == len(f["history_item_id"])
        # Conversion only after a click.
        assert f["conversion"][0] <= f["click"][0]
        identities[(user, f["item_id"][0], ts, f["click"][0], tuple(f["history_item_id"]), out.split)] += 1
    # Splits are disjoint: the same candidate never lands in both.
    by_candidate = collections.defaultdict(set)
    for (user, item, ts, click, history, split) in identities:
        by_candidate[(user, item, ts, click, history)].add(split)
    assert all(len(splits) == 1 for splits in by_candidate.values())
    assert stats.get("examples_train", 0) + stats.get("examples_eval", 0) == len(examples)
