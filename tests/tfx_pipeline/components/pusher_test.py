"""AtomicPushExecutor: gated, versioned, all-or-nothing pushes into TF Serving's layout."""

from __future__ import annotations

import errno
import os
import shutil
import time

import pytest

from tfx_pipeline.components import pusher

MODEL_NAME = "ctr"


def fake_saved_model(path, tag):
    """The files of a SavedModel, each holding `tag` so a push can be traced to its source."""
    for relative in ("saved_model.pb", "fingerprint.pb", "variables/variables.index",
                     "variables/variables.data-00000-of-00001", "assets/item_id.vocab"):
        target = os.path.join(path, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as stream:
            stream.write(f"{tag}:{relative}")
    return path


def read(path):
    with open(path) as stream:
        return stream.read()


@pytest.fixture
def push(tmp_path):
    """push(model_blessed=1, infra_blessed=1, warmed_up=False, same_model=False) -> (PushedModel, model dir).

    Each run trains a new model unless `same_model` (a rerun over a cached Trainer)."""
    from tfx.types import standard_artifacts, standard_component_specs as keys
    from tfx.types import channel_utils

    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    fake_saved_model(os.path.join(model.uri, "Format-Serving"), "trained")
    push_base = str(tmp_path / "serving")
    component = pusher.make_pusher(channel_utils.as_channel([model]),
                                   channel_utils.as_channel([standard_artifacts.ModelBlessing()]),
                                   channel_utils.as_channel([standard_artifacts.InfraBlessing()]),
                                   push_base, MODEL_NAME)
    assert isinstance(component, pusher.AtomicPusher)
    exec_properties = {keys.PUSH_DESTINATION_KEY: component.exec_properties[keys.PUSH_DESTINATION_KEY]}
    runs = []

    def run(model_blessed=1, infra_blessed=1, warmed_up=False, inputs=(keys.MODEL_BLESSING_KEY,
                                                                     keys.INFRA_BLESSING_KEY), same_model=False):
        n = len(runs)
        if n and not same_model:
            model.uri = str(tmp_path / f"model{n}")
            fake_saved_model(os.path.join(model.uri, "Format-Serving"), f"trained{n}")
        model_blessing = standard_artifacts.ModelBlessing()
        model_blessing.uri = str(tmp_path / f"model_blessing{n}")
        model_blessing.set_int_custom_property("blessed", model_blessed)
        infra_blessing = standard_artifacts.InfraBlessing()
        infra_blessing.uri = str(tmp_path / f"infra_blessing{n}")
        infra_blessing.set_int_custom_property("blessed", infra_blessed)
        if warmed_up:
            stamped = fake_saved_model(os.path.join(infra_blessing.uri, "stamped_model"), "warmed")
            os.makedirs(os.path.join(stamped, "assets.extra"))
            with open(os.path.join(stamped, "assets.extra", "tf_serving_warmup_requests"), "wb") as stream:
                stream.write(b"records")
            infra_blessing.set_int_custom_property("has_model", 1)
        pushed = standard_artifacts.PushedModel()
        pushed.uri = str(tmp_path / f"pushed{n}")
        os.makedirs(pushed.uri)
        available = {keys.MODEL_KEY: [model], keys.MODEL_BLESSING_KEY: [model_blessing],
                     keys.INFRA_BLESSING_KEY: [infra_blessing]}
        input_dict = {k: v for k, v in available.items() if k == keys.MODEL_KEY or k in inputs}
        runs.append(pushed)
        pusher.AtomicPushExecutor().Do(input_dict, {keys.PUSHED_MODEL_KEY: [pushed]}, exec_properties)
        return pushed

    return run, os.path.join(push_base, MODEL_NAME)


def test_a_blessed_model_lands_in_a_new_version_dir(push):
    run, model_dir = push
    before = int(time.time())
    pushed = run()
    versions = os.listdir(model_dir)
    assert len(versions) == 1 and versions[0].isdigit()
    version = int(versions[0])
    assert before <= version <= int(time.time())
    final = os.path.join(model_dir, versions[0])
    assert read(os.path.join(final, "saved_model.pb")) == "trained:saved_model.pb"
    assert read(os.path.join(final, "variables", "variables.index")) == "trained:variables/variables.index"
    assert pushed.get_int_custom_property("pushed") == 1
    assert pushed.get_string_custom_property("pushed_destination") == final
    assert pushed.get_string_custom_property("pushed_version") == versions[0]
    assert read(os.path.join(pushed.uri, "saved_model.pb")) == "trained:saved_model.pb"  # TFX's archive copy


@pytest.mark.parametrize("model_blessed, infra_blessed", [(0, 1), (1, 0), (0, 0)])
def test_nothing_is_pushed_unless_both_blessings_say_blessed(push, model_blessed, infra_blessed):
    run, model_dir = push
    pushed = run(model_blessed=model_blessed, infra_blessed=infra_blessed)
    assert not os.path.exists(model_dir)
    assert pushed.get_int_custom_property("pushed") == 0
    assert os.listdir(pushed.uri) == []


def test_a_pusher_without_both_blessings_is_refused(push):
    from tfx.types import standard_component_specs as keys

    run, model_dir = push
    with pytest.raises(ValueError, match=r"it has no \['infra_blessing'\] input"):
        run(inputs=(keys.MODEL_BLESSING_KEY,))
    assert not os.path.exists(model_dir)


def test_each_push_gets_a_larger_version_and_temp_dirs_are_ignored(push):
    run, model_dir = push
    first = int(run().get_string_custom_property("pushed_version"))
    second = int(run().get_string_custom_property("pushed_version"))  # within the same second
    assert second > first
    # A version from a clock ahead of ours, and a leftover temp dir of a killed push.
    os.makedirs(os.path.join(model_dir, str(second + 1000)))
    os.makedirs(os.path.join(model_dir, f".tmp-{second + 5000}-dead"))
    third = int(run().get_string_custom_property("pushed_version"))
    assert third == second + 1001
    assert sorted(os.listdir(model_dir)) == sorted(
        [str(first), str(second), str(second + 1000), str(third), f".tmp-{second + 5000}-dead"])


def test_a_model_already_served_is_not_pushed_again(push):
    run, model_dir = push
    first = run()
    version = first.get_string_custom_property("pushed_version")
    assert pusher.source_of(os.path.join(model_dir, version)) == os.path.join(os.path.dirname(
        first.uri), "model", "Format-Serving")
    again = run(same_model=True)
    assert again.get_int_custom_property("pushed") == 0
    assert again.get_int_custom_property(pusher.ALREADY_SERVED_PROPERTY) == int(version)
    assert sorted(os.listdir(model_dir)) == [version]
    assert run().get_int_custom_property("pushed") == 1  # a newly trained model is pushed


def test_the_warmed_up_model_of_the_infra_blessing_is_pushed(push):
    run, model_dir = push
    pushed = run(warmed_up=True)
    final = pushed.get_string_custom_property("pushed_destination")
    assert read(os.path.join(final, "saved_model.pb")) == "warmed:saved_model.pb"
    assert read(os.path.join(final, "assets.extra", "tf_serving_warmup_requests")) == "records"


def test_a_read_only_base_fails_naming_the_path_and_keeps_earlier_versions(push, monkeypatch, tmp_path):
    run, model_dir = push
    earlier = run().get_string_custom_property("pushed_destination")
    os.chmod(model_dir, 0o555)
    try:
        if os.geteuid() == 0:
            # root ignores permission bits: refuse the directory creation as the kernel would
            real_mkdir = os.mkdir

            def refuse(path, *args, **kwargs):
                if os.path.dirname(str(path)) == model_dir:
                    raise PermissionError(errno.EACCES, "Permission denied", str(path))
                return real_mkdir(path, *args, **kwargs)

            monkeypatch.setattr(os, "mkdir", refuse)
        with pytest.raises(pusher.PushError) as raised:
            run()
    finally:
        monkeypatch.undo()
        os.chmod(model_dir, 0o755)
    message = str(raised.value)
    assert f"Could not push the model {tmp_path / 'model1' / 'Format-Serving'} to {model_dir}{os.sep}" in message
    assert f"Permission denied [EACCES] on {model_dir}{os.sep}.tmp-" in message
    assert f"the existing versions in {model_dir} are untouched" in message
    assert os.listdir(model_dir) == [os.path.basename(earlier)]
    assert read(os.path.join(earlier, "saved_model.pb")) == "trained:saved_model.pb"


def test_a_full_disk_removes_the_partial_copy(push, monkeypatch):
    run, model_dir = push
    earlier = run().get_string_custom_property("pushed_destination")
    real_copy = shutil.copy2
    copied = []

    def fill_up(source, target, *args, **kwargs):
        if copied:
            raise OSError(errno.ENOSPC, "No space left on device", target)
        copied.append(target)
        return real_copy(source, target, *args, **kwargs)

    monkeypatch.setattr(shutil, "copy2", fill_up)
    with pytest.raises(pusher.PushError, match=r"No space left on device \[ENOSPC\] on .*/\.tmp-\d+-[0-9a-f]+/"):
        run()
    monkeypatch.undo()
    assert len(copied) == 1 and not os.path.exists(copied[0])
    assert os.listdir(model_dir) == [os.path.basename(earlier)]
    assert sorted(os.listdir(earlier)) == ["assets", "assets.extra", "fingerprint.pb", "saved_model.pb", "variables"]


def test_a_directory_without_saved_model_is_not_pushed(tmp_path):
    with pytest.raises(pusher.PushError, match=r"There is no saved_model.pb in .*empty: it is not a SavedModel"):
        pusher.atomic_push(str(tmp_path / "empty"), str(tmp_path / "serving" / MODEL_NAME))
    assert not os.path.exists(tmp_path / "serving" / MODEL_NAME)


def test_next_version_is_now_or_newer_than_any_existing(tmp_path):
    assert pusher.next_version(str(tmp_path / "none"), now=1700000000.7) == 1700000000
    for name in ("5", "1800000000", ".tmp-1900000000-ab", "notes"):
        os.makedirs(tmp_path / name)
    assert pusher.existing_versions(str(tmp_path)) == [5, 1800000000]
    assert pusher.next_version(str(tmp_path), now=1700000000) == 1800000001


def test_object_stores_get_the_stock_copy_with_the_same_versions(tmp_path):
    from tfx.dsl.io import fileio

    source = fake_saved_model(str(tmp_path / "model"), "trained")
    base = f"ram://pusher-test-{os.getpid()}-{time.time_ns()}/{MODEL_NAME}"
    first, version = pusher.plain_push(source, base, now=1700000000)
    again, later = pusher.plain_push(source, base, now=1700000000)
    assert (first, version, later) == (f"{base}/1700000000", 1700000000, 1700000001)
    with fileio.open(f"{again}/variables/variables.index") as stream:
        assert stream.read() == "trained:variables/variables.index"


def test_make_pusher_validates_names():
    with pytest.raises(ValueError, match=r"`model_name` must be .* Received: model_name='\.hidden'"):
        pusher.make_pusher(None, None, None, "/serving", ".hidden")
