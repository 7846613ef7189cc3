"""preprocessing_fn under tft_beam on hand-made examples with known encodings."""

import pytest

from transforms import features
from transforms.preprocessing import TransformSettings

ITEM = features.ITEM_ENCODING
CATEGORY = features.CATEGORY_ENCODING
L = features.MAX_HISTORY
xf = features.transformed_name


def test_vocabularies_padding_masks_and_scaling(analyze, make_raw, tokens_of):
    examples = [
        make_raw("u1", "a", "x", 1704069000, history=["b", "a", "a"], history_categories=["y", "x", "x"],
                 gaps=[5000, 60, 1], click=1, device=["ios"], item_price=[2.0]),
        make_raw("u2", "b", "y", 1704069000 + 86400, history=[], item_price=[4.0]),
    ]
    rows, output_dir = analyze(examples)
    first, second = rows
    # item vocabulary over candidate and history items: a x3, b x2 -> a first, then b
    assert tokens_of(output_dir, "item_id") == ["a", "b"]
    assert tokens_of(output_dir, "category_id") == ["x", "y"]
    assert first[xf("item_id")] == 1 and second[xf("item_id")] == 2
    assert list(first[xf("history_item_id")][:4]) == [2, 1, 1, 0]
    assert len(first[xf("history_item_id")]) == L
    assert list(first[xf("history_category_id")][:4]) == [2, 1, 1, 0]
    # 5000 s -> 1 + floor(log2 5000) = 13; 60 s -> 6; 1 s -> 1
    assert list(first[xf("history_time_gap")][:4]) == [13, 6, 1, 0]
    assert list(first["history_mask"][:4]) == [1.0, 1.0, 1.0, 0.0]
    assert first["history_length"] == 3 and second["history_length"] == 0
    assert not any(second[xf("history_item_id")]) and not any(second["history_mask"])
    # side fields: device present once, missing -> 0; price z-scored over (2, 4)
    assert first[xf("device")] == 1 and second[xf("device")] == 0
    assert first[xf("item_price")] == pytest.approx(-1.0) and second[xf("item_price")] == pytest.approx(1.0)
    assert first[xf("user_age")] == 0.0, "a field absent from the data scales to 0, not NaN"
    # time: Monday 00:30 UTC, then Tuesday
    assert (first["hour_of_day"], first["day_of_week"], second["day_of_week"]) == (1, 1, 2)
    # labels pass through under their own names
    assert (first["click"], second["click"]) == (1.0, 0.0)
    # hashed users: 1 + hash % buckets, never the padding row
    assert 1 <= first[xf("user_id")] <= features.USER_ENCODING.num_buckets


def test_long_histories_keep_the_newest(analyze, make_raw):
    history = [f"i{k}" for k in range(L + 5)]
    rows, _ = analyze([make_raw("u", "i0", "c", 1704069000, history=history)])
    kept = list(rows[0][xf("history_item_id")])
    assert rows[0]["history_length"] == L
    assert kept[0] != kept[-1] and 0 not in kept


def test_ids_keep_their_rows_in_the_next_span(analyze, make_raw, tokens_of):
    span1 = [make_raw("u1", "a", "x", 1704069000, history=["b"]), make_raw("u2", "c", "y", 1704069000)]
    rows1, out1 = analyze(span1, "span1")
    vocab1 = tokens_of(out1, "item_id")
    # The next span sees new items (more frequent than the old ones) and lacks b.
    span2 = [make_raw("u3", "d", "z", 1704155400, history=["d", "d", "a"]),
             make_raw("u1", "e", "x", 1704155400, history=["d"])]
    previous = {"item_id": str(vocabulary_path(out1, "item_id")),
                "category_id": str(vocabulary_path(out1, "category_id"))}
    rows2, out2 = analyze(span2, "span2", TransformSettings(previous).to_custom_config())
    vocab2 = tokens_of(out2, "item_id")
    assert vocab2[:len(vocab1)] == vocab1, "old ids keep their positions"
    assert vocab2[len(vocab1):] == ["d", "e"], "new ids append, most frequent first"
    row_of = {t: i + 1 for i, t in enumerate(vocab2)}
    assert rows2[0][xf("item_id")] == row_of["d"]
    assert list(rows2[0][xf("history_item_id")][:3]) == [row_of["d"], row_of["d"], row_of["a"]]
    assert row_of["a"] == 1 + vocab1.index("a")
    assert tokens_of(out2, "category_id")[:2] == tokens_of(out1, "category_id")[:2]
    del rows1


def vocabulary_path(output_dir, table):
    import tensorflow_transform as tft

    return tft.TFTransformOutput(output_dir).vocabulary_file_by_name(table + ".vocab")


def test_unknown_ids_at_serving_go_to_oov_rows(analyze, make_raw, tokens_of):
    import tensorflow as tf
    import tensorflow_transform as tft

    _, output_dir = analyze([make_raw("u1", "a", "x", 1704069000, history=["a"])])
    output = tft.TFTransformOutput(output_dir)
    raw = {
        features.USER_ID.name: tf.constant([["new-user"]]),
        features.ITEM_ID.name: tf.constant([["never-seen"]]),
        features.CATEGORY_ID.name: tf.constant([["x"]]),
        features.TIMESTAMP.name: tf.constant([[1704069000]], tf.int64),
        features.HISTORY_ITEMS.name: tf.sparse.from_dense(tf.constant([["a", "also-new"]])),
    }
    for name, spec in output.raw_feature_spec().items():
        if name not in raw and name not in features.LABEL_KEYS:
            raw[name] = tf.SparseTensor(tf.zeros([0, 2], tf.int64), tf.constant([], spec.dtype), [1, 1])
    out = output.transform_raw_features(raw)
    oov_first = 1 + ITEM.capacity
    assert oov_first <= int(out[xf("item_id")][0]) < ITEM.num_rows
    history = out[xf("history_item_id")][0].numpy().tolist()
    assert history[0] == 1 and oov_first <= history[1] < ITEM.num_rows and history[2] == 0
    assert int(out[xf("category_id")][0]) == 1 + tokens_of(output_dir, "category_id").index("x")


def test_custom_config_is_checked():
    with pytest.raises(ValueError, match=r"Unknown Transform custom_config keys \[.colour.\]"):
        TransformSettings.from_custom_config({"colour": 1})
    with pytest.raises(ValueError, match=r"tables \['user_id'\] that have no vocabulary"):
        TransformSettings.from_custom_config({"previous_vocabularies": {"user_id": "x"}})
