from transforms import vocabulary


def test_new_tokens_append_by_frequency_and_old_tokens_keep_positions():
    first = vocabulary.merge_vocabulary([], {"b": 2, "a": 5, "c": 2, "rare": 1}, capacity=10, frequency_threshold=2)
    assert first == ["a", "b", "c"]
    second = vocabulary.merge_vocabulary(first, {"d": 9, "a": 1, "c": 3}, capacity=10, frequency_threshold=2)
    assert second == ["a", "b", "c", "d"], "b is absent now but keeps its row while there is room"


def test_full_vocabulary_evicts_only_tokens_absent_from_new_data():
    old = ["a", "b", "c"]
    merged = vocabulary.merge_vocabulary(old, {"a": 1, "x": 5, "y": 4, "z": 3}, capacity=3, frequency_threshold=1)
    # b and c are stale: x and y reuse their rows; z finds none and stays out of vocabulary
    assert merged == ["a", "x", "y"]


def test_fillers_round_trip_and_never_match_tokens(tmp_path):
    tokens = ["a", "", "c"]
    path = tmp_path / "t.vocab"
    path.write_text(vocabulary.vocabulary_lines(tokens))
    lines = path.read_text().split("\n")[:-1]
    assert len(set(lines)) == 3 and all(lines), "no empty or repeated lines for the lookup table"
    assert vocabulary.read_vocabulary(str(path)) == tokens
    assert vocabulary.merge_vocabulary(tokens, {"n": 1}, capacity=3, frequency_threshold=1) == ["a", "n", "c"]
    assert vocabulary.vocabulary_lines([]) == vocabulary.FILLER_PREFIX + "0\n"
