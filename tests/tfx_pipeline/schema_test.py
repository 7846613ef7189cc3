from tfx_pipeline import schema
from transforms import features


def test_checked_in_schema_is_generated_from_the_registry():
    with open(schema.SCHEMA_PATH, encoding="utf-8") as stream:
        assert stream.read() == schema.schema_text(), (
            "tfx_pipeline/schema/schema.pbtxt is stale: run `ctrflow schema` after changing features.")


def test_curation_rules():
    by_name = {f.name: f for f in schema.build_schema().feature}
    assert set(by_name) == set(features.EXAMPLE_FEATURES_BY_NAME)
    click = by_name[features.CLICK_LABEL.name]
    assert (click.int_domain.min, click.int_domain.max) == (0, 1)
    assert list(click.not_in_environment) == [schema.SERVING]
    user = by_name[features.USER_ID.name]
    assert user.presence.min_fraction == 1.0 and [d.size for d in user.shape.dim] == [1]
    assert not user.HasField("domain") and not user.HasField("string_domain")
    assert by_name[features.HISTORY_TIME_GAPS.name].int_domain.min == 1
    assert by_name[features.HISTORY_NEGATIVE_ITEMS.name].presence.min_fraction == 0.0
    assert by_name["device"].presence.min_fraction == 0.0 and by_name["device"].value_count.max == 1


def test_load_round_trip(tmp_path):
    path = schema.write_schema(str(tmp_path / "s.pbtxt"))
    assert schema.load_schema(path) == schema.build_schema()
