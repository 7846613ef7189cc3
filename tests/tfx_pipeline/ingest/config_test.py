import pytest

from tfx_pipeline.ingest.config import IngestConfig, Protocol, Split


def test_defaults_resolve_by_log_and_protocol():
    assert IngestConfig().resolved(True).protocol == Protocol.IMPRESSIONS
    assert IngestConfig().resolved(False).protocol == Protocol.SAMPLED
    assert IngestConfig().resolved(False).split == Split.LAST_DAY
    assert IngestConfig(protocol="din").resolved(False).split == Split.LAST_EVENT
    assert IngestConfig(protocol="dien").resolved(False).split == Split.USER_HASH
    assert IngestConfig(protocol="din", split="user_hash").resolved(False).split == Split.USER_HASH


def test_impressions_protocol_needs_impressions():
    with pytest.raises(ValueError, match="needs impression events"):
        IngestConfig(protocol="impressions").resolved(False)


def test_json_round_trip():
    config = IngestConfig(protocol="din", max_history=50, history_events=("click", "buy"), seed=3)
    assert IngestConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize("settings, message", [
    ({"max_history": 0}, r"`max_history` must be an integer >= 1. Received: max_history=0"),
    ({"eval_percent": 100}, r"`eval_percent` must be an integer in 1..99"),
    ({"history_events": ["impression"]}, r"`history_events` must be a non-empty subset"),
    ({"max_bad_fraction": 2}, r"`max_bad_fraction` must be a fraction in \[0, 1\]"),
    ({"protocol": "magic"}, r"`protocol` must be one of \['auto', 'impressions'"),
    ({"max_histroy": 5}, r"Unknown ingest settings \['max_histroy'\]"),
])
def test_bad_settings_say_what_and_how(settings, message):
    with pytest.raises(ValueError, match=message):
        IngestConfig.from_dict(settings)
