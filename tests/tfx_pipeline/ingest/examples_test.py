"""Hand-made logs with known answers for the per-user example builder."""

import pytest

from tfx_pipeline.eventlog.formats import DeadLetter
from tfx_pipeline.eventlog.validation import Window
from tfx_pipeline.ingest import examples as ex
from tfx_pipeline.ingest.config import IngestConfig

NO_SIDE = (None,) * 8
ALL = Window(0, 10**10)


def ev(t, kind, item, category=None, side=NO_SIDE, line=None):
    return ex.CompactEvent(t, ex.EVENT_RANK[kind], item, category or f"c_{item}", side, "f.csv", line or t)


def table(*items, sampling="popularity"):
    return ex.item_table([(i, (1, f"c_{i}", NO_SIDE)) for i in items], sampling)


def build(config, events, items, target=ALL, eval_window=None, user="u"):
    builder = ex.UserExampleBuilder(config, items, target, eval_window)
    outs = list(builder.build(user, events))
    return [o for o in outs if not isinstance(o, DeadLetter)], [o for o in outs if isinstance(o, DeadLetter)], builder


def brief(out):
    f = out.features
    return (out.split, f["item_id"][0], f["timestamp"][0], f["history_item_id"], f["click"][0], f["conversion"][0])


def test_impressions_labels_histories_and_split():
    config = IngestConfig(protocol="impressions", split="last_day").resolved(True)
    events = [
        ev(10, "impression", "a"), ev(12, "click", "a"),
        ev(20, "impression", "b"), ev(20, "impression", "a"), ev(21, "click", "a"), ev(30, "buy", "a"),
        ev(100, "impression", "c"),
        ev(5000, "impression", "d"), ev(9000, "click", "d"),  # click after the 1 h click window
    ]
    outs, dead, _ = build(config, events, table("a", "z"), eval_window=Window(100, 10**10))
    assert dead == []
    assert [brief(o) for o in outs] == [
        ("train", "a", 10, [], 1, 0),  # its click at 12 bought nothing; the buy at 30 follows the later click
        ("train", "a", 20, ["a"], 1, 1),  # click at 21 -> buy at 30
        ("train", "b", 20, ["a"], 0, 0),
        ("eval", "c", 100, ["a", "a"], 0, 0),
        ("eval", "d", 5000, ["a", "a"], 0, 0),
    ]
    assert outs[3].features["history_time_gap"] == [88, 79]
    # one sampled negative per history step; only 'z' was never chosen by this user
    assert outs[3].features["history_negative_item_id"] == ["z", "z"]
    assert outs[3].features["history_negative_category_id"] == ["c_z", "c_z"]


def test_history_holds_only_strictly_earlier_events():
    config = IngestConfig(protocol="sampled", split="last_event").resolved(False)
    events = [ev(5, "click", "a"), ev(5, "click", "b"), ev(6, "click", "c")]
    outs, _, _ = build(config, events, table("a", "b", "c", "z"))
    positives = [o for o in outs if o.features["click"] == [1]]
    assert [(o.features["item_id"][0], o.features["history_item_id"]) for o in positives] == [
        ("a", []), ("b", []), ("c", ["a", "b"])]


def test_max_history_keeps_the_newest():
    config = IngestConfig(protocol="sampled", split="last_event", max_history=2).resolved(False)
    events = [ev(t, "click", f"i{t}") for t in range(1, 6)]
    outs, _, _ = build(config, events, table(*[f"i{t}" for t in range(1, 6)], "z"))
    last = [o for o in outs if o.features["timestamp"] == [5] and o.features["click"] == [1]][0]
    assert last.features["history_item_id"] == ["i3", "i4"]
    assert last.features["history_time_gap"] == [2, 1]


def test_sampled_negatives_share_time_history_and_context():
    device = ex._SIDE_NAMES.index("device")
    price = ex._SIDE_NAMES.index("item_price")
    side = tuple("ios" if i == device else 9.5 if i == price else None for i in range(8))
    items = ex.item_table([("a", (3, "ca", NO_SIDE)),
                           ("z", (1, "cz", tuple(1.25 if i == price else None for i in range(8))))], "popularity")
    config = IngestConfig(protocol="sampled", split="last_event", negatives_per_positive=2).resolved(False)
    outs, _, _ = build(config, [ev(7, "click", "a", "ca", side)], items)
    assert [(o.features["item_id"][0], o.features["category_id"][0], o.features["click"][0]) for o in outs] == [
        ("a", "ca", 1), ("z", "cz", 0), ("z", "cz", 0)]
    negative = outs[1].features
    assert negative["device"] == ["ios"], "context comes from the positive's request"
    assert negative["item_price"] == [1.25], "item fields come from the sampled item"
    assert negative["timestamp"] == [7] and negative["conversion"] == [0]


