"""AtomicPusher: TFX's Pusher, but a model version appears complete, in one rename, or not at all.

The stock Pusher (tfx/components/pusher/executor.py) copies the model file by file into
``<base_directory>/<unix seconds>/``, ``saved_model.pb`` last. TF Serving polls that
directory (``--file_system_poll_wait_seconds``) and can see the version while its
variables are still being written; a failed copy (disk full, permissions) leaves a
broken version that TF Serving keeps trying to load; and a second push within the same
second is skipped.

AtomicPushExecutor keeps the Pusher's contract (inputs, ``PushDestination``, the
``PushedModel`` artifact) and changes how the files land, for a local or mounted (POSIX)
``base_directory``:

1. push only when both ``model_blessing`` (Evaluator) and ``infra_blessing``
   (ServingValidator or InfraValidator) say ``blessed`` = 1, checked by Pusher's own
   ``CheckBlessing``; a Pusher without either input is refused, since the point of this
   executor is a gated push;
2. the source is the warmed-up model inside the infra blessing when it has ``has_model``
   = 1 (``<infra_blessing>/stamped_model``, with ``assets.extra/tf_serving_warmup_requests``),
   else the Trainer's model (the stock Pusher takes the warmed-up model only when it gets
   no ``model`` input);
3. the version is the integer unix time, like TFX, raised to one more than the largest
   existing version directory when needed, so a new push is always the newest version;
4. the files are copied into ``<base_directory>/.tmp-<version>-<random>/``, each file and
   directory fsynced, then the directory is renamed to ``<base_directory>/<version>/``
   (``os.rename`` within one directory is atomic on POSIX) and the parent fsynced;
5. any failure removes the temporary directory, leaves the existing versions untouched
   and raises ``PushError`` naming the path and the OS reason;
6. like TFX, the model is also copied into the ``PushedModel`` artifact, which records
   ``pushed`` = 1, ``pushed_destination`` (the version directory) and ``pushed_version``
   (its name); a model that is not blessed gets ``pushed`` = 0 and nothing is copied.

Leftover ``.tmp-*`` directories (a killed push) are harmless: TF Serving's file system
source only loads subdirectories whose names parse as an integer version
(``ParseVersionNumber`` = ``safe_strto64`` in tensorflow/serving:
tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc), so it never
loads a dot-prefixed name, and ``next_version`` ignores them too. Delete them at any time.
A version directory is created only by the rename, complete; a directory someone creates
by hand with a numeric name is never reused (versions only grow).

On an object store (``gs://``, ``s3://``) a directory rename is a copy, so there the
executor falls back to the stock Pusher's method (everything, then ``saved_model.pb``
last, straight into the version directory) with the same version and blessing rules.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import time
from typing import Any, Dict, List, Optional, Tuple

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.components.pusher.component import Pusher
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, path_utils, proto_utils

MODEL_BLESSING_KEY = standard_component_specs.MODEL_BLESSING_KEY
INFRA_BLESSING_KEY = standard_component_specs.INFRA_BLESSING_KEY
HAS_MODEL_PROPERTY = "has_model"  # InfraBlessing: a warmed-up model is inside
TEMP_PREFIX = ".tmp-"
SAVED_MODEL_FILE = "saved_model.pb"
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_RENAME_ATTEMPTS = 5


class PushError(RuntimeError):
    """A push failed; the existing versions are untouched."""


def existing_versions(model_dir: str) -> List[int]:
    """The numeric version directories under `model_dir` (what TF Serving would load), sorted."""
    if not fileio.exists(model_dir):
        return []
    names = [name.rstrip("/") for name in fileio.listdir(model_dir)]
    return sorted(int(name) for name in names if name.isdigit())


def next_version(model_dir: str, now: Optional[float] = None) -> int:
    """The unix time in seconds, or one more than the largest existing version if that is not newer."""
    newest = max(existing_versions(model_dir), default=0)
    return max(int(time.time() if now is None else now), newest + 1)


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.errno is not None:
        code = errno.errorcode.get(error.errno, str(error.errno))
        where = f" on {error.filename}" if error.filename else ""
        return f"{error.strerror or error} [{code}]{where}"
    return f"{type(error).__name__}: {error}"


def _fsync(path: str, directory: bool = False) -> None:
    descriptor = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _copy_local(source: str, target: str) -> None:
    """Copies the tree `source` into the new directory `target`, fsyncing every file and directory."""
    os.mkdir(target)
    for root, dirs, files in os.walk(source):
        relative = os.path.relpath(root, source)
        into = target if relative == "." else os.path.join(target, relative)
        for name in dirs:
            os.mkdir(os.path.join(into, name))
        for name in files:
            destination = os.path.join(into, name)
            shutil.copy2(os.path.join(root, name), destination)
            _fsync(destination)
    for root, dirs, _ in os.walk(target, topdown=False):
        _fsync(root, directory=True)


def _copy_remote_source(source: str, target: str) -> None:
    """A model on another file system (gs://) copied into the local `target`, then fsynced."""
    os.mkdir(target)
    io_utils.copy_dir(source, target)
    for root, _, files in os.walk(target, topdown=False):
        for name in files:
            _fsync(os.path.join(root, name))
        _fsync(root, directory=True)


def _is_local(path: str) -> bool:
    return "://" not in path


SOURCE_MARKER = os.path.join("assets.extra", "ctrflow_source_model")  # TF Serving ignores it
ALREADY_SERVED_PROPERTY = "already_served_version"  # on PushedModel when the model already serves


def source_of(version_dir: str) -> Optional[str]:
    """The trained model a pushed version came from (its marker), or None."""
    marker = os.path.join(version_dir, SOURCE_MARKER)
    if not fileio.exists(marker):
        return None
    with fileio.open(marker, "r") as stream:
        return stream.read().strip() or None


def serving_version_of(model_dir: str, source: str) -> Optional[int]:
    """The newest version of `model_dir` if it was pushed from `source` (a rerun that would
    push the same trained model again), else None."""
    versions = existing_versions(model_dir) if fileio.exists(model_dir) else []
    if versions and source_of(os.path.join(model_dir, str(max(versions)))) == source:
        return max(versions)
    return None


def atomic_push(model_path: str, model_dir: str, now: Optional[float] = None,
                source: Optional[str] = None) -> Tuple[str, int]:
    """Copies the SavedModel `model_path` to a new version directory of `model_dir` atomically.

    `source` (the trained model's URI) is written to ``assets.extra/ctrflow_source_model``
    inside the new version, before it becomes visible.

    Returns:
      (the version directory, the version).

    Raises:
      PushError: the copy or the rename failed; the temporary directory is removed and the
        existing versions are untouched.
    """
    if not fileio.exists(os.path.join(model_path, SAVED_MODEL_FILE)):
        raise PushError(f"There is no {SAVED_MODEL_FILE} in {model_path}: it is not a SavedModel, so nothing "
                        "was pushed. Check the Trainer's output (Format-Serving) or the infra blessing's model.")
    try:
        os.makedirs(model_dir, exist_ok=True)
    except OSError as error:
        raise PushError(f"Could not create the model directory {model_dir}: {_reason(error)}. Make the push "
                        "base writable by the pipeline's user, or choose another push_base.") from error
    version = next_version(model_dir, now)
    temp_dir = os.path.join(model_dir, f"{TEMP_PREFIX}{version}-{secrets.token_hex(4)}")
    final = os.path.join(model_dir, str(version))
    try:
        (_copy_local if _is_local(model_path) else _copy_remote_source)(model_path, temp_dir)
        if source:
            os.makedirs(os.path.dirname(os.path.join(temp_dir, SOURCE_MARKER)), exist_ok=True)
            with open(os.path.join(temp_dir, SOURCE_MARKER), "w") as stream:
                stream.write(source)
                stream.flush()
                os.fsync(stream.fileno())
        for _ in range(_RENAME_ATTEMPTS):
            final = os.path.join(model_dir, str(version))
            try:
                os.rename(temp_dir, final)
                break
            except OSError as error:
                # Another push took this version meanwhile: take the next one.
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                version = next_version(model_dir, now)
        else:
            raise PushError(f"Versions kept appearing in {model_dir} while pushing; gave up after "
                            f"{_RENAME_ATTEMPTS} attempts. Is another pusher writing there?")
        _fsync(model_dir, directory=True)
    except BaseException as error:
        shutil.rmtree(temp_dir, ignore_errors=True)
        if isinstance(error, PushError):
            raise
        if not isinstance(error, Exception):
            raise
        raise PushError(
            f"Could not push the model {model_path} to {final}: {_reason(error)}. The partial copy {temp_dir} "
            f"was removed and the existing versions in {model_dir} are untouched. Free space or fix the "
            "permissions of the push base, then rerun the Pusher.") from error
    return final, version


def plain_push(model_path: str, model_dir: str, now: Optional[float] = None) -> Tuple[str, int]:
    """The stock Pusher's copy (``saved_model.pb`` last), for object stores where rename is a copy."""
    version = next_version(model_dir, now)
    final = os.path.join(model_dir, str(version))
    try:
        io_utils.copy_dir(model_path, final, deny_regex_patterns=[re.escape(SAVED_MODEL_FILE)])
        io_utils.copy_file(os.path.join(model_path, SAVED_MODEL_FILE), os.path.join(final, SAVED_MODEL_FILE))
    except Exception as error:  # pylint: disable=broad-except
        raise PushError(f"Could not push the model {model_path} to {final}: {_reason(error)}. The version "
                        f"directory {final} may be incomplete: delete it, fix the cause and rerun.") from error
    return final, version


class AtomicPushExecutor(pusher_executor.Executor):
    """Pusher's executor with the blessing gate, source choice and atomic copy of the module docstring."""

    def ModelSource(self, input_dict: Dict[str, List[types.Artifact]]) -> str:
        """The warmed-up model of the infra blessing when it holds one, else the Trainer's model."""
        infra = input_dict.get(INFRA_BLESSING_KEY)
        if infra:
            blessing = artifact_utils.get_single_instance(infra)
            if blessing.get_int_custom_property(HAS_MODEL_PROPERTY) == 1:
                return path_utils.stamped_model_path(blessing.uri)
        return self.GetModelPath(input_dict)

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        missing = [key for key in (MODEL_BLESSING_KEY, INFRA_BLESSING_KEY) if not input_dict.get(key)]
        if missing:
            raise ValueError(f"AtomicPusher pushes only models blessed by both the Evaluator and the serving "
                             f"validator, but it has no {missing} input. Received inputs {sorted(input_dict)}; "
                             "wire it with make_pusher(model, model_blessing, infra_blessing, ...).")
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return

        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError(f"AtomicPusher pushes to a file system. Received destination "
                                      f"{destination.WhichOneof('destination')!r}; set push_destination.filesystem.")
        versioning = destination.filesystem.versioning
        if versioning not in (pusher_pb2.Versioning.AUTO, pusher_pb2.Versioning.UNIX_TIMESTAMP):
            raise NotImplementedError(f"Invalid versioning {versioning}; expected AUTO or UNIX_TIMESTAMP.")
        model_dir = destination.filesystem.base_directory
        model_path = self.ModelSource(input_dict)
        source = self.GetModelPath(input_dict)
        serving = serving_version_of(model_dir, source)
        if serving is not None:
            # A rerun over cached training (e.g. a new baseline made the Evaluator run again):
            # the model is already the served version; another copy would only add a version.
            logging.info("Model %s is already served as version %d of %s; not pushed again.",
                         source, serving, model_dir)
            model_push.set_int_custom_property(ALREADY_SERVED_PROPERTY, serving)
            self._MarkNotPushed(model_push)
            return
        if _is_local(model_dir):
            serving_path, version = atomic_push(model_path, model_dir, source=source)
        else:
            serving_path, version = plain_push(model_path, model_dir)
        logging.info("Model %s pushed to %s.", model_path, serving_path)

        io_utils.copy_dir(model_path, model_push.uri)  # the archive copy, as TFX keeps it
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=str(version))


class AtomicPusher(Pusher):
    """``tfx.components.Pusher`` with AtomicPushExecutor; same inputs, outputs and destination."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(AtomicPushExecutor)


def make_pusher(model: types.BaseChannel, model_blessing: types.BaseChannel, infra_blessing: types.BaseChannel,
                push_base: str, model_name: str) -> AtomicPusher:
    """An AtomicPusher writing versions to ``<push_base>/<model_name>/<version>/``.

    That is TF Serving's layout: serve it with ``--model_base_path=<push_base>/<model_name>``
    (or ``MODEL_BASE_PATH=<push_base>``, ``MODEL_NAME=<model_name>`` in the Docker image).
    """
    if not isinstance(model_name, str) or not _MODEL_NAME.match(model_name):
        raise ValueError("`model_name` must be letters, digits, '_', '.' or '-', not starting with '.' or '-'. "
                         f"Received: model_name={model_name!r}")
    if not push_base:
        raise ValueError(f"`push_base` must be a directory. Received: push_base={push_base!r}")
    return AtomicPusher(
        model=model,
        model_blessing=model_blessing,
        infra_blessing=infra_blessing,
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=os.path.join(push_base, model_name))),
    )
