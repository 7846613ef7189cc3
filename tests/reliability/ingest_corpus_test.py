"""A corpus of malformed event logs through the Beam ingest: every row is an example's event or a counted dead letter.

The corpus is written under tmp_path, one span directory of files that go wrong in the ways
real exports do: files cut mid-row, wrong delimiters, Latin-1, UTF-16 and BOM-prefixed files,
CRLF line ends, multi-megabyte lines, negative, future and non-numeric timestamps, ids with
commas, tabs, quotes and emoji, JSON Lines that are not objects or are nested 100,000 deep,
duplicated rows, a truncated Parquet file, and one user with 100,000 events.

Each physical row is written together with the reason it must be rejected for (None for a
good row), so the test knows the answer without reading the ingest's code: the report's
counts per reason, good + bad = input, and the dead-letter files holding exactly the bad
rows (by file and line, each once).
"""

from __future__ import annotations

import collections
import glob
import json
import os

from tfx_pipeline.beam_args import in_memory
from tfx_pipeline.eventlog import logdir, spans
from tfx_pipeline.eventlog.formats import EventFileWriter, FileFormat
from tfx_pipeline.ingest import pipeline as ingest
from tfx_pipeline.ingest.config import IngestConfig

DAY = 86400
T0 = 19000 * DAY  # 2022-01-08 00:00 UTC
HEADER = b"user_id,item_id,category_id,event,timestamp\n"
HEAVY_EVENTS = 100_000

MALFORMED, ENCODING, MISSING, NUMBER, EVENT, SPAN, DUPLICATE = (
    "malformed_row", "bad_encoding", "missing_field", "unparsable_number", "unknown_event",
    "timestamp_out_of_span", "duplicate_row")
BLANK = "blank line"  # written, but not a row


def csv_row(user, item, category, event, timestamp) -> bytes:
    return f"{user},{item},{category},{event},{timestamp}\n".encode("utf-8")


class Corpus:
    """Files of one span; each row is recorded with the reason it must be rejected for (None: good)."""

    def __init__(self, directory):
        self.directory = directory
        self.rows = []  # (file name, line number, expected reason or None, event or None)

    def write(self, name, lines, first_line, header=b""):
        """`lines`: (bytes, reason, event-or-None); numbered from `first_line` (2 after a CSV header)."""
        data = header + b"".join(line for line, _, _ in lines)
        (self.directory / name).write_bytes(data)
        for offset, (_, reason, event) in enumerate(lines):
            if reason != BLANK:
                self.rows.append((name, first_line + offset, reason, event))
        return data

    @property
    def expected_reasons(self):
        return collections.Counter(reason for _, _, reason, _ in self.rows if reason)

    @property
    def good_impressions(self):
        return sum(1 for _, _, reason, event in self.rows if reason is None and event == "impression")


def physical_rows(path) -> int:
    """Rows as a line-based reader must see them, counted without the ingest: non-blank lines, less a CSV header."""
    data = open(path, "rb").read()
    if path.endswith(".parquet"):
        return 1  # an unreadable Parquet file is one dead letter
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if path.endswith(".csv") and lines:
        lines = lines[1:]
    return sum(1 for line in lines if line.strip() != b"")


def good(user, item, category="c1", event="click", timestamp=T0 + 100):
    return csv_row(user, item, category, event, timestamp), None, event