def test_conversion_is_defined_only_after_a_click():
    config = IngestConfig(protocol="sampled", split="last_event").resolved(False)
    events = [ev(1, "buy", "a"), ev(2, "click", "a"), ev(3, "click", "b"), ev(4, "buy", "b")]
    outs, _, _ = build(config, events, table("a", "b", "z"))
    positives = {o.features["item_id"][0]: o.features["conversion"][0] for o in outs if o.features["click"][0]}
    assert positives == {"a": 0, "b": 1}, "a's buy came before its click"


def test_din_protocol_targets_and_test_pair():
    config = IngestConfig(protocol="din").resolved(False)
    events = [ev(t, "click", item) for t, item in [(1, "a"), (2, "b"), (3, "c"), (4, "d")]]
    outs, _, _ = build(config, events, table("a", "b", "c", "d", "z"))
    assert [brief(o) for o in outs] == [
        ("train", "b", 2, ["a"], 1, 0), ("train", "z", 2, ["a"], 0, 0),
        ("train", "c", 3, ["a", "b"], 1, 0), ("train", "z", 3, ["a", "b"], 0, 0),
        ("eval", "d", 4, ["a", "b", "c"], 1, 0), ("eval", "z", 4, ["a", "b", "c"], 0, 0),
    ]


def test_dien_protocol_one_pair_per_user_split_by_user():
    config = IngestConfig(protocol="dien", eval_percent=50).resolved(False)
    events = [ev(t, "click", item) for t, item in [(1, "a"), (2, "b"), (3, "c")]]
    splits = set()
    for user in [f"user{i}" for i in range(40)]:
        outs, _, _ = build(config, events, table("a", "b", "c", "z"), user=user)
        assert [brief(o)[1:] for o in outs] == [("c", 3, ["a", "b"], 1, 0), ("z", 3, ["a", "b"], 0, 0)]
        assert len({o.split for o in outs}) == 1
        splits.add(outs[0].split)
    assert splits == {"train", "eval"}


def test_duplicates_become_dead_letters_and_candidates_outside_target_only_feed_history():
    config = IngestConfig(protocol="sampled", split="last_event").resolved(False)
    events = [ev(1, "click", "a", line=1), ev(1, "click", "a", line=2), ev(50, "click", "b")]
    outs, dead, builder = build(config, events, table("a", "b", "z"), target=Window(10, 100))
    assert [(d.reason, d.line) for d in dead] == [("duplicate_row", 2)]
    assert b'"item_id": "a"' in dead[0].raw
    assert [brief(o) for o in outs] == [("eval", "b", 50, ["a"], 1, 0), ("eval", "z", 50, ["a"], 0, 0)]
    assert builder.stats["duplicate_rows"] == 1


def test_negative_sampling_is_seeded_and_excludes_the_users_items():
    items = table(*[f"i{k}" for k in range(50)], sampling="uniform")
    events = [ev(t, "click", f"i{t}") for t in range(1, 30)]
    config = IngestConfig(protocol="sampled", split="last_event", seed=3).resolved(False)
    first, _, _ = build(config, events, items)
    again, _, _ = build(config, events, items)
    other, _, _ = build(IngestConfig(protocol="sampled", split="last_event", seed=4).resolved(False), events, items)
    negatives = [o.features["item_id"][0] for o in first if o.features["click"] == [0]]
    assert negatives == [o.features["item_id"][0] for o in again if o.features["click"] == [0]]
    assert negatives != [o.features["item_id"][0] for o in other if o.features["click"] == [0]]
    assert not set(negatives) & {f"i{t}" for t in range(1, 30)}


def test_user_who_chose_every_item_gets_no_negative_and_it_is_counted():
    config = IngestConfig(protocol="sampled", split="last_event").resolved(False)
    outs, _, builder = build(config, [ev(1, "click", "a"), ev(2, "click", "b")], table("a", "b"))
    assert all(o.features["click"] == [1] for o in outs)
    assert builder.stats["candidates_without_negative"] == 2
    assert outs[1].features["history_negative_item_id"] == [""]


def test_unresolved_config_is_refused():
    with pytest.raises(ValueError, match="resolved config"):
        ex.UserExampleBuilder(IngestConfig(), table("a"), ALL)
    with pytest.raises(ValueError, match="eval_window"):
        ex.UserExampleBuilder(IngestConfig(protocol="sampled").resolved(False), table("a"), ALL)


def test_combine_item_info_is_order_free():
    values = [(1, "c2", NO_SIDE), (2, "c1", NO_SIDE), (1, "c1", NO_SIDE)]
    assert ex.combine_item_info(values) == ex.combine_item_info(list(reversed(values))) == (4, "c1", NO_SIDE)
    partial = [ex.combine_item_info(values[:1]), ex.combine_item_info(values[1:])]
    assert ex.combine_item_info(partial) == (4, "c1", NO_SIDE)
