import time

from tfx_pipeline.components import event_log_example_gen as gen
from tfx_pipeline.eventlog import logdir
from tfx_pipeline.eventlog.formats import FileFormat

DAY = 86400


def _log(tmp_path):
    writer = logdir.LogWriter(str(tmp_path), FileFormat.CSV)
    for day in range(3):
        writer.write({"user_id": "u", "item_id": "i", "category_id": "c", "event": "click",
                      "timestamp": 19000 * DAY + day * DAY})
    writer.close()
    writer.manifest("test").write(str(tmp_path))


def test_plan_from_exec_properties(tmp_path):
    _log(tmp_path)
    plan = gen.plan_for({gen.INPUT_BASE_KEY: str(tmp_path), gen.NUM_SPANS_KEY: 2, gen.LOOKBACK_SPANS_KEY: 1})
    assert [s.number for s in plan.target] == [19001, 19002]
    assert [s.number for s in plan.lookback] == [19000]


def test_fingerprint_changes_when_a_planned_file_changes(tmp_path):
    _log(tmp_path)
    plan = gen.plan_for({gen.INPUT_BASE_KEY: str(tmp_path), gen.NUM_SPANS_KEY: 1, gen.LOOKBACK_SPANS_KEY: 0})
    before = gen.fingerprint(str(tmp_path), plan)
    assert gen.fingerprint(str(tmp_path), plan) == before
    # a change to a span outside the plan does not matter
    old = tmp_path / "span-20220108" / "events-00000.csv"
    old.write_text(old.read_text() + "u,i2,c,click,%d\n" % (19000 * DAY + 5))
    assert gen.fingerprint(str(tmp_path), plan) == before
    newest = tmp_path / "span-20220110" / "events-00000.csv"
    time.sleep(0.01)
    newest.write_text(newest.read_text() + "u,i2,c,click,%d\n" % (19002 * DAY + 5))
    assert gen.fingerprint(str(tmp_path), plan) != before


def test_component_carries_settings():
    from tfx_pipeline.ingest.config import IngestConfig

    component = gen.EventLogExampleGen("/logs", IngestConfig(protocol="din"), num_spans=3)
    props = component.exec_properties
    assert IngestConfig.from_json(props[gen.INGEST_CONFIG_KEY]).protocol.value == "din"
    assert props[gen.NUM_SPANS_KEY] == 3 and props[gen.INPUT_BASE_KEY] == "/logs"
    assert set(component.outputs) == {gen.EXAMPLES_KEY, gen.DEAD_LETTERS_KEY}