def build_corpus(directory):
    corpus = Corpus(directory)
    # Ten ordinary users, and ids with separators, quotes and unicode, quoted as RFC 4180 says.
    base = []
    for user in range(10):
        for step in range(6):
            t = T0 + 1000 * user + 10 * step
            base.append(good(f"u{user}", f"i{step}", f"c{step % 3}", "impression", t))
            if step % 2:
                base.append(good(f"u{user}", f"i{step}", f"c{step % 3}", "click", t + 1))
    odd_ids = ['"u,1"', '"用户😀"', '"u""q"', "u\u200fRTL", '"i;2"', "u|x"]
    for index, user in enumerate(odd_ids):
        base.append(good(user, f'"it\tem{index}"', "c|x", "impression", T0 + 20_000 + index))
        base.append(good(user, f"é{index}", "c|x", "click", T0 + 20_001 + index))
    base.append((csv_row("u,1", "i1", "c1", "click", T0 + 5), MALFORMED, None))  # a separator left unquoted
    base.append((b"u1\x00,i1,c1,click,%d\n" % (T0 + 6), MALFORMED, None))  # NUL inside an id
    base.insert(7, (b"\r\n", BLANK, None))  # a blank line is layout, not a row
    corpus.write("a_good.csv", base, 2, HEADER)

    corpus.write("b_truncated_row.csv", [good("u0", "i7"), (b"u0,i8,c", MALFORMED, None)], 2, HEADER)
    corpus.write("c_truncated_quote.csv", [good("u1", "i7"), (b'u1,"i3', MALFORMED, None)], 2, HEADER)
    semicolons = [(b"u2;i1;c1;click;%d\n" % (T0 + k), MALFORMED, None) for k in range(3)]
    corpus.write("d_semicolons.csv", semicolons, 2, HEADER.replace(b",", b";"))
    tabs = [(b"u2\ti1\tc1\tclick\t%d\n" % (T0 + k), MALFORMED, None) for k in range(2)]
    corpus.write("e_tabs.csv", tabs, 2, HEADER.replace(b",", b"\t"))
    corpus.write("f_mixed_delimiters.csv", [(b"u3;i1;c1;click;%d\n" % T0, MALFORMED, None), good("u3", "i9"),
                                            (b"u3,i1,c1,click,%d,extra\n" % T0, MALFORMED, None)], 2, HEADER)
    corpus.write("g_latin1.csv", [
        (b"u4,caf\xe9,c1,click,%d\n" % (T0 + 1), ENCODING, None),
        good("u4", "café"),
        (b"u4,\x93quoted\x94,c1,click,%d\n" % (T0 + 2), ENCODING, None),
    ], 2, HEADER)
    utf16 = (HEADER + csv_row("u5", "i1", "c1", "click", T0 + 1) + csv_row("u5", "i2", "c1", "click", T0 + 2))
    utf16_bytes = utf16.decode("utf-8").encode("utf-16")
    (directory / "h_utf16.csv").write_bytes(utf16_bytes)
    for line_number in range(2, 2 + physical_rows(str(directory / "h_utf16.csv"))):
        corpus.rows.append(("h_utf16.csv", line_number, MALFORMED, None))  # its header is not UTF-8
    corpus.write("i_bom_crlf.csv", [(csv_row("u6", "i1", "c1", "click", T0 + 1).replace(b"\n", b"\r\n"), None,
                                     "click"),
                                    (csv_row("u6", "i2", "c1", "impression", T0 + 2).replace(b"\n", b"\r\n"), None,
                                     "impression")], 2, b"\xef\xbb\xbf" + HEADER.replace(b"\n", b"\r\n"))
    corpus.write("j_huge_lines.csv", [(b"x" * (4 << 20) + b"\n", MALFORMED, None),
                                      good("u7", "i" + "z" * 100_000, event="impression"),
                                      # a 2 MB field is past the csv module's field limit (128 KiB)
                                      (b"u7," + b"y" * (2 << 20) + b",c1,click,%d\n" % T0, MALFORMED, None),
                                      (b"u7,i1,c1,teleport,%d\n" % T0, EVENT, None)],
                 2, HEADER)
    times = [(-5, SPAN), (10 ** 12, SPAN), ("1e30", SPAN), ("9" * 400, SPAN), (T0 + DAY, SPAN), (T0 - 1, SPAN),
             ("nan", NUMBER), ("inf", NUMBER), ("1.5", NUMBER), ("yesterday", NUMBER), ("", MISSING),
             (f" {T0 + 7} ", None), (f"{T0 + 8}.0", None)]
    corpus.write("k_timestamps.csv", [(csv_row("u8", f"i{k}", "c1", "click", value), reason,
                                       None if reason else "click") for k, (value, reason) in enumerate(times)],
                 2, HEADER)

    def jsonl(document):
        return (json.dumps(document, ensure_ascii=False) + "\n").encode("utf-8")

    record = {"user_id": "u9", "item_id": "i1", "category_id": "c1", "event": "click", "timestamp": T0 + 30}
    corpus.write("l_lines.jsonl", [
        (jsonl(record), None, "click"),
        (jsonl({**record, "user_id": 123, "timestamp": T0 + 31}), None, "click"),  # a whole-number id is text
        (jsonl({**record, "item_id": "a\u2028b", "timestamp": T0 + 32}), None, "click"),
        (b'{"user_id": "u9", "item', MALFORMED, None),  # cut mid-line; the next row's newline ends it
        (b"\n[1, 2]\n", MALFORMED, None),  # the end of the line above, then a JSON array
        (jsonl({**record, "item_id": 1.5}), MALFORMED, None),
        (jsonl({**record, "item_id": None}), MISSING, None),
        (jsonl({**record, "item_id": {"nested": 1}}), MALFORMED, None),
        (jsonl({**record, "colour": "red"}), MALFORMED, None),
        (jsonl({**record, "item_id": "a\nb"}), MALFORMED, None),
        (b"[" * 100_000 + b"\n", MALFORMED, None),
        (b'{"user_id": "\xff"}\n', ENCODING, None),
        (b'{"pad": "' + b"w" * (2 << 20) + b'"}\n', MALFORMED, None),
    ], 1)
    corpus.write("m_duplicates.csv", [(base[0][0], DUPLICATE, None), (base[1][0], DUPLICATE, None)], 2, HEADER)
    (directory / "n_empty.csv").write_bytes(b"")
    (directory / "o_header_only.csv").write_bytes(HEADER)

    heavy = []
    for k in range(HEAVY_EVENTS):
        event = "impression" if k % 10 == 0 else "click"
        heavy.append(good("heavy", f"i{k % 500}", f"c{k % 7}", event, T0 + (k * 86_000) // HEAVY_EVENTS))
    corpus.write("p_heavy_user.csv", heavy, 2, HEADER)

    parquet = directory / "q_truncated.parquet"
    with EventFileWriter(str(parquet), FileFormat.PARQUET) as writer:
        for k in range(3):
            writer.write({"user_id": "u10", "item_id": f"i{k}", "category_id": "c1", "event": "click",
                          "timestamp": T0 + k})
    data = parquet.read_bytes()
    parquet.write_bytes(data[: len(data) // 2])
    corpus.rows.append(("q_truncated.parquet", 1, MALFORMED, None))
    return corpus


def test_every_row_is_an_event_or_a_counted_dead_letter(tmp_path):
    log = tmp_path / "log"
    directory = log / spans.span_of(T0).name
    directory.mkdir(parents=True)
    corpus = build_corpus(directory)
    logdir.Manifest("corpus", FileFormat.CSV, events_per_type={"impression": 1}).write(str(log))
    outputs = ingest.IngestOutputs(str(tmp_path / "examples"), str(tmp_path / "dead"))
    config = IngestConfig(protocol="impressions", split="last_event", max_history=5, max_bad_fraction=1.0)

    report = ingest.run_ingest(str(log), outputs, config, in_memory())

    # The corpus, counted without the ingest, agrees with the rows it records.
    for name in sorted(os.listdir(directory)):
        recorded = sum(1 for row in corpus.rows if row[0] == name)
        assert physical_rows(str(directory / name)) == recorded, name
    rows = report["rows"]
    expected_bad = sum(corpus.expected_reasons.values())
    assert rows["input"] == len(corpus.rows) > HEAVY_EVENTS
    assert rows["good"] + rows["bad"] == rows["input"]
    assert rows["bad"] == expected_bad
    assert {k: v for k, v in rows["rejected"].items() if v} == dict(corpus.expected_reasons)

    letters = [json.loads(line) for path in glob.glob(os.path.join(outputs.dead_letters_dir, "dead_letters*"))
               for line in open(path, encoding="utf-8")]
    got = collections.Counter((os.path.basename(l["source"]), l["line"], l["reason"]) for l in letters)
    wanted = collections.Counter((name, line, reason) for name, line, reason, _ in corpus.rows if reason)
    assert got == wanted
    assert all(l["detail"] for l in letters)

    # Every good impression is a candidate, so it is one example.
    assert sum(report["examples"].values()) == corpus.good_impressions
