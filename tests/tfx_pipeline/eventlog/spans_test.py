import datetime as dt

import pytest

from tfx_pipeline.eventlog import spans

CHINA = 8 * 3600


def test_span_number_is_days_since_epoch():
    span = spans.Span(dt.date(2017, 11, 25))
    assert span.number == 17495
    assert span.name == "span-20171125"


def test_utc_day_boundaries():
    span = spans.Span(dt.date(1970, 1, 2))
    assert (span.start, span.end) == (86400, 172800)
    assert span.contains(86400) and not span.contains(172800)


def test_offset_day_boundaries_match_taobao_window():
    # Taobao's window starts 2017-11-25 00:00 China time = 1511539200.
    span = spans.Span(dt.date(2017, 11, 25), CHINA)
    assert span.start == 1511539200
    assert spans.span_of(1511539200, CHINA) == span
    assert spans.span_of(1511539199, CHINA) == spans.Span(dt.date(2017, 11, 24), CHINA)
    assert span.next().name == "span-20171126"


def test_parse_span_name_round_trip_and_errors(tmp_path):
    assert spans.parse_span_name("span-20240229").date == dt.date(2024, 2, 29)
    with pytest.raises(ValueError, match="Expected 'span-YYYYMMDD'"):
        spans.parse_span_name("span-2024-02-29")
    with pytest.raises(ValueError, match="real date"):
        spans.parse_span_name("span-20230229")
    for name in ("span-20240102", "span-20240101", "_rejected", "notes.txt"):
        (tmp_path / name).mkdir()
    assert [s.name for s in spans.list_spans(str(tmp_path))] == ["span-20240101", "span-20240102"]
