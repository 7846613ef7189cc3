"""ServingValidator: TFX's InfraValidator contract, without Docker or Kubernetes.

TFX's InfraValidator starts TF Serving in Docker or on Kubernetes and raises
``NotImplementedError`` anywhere else; the machines this package is built on have
neither. ServingValidator checks the same thing a model server would trip over, in a
separate process, and writes the same blessing, so the stock Pusher (and
tfx_pipeline/components/pusher.py) consume it unchanged:

- a separate worker process (``python -m tfx_pipeline.components.serving_validator_worker``)
  loads the exported SavedModel: a model that crashes TensorFlow, hangs or runs out of
  memory fails validation, not the pipeline process, which never loads it;
- requests are built from up to ``num_examples`` real raw examples of the ``eval`` split,
  with serving/requests.py (the padding ``serving_default`` expects);
- the signature ``signature_name`` (``serving_default``) is called at batch 1 (one request
  per example, in turn) and at batch ``batch_size`` (64, cycling through the examples when
  the split has fewer);
- checks: the outputs are a dict of floating-point tensors of shape [batch], every value
  finite and in [0, 1]; the p99 latency over ``num_timing_requests`` timed calls (after 3
  untimed ones) is within ``latency_budget_ms`` at batch 1 and within
  ``batch_latency_budget_ms`` at batch ``batch_size``; the worker finishes within
  ``timeout_seconds``. A crash, a timeout or an error at any stage means not blessed.

Budgets (defaults): p99 <= 50 ms for one example, p99 <= 200 ms for a batch of 64. They
bound the model's own compute on the validating machine (the signature call in one
process, tensors built beforehand), not TF Serving's RPC/JSON handling or batching queue;
a GPU server is faster, so the defaults are meant for a CPU validator with headroom for an
online request. The p99 of 50 samples is nearly their maximum, so one stall can fail a
run: raise ``num_timing_requests`` for a steadier tail, or the budgets on a busy machine.

Output (``blessing``, an ``InfraBlessing``), exactly as InfraValidator writes it
(tfx/components/infra_validator/executor.py):

- the empty file ``INFRA_BLESSED`` or ``INFRA_NOT_BLESSED`` in ``blessing.uri`` and the
  int custom property ``blessed`` = 1 or 0, which Pusher's ``CheckBlessing`` reads;
- when blessed and ``make_warmup``: a copy of the model in ``<blessing.uri>/stamped_model``
  with ``assets.extra/tf_serving_warmup_requests`` (a TFRecord of PredictionLog, each a
  PredictRequest with ``model_spec.signature_name`` and the dense input tensors: one per
  example and one batch) and the int property ``has_model`` = 1. TF Serving replays these
  requests when it loads the version, so the first real request does not pay for tracing
  and lazy initialization. The stock Pusher pushes this copy when it is given
  ``infra_blessing`` and no ``model``; our AtomicPusher prefers it whenever present;
- ``validation_report.json``: blessed, the reasons when not, the inputs, per batch size the
  outputs seen (dtype, shapes, min, max, non-finite count) and the latencies (p50, p99,
  max, budget), and the worker's exit status (with its stderr tail when it failed).

Where Docker (or Kubernetes, in a Kubeflow pod) is present, ``serving_validation`` returns
TFX's real InfraValidator instead, running the ``tensorflow/serving`` image (tag
configurable; production serves ``2.16.1-gpu``). InfraValidator's request builder can only
send serialized tf.Examples, so it queries ``serving_tf_example`` and makes warmup requests
for that signature; it checks that the server loads and answers, not output ranges or
latency.

Example:
  validation = serving_validation(trainer.outputs["model"], example_gen.outputs["examples"],
                                  ServingValidationConfig(mode="local"))
  pusher = make_pusher(trainer.outputs["model"], evaluator.outputs["blessing"],
                       validation.outputs["blessing"], push_base="/serving/models", model_name="ctr")
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import io_utils, path_utils

from serving import signatures

MODEL_KEY = "model"
EXAMPLES_KEY = "examples"
BLESSING_KEY = "blessing"

NUM_EXAMPLES_KEY = "num_examples"
BATCH_SIZE_KEY = "batch_size"
LATENCY_BUDGET_KEY = "latency_budget_ms"
BATCH_LATENCY_BUDGET_KEY = "batch_latency_budget_ms"
NUM_TIMING_REQUESTS_KEY = "num_timing_requests"
SIGNATURE_NAME_KEY = "signature_name"
SPLIT_NAME_KEY = "split_name"
TIMEOUT_KEY = "timeout_seconds"
MAKE_WARMUP_KEY = "make_warmup"

# The blessing contract of tfx/components/infra_validator/executor.py, read by Pusher.
BLESSED_PROPERTY = "blessed"
HAS_MODEL_PROPERTY = "has_model"
BLESSED_FILE = "INFRA_BLESSED"
NOT_BLESSED_FILE = "INFRA_NOT_BLESSED"
REPORT_FILE = "validation_report.json"

WORKER_MODULE = "tfx_pipeline.components.serving_validator_worker"
NUM_WARMUP_CALLS = 3
MODES = ("local", "docker", "kubernetes")
_STDERR_TAIL = 3000


@dataclasses.dataclass(frozen=True)
class ServingValidationConfig:
    """How a model is validated before it is pushed (see the module docstring).

    Attributes:
      mode: "local" (ServingValidator, no container), "docker" (InfraValidator on the local
        Docker engine) or "kubernetes" (InfraValidator starting a pod; only inside a
        Kubeflow pod).
      num_examples: raw eval examples the requests are built from.
      batch_size: the large batch timed besides batch 1.
      latency_budget_ms: p99 budget at batch 1 (local mode).
      batch_latency_budget_ms: p99 budget at batch `batch_size` (local mode).
      num_timing_requests: timed calls per batch size (local mode).
      signature_name: the dense raw-feature signature called (local mode).
      split_name: the split of the Examples artifact to read.
      timeout_seconds: the worker's (local) or the model server's (docker) time limit.
      make_warmup: write a warmed-up model copy into the blessing.
      docker_image: the TF Serving image (docker and kubernetes modes).
      docker_tag: its tag; production serves "2.16.1-gpu" (needs the NVIDIA toolkit).
      model_name: the model name the container serves (docker and kubernetes modes).
    """

    mode: str = "local"
    num_examples: int = 64
    batch_size: int = 64
    latency_budget_ms: float = 50.0
    batch_latency_budget_ms: float = 200.0
    num_timing_requests: int = 50
    signature_name: str = signatures.SERVING_DEFAULT
    split_name: str = "eval"
    timeout_seconds: int = 600
    make_warmup: bool = True
    docker_image: str = "tensorflow/serving"
    docker_tag: str = "2.16.1"
    model_name: str = "ctr"

    def __post_init__(self):
        _require(self.mode in MODES, "mode", self.mode, f"one of {list(MODES)}")
        for name in ("num_examples", "num_timing_requests", "timeout_seconds"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value >= 1, name, value, "a positive integer")
        _require(isinstance(self.batch_size, int) and self.batch_size >= 2, "batch_size", self.batch_size,
                 "an integer >= 2 (batch 1 is always timed)")
        for name in ("latency_budget_ms", "batch_latency_budget_ms"):
            value = getattr(self, name)
            _require(isinstance(value, (int, float)) and value > 0, name, value, "a positive number of ms")
        for name in ("signature_name", "split_name", "docker_image", "docker_tag", "model_name"):
            _require(isinstance(getattr(self, name), str) and getattr(self, name), name, getattr(self, name),
                     "a non-empty string")

    def exec_properties(self) -> Dict[str, Any]:
        """ServingValidator's execution parameters."""
        return {
            NUM_EXAMPLES_KEY: self.num_examples,
            BATCH_SIZE_KEY: self.batch_size,
            LATENCY_BUDGET_KEY: float(self.latency_budget_ms),
            BATCH_LATENCY_BUDGET_KEY: float(self.batch_latency_budget_ms),
            NUM_TIMING_REQUESTS_KEY: self.num_timing_requests,
            SIGNATURE_NAME_KEY: self.signature_name,
            SPLIT_NAME_KEY: self.split_name,
            TIMEOUT_KEY: self.timeout_seconds,
            MAKE_WARMUP_KEY: int(self.make_warmup),
        }

    @classmethod
    def from_exec_properties(cls, properties: Dict[str, Any]) -> "ServingValidationConfig":
        """The local-mode config an executor was given; absent properties take the defaults."""
        default = cls()
        values = {}
        for key, value in properties.items():
            if value is None or key not in {f.name for f in dataclasses.fields(cls)}:
                continue
            kind = type(getattr(default, key))
            values[key] = bool(value) if kind is bool else kind(value)
        return cls(**values)


def _require(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")


class ServingValidatorSpec(ComponentSpec):
    PARAMETERS = {
        NUM_EXAMPLES_KEY: ExecutionParameter(type=int),
        BATCH_SIZE_KEY: ExecutionParameter(type=int),
        LATENCY_BUDGET_KEY: ExecutionParameter(type=float),
        BATCH_LATENCY_BUDGET_KEY: ExecutionParameter(type=float),
        NUM_TIMING_REQUESTS_KEY: ExecutionParameter(type=int),
        SIGNATURE_NAME_KEY: ExecutionParameter(type=str),
        SPLIT_NAME_KEY: ExecutionParameter(type=str),
        TIMEOUT_KEY: ExecutionParameter(type=int),
        MAKE_WARMUP_KEY: ExecutionParameter(type=int),
    }
    INPUTS = {
        MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        BLESSING_KEY: ChannelParameter(type=standard_artifacts.InfraBlessing),
    }


# ------------------------------------------------------------------ the worker process


@dataclasses.dataclass
class WorkerRun:
    """What one worker process did: its result dict, or how it failed."""

    result: Optional[Dict[str, Any]]
    returncode: Optional[int]
    timed_out: bool
    seconds: float
    stderr: str = ""


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_worker(job: Dict[str, Any], scratch_dir: str, timeout_seconds: float) -> WorkerRun:
    """Runs the worker on `job` in a fresh Python process; never raises for the worker's failures."""
    job = dict(job, result_path=os.path.join(scratch_dir, "result.json"))
    job_path = os.path.join(scratch_dir, "job.json")
    with open(job_path, "w") as stream:
        json.dump(job, stream)
    env = dict(os.environ)
    # The worker imports this same checkout (an installed package resolves the same way).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_USE_LEGACY_KERAS", "1")
    command = [sys.executable, "-m", WORKER_MODULE, job_path]
    started = time.monotonic()
    logging.info("Starting the serving validation worker: %s", " ".join(command))
    try:
        process = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 timeout=timeout_seconds, env=env, check=False)
    except subprocess.TimeoutExpired as expired:
        stderr = expired.stderr.decode("utf-8", "replace") if isinstance(expired.stderr, bytes) else expired.stderr
        return WorkerRun(None, None, True, time.monotonic() - started, (stderr or "")[-_STDERR_TAIL:])
    seconds = time.monotonic() - started
    result = None
    if os.path.exists(job["result_path"]):
        with open(job["result_path"]) as stream:
            result = json.load(stream)
    return WorkerRun(result, process.returncode, False, seconds, (process.stderr or "")[-_STDERR_TAIL:])


# ------------------------------------------------------------------ judging a result


def latency_stats(times_ms: List[float]) -> Dict[str, float]:
    """p50, p99 (linear interpolation, as numpy.percentile), mean and max, in ms."""
    import numpy as np

    values = np.asarray(times_ms, dtype=np.float64)
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99)),
            "mean": float(values.mean()), "max": float(values.max()), "count": int(values.size)}


def output_problems(outputs_by_batch: Dict[str, Dict[str, Dict[str, Any]]]) -> List[str]:
    """Reasons the outputs are not probabilities of shape [batch]; empty when they are."""
    reasons = []
    for batch, outputs in outputs_by_batch.items():
        if not outputs:
            reasons.append(f"the signature returned no outputs at batch {batch}; expected {{task: probability}}")
        for name, seen in sorted(outputs.items()):
            if not seen["dtype"].startswith(("float", "bfloat", "half", "double")):
                reasons.append(f"output {name!r} has dtype {seen['dtype']} at batch {batch}; expected a "
                               "floating-point probability")
            if seen["shapes"] != [[int(batch)]]:
                reasons.append(f"output {name!r} has shape(s) {seen['shapes']} at batch {batch}; expected "
                               f"[{batch}] (one probability per example)")
            if seen["non_finite"]:
                reasons.append(f"output {name!r} had {seen['non_finite']} non-finite value(s) (NaN or inf) at "
                               f"batch {batch}; expected finite probabilities")
            low, high = seen["min"], seen["max"]
            if (low is not None and low < 0.0) or (high is not None and high > 1.0):
                reasons.append(f"output {name!r} had values outside [0, 1] at batch {batch} (min {low:.6g}, "
                               f"max {high:.6g}); expected probabilities")
    return reasons


def judge(run: WorkerRun, config: ServingValidationConfig) -> Dict[str, Any]:
    """The validation report of one worker run; ``report["blessed"]`` is the verdict."""
    budgets = {"1": float(config.latency_budget_ms), str(config.batch_size): float(config.batch_latency_budget_ms)}
    report: Dict[str, Any] = {
        "blessed": False,
        "reasons": [],
        "signature_name": config.signature_name,
        "split_name": config.split_name,
        "budgets_p99_ms": budgets,
        "worker": {"returncode": run.returncode, "timed_out": run.timed_out, "seconds": round(run.seconds, 3)},
    }
    reasons = report["reasons"]
    result = run.result
    if run.timed_out:
        reasons.append(f"the worker did not finish within timeout_seconds={config.timeout_seconds} s (model "
                       "load, requests and timing); raise timeout_seconds if the model is just slow to load")
    elif result is None:
        reasons.append(f"the worker process exited with status {run.returncode} and wrote no result (a crash, "
                       f"or killed for memory); its stderr ends: {_last_lines(run.stderr)}")
    elif "error" in result:
        error = result["error"]
        reasons.append(f"the worker failed at stage {error['stage']!r}: {error['type']}: {error['message']}")
        report["worker"]["traceback"] = error.get("traceback", "")
    else:
        report["num_examples"] = result["num_examples"]
        report["inputs"] = result["inputs"]
        report["outputs"] = result["outputs"]
        report["load_seconds"] = result.get("load_seconds")
        report["warmup_records"] = result.get("warmup_records", 0)
        reasons.extend(output_problems(result["outputs"]))
        latency = {}
        for batch, times in result["latencies_ms"].items():
            stats = latency_stats(times)
            stats["budget_p99"] = budgets[batch]
            latency[batch] = stats
            if stats["p99"] > budgets[batch]:
                reasons.append(f"p99 latency at batch {batch} is {stats['p99']:.3f} ms over {stats['count']} calls; "
                               f"the budget is {budgets[batch]:g} ms")
        report["latency_ms"] = latency
    if reasons:
        report["worker"]["stderr_tail"] = run.stderr
    report["blessed"] = not reasons
    return report


def _last_lines(text: str, count: int = 5) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "(nothing)"


# ------------------------------------------------------------------ the executor


def _mark(blessing: types.Artifact, blessed: bool) -> None:
    """Writes INFRA_BLESSED / INFRA_NOT_BLESSED and the `blessed` property, as InfraValidator does."""
    name = BLESSED_FILE if blessed else NOT_BLESSED_FILE
    io_utils.write_string_file(os.path.join(blessing.uri, name), "")
    blessing.set_int_custom_property(BLESSED_PROPERTY, 1 if blessed else 0)


def eval_files(examples: types.Artifact, split_name: str) -> List[str]:
    """The files of one split of an Examples artifact; ValueError when it has none."""
    splits = artifact_utils.decode_split_names(examples.split_names)
    if split_name not in splits:
        raise ValueError(f"The examples artifact {examples.uri} has no split {split_name!r}; it has {splits}. "
                         "Pass the raw examples of ExampleGen, or set split_name.")
    pattern = os.path.join(artifact_utils.get_split_uri([examples], split_name), "*")
    files = sorted(fileio.glob(pattern))
    if not files:
        raise ValueError(f"No files match {pattern}: the {split_name!r} split of {examples.uri} is empty.")
    return files


class Executor(base_executor.BaseExecutor):
    """Validates the model in a worker process and writes the InfraBlessing (see module docstring)."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        blessing = artifact_utils.get_single_instance(output_dict[BLESSING_KEY])
        config = ServingValidationConfig.from_exec_properties(exec_properties)
        model_path = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
        files = eval_files(examples, config.split_name)

        with tempfile.TemporaryDirectory(prefix="serving-validator-") as scratch:
            warmup_path = os.path.join(scratch, "tf_serving_warmup_requests")
            job = {
                "model_path": model_path,
                "example_files": files,
                "num_examples": config.num_examples,
                "batch_size": config.batch_size,
                "signature_name": config.signature_name,
                "num_timing_requests": config.num_timing_requests,
                "num_warmup_calls": NUM_WARMUP_CALLS,
                "warmup_path": warmup_path if config.make_warmup else "",
            }
            run = run_worker(job, scratch, config.timeout_seconds)
            report = judge(run, config)
            report["model_path"] = model_path
            _mark(blessing, report["blessed"])
            if report["blessed"] and config.make_warmup:
                stamped = path_utils.stamped_model_path(blessing.uri)
                io_utils.copy_dir(model_path, stamped)
                io_utils.copy_file(warmup_path, path_utils.warmup_file_path(stamped), overwrite=True)
                blessing.set_int_custom_property(HAS_MODEL_PROPERTY, 1)
                report["warmed_up_model"] = stamped
            io_utils.write_string_file(os.path.join(blessing.uri, REPORT_FILE), json.dumps(report, indent=2))
        if report["blessed"]:
            logging.info("Model %s passed serving validation: %s", model_path, json.dumps(report.get("latency_ms")))
        else:
            logging.warning("Model %s failed serving validation:\n  %s", model_path, "\n  ".join(report["reasons"]))


class ServingValidator(base_component.BaseComponent):
    """Checks that an exported model serves real requests correctly and fast enough.

    Args:
      model: a Channel of ``Model`` (the Trainer's output, a SavedModel with the dense
        raw-feature signature ``config.signature_name``).
      examples: a Channel of raw ``Examples`` with the split ``config.split_name``.
      config: the budgets and sizes; its `mode` must be "local" (use ``serving_validation``
        to choose between this component and InfraValidator).

    Outputs: ``blessing``, an ``InfraBlessing`` (see the module docstring).
    """

    SPEC_CLASS = ServingValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model: types.BaseChannel, examples: types.BaseChannel,
                 config: Optional[ServingValidationConfig] = None):
        config = config or ServingValidationConfig()
        if config.mode != "local":
            raise ValueError(f"ServingValidator validates in a local process. Received: mode={config.mode!r}. "
                             "Use serving_validation(model, examples, config) to get InfraValidator for "
                             "docker or kubernetes.")
        spec = ServingValidatorSpec(
            model=model,
            examples=examples,
            blessing=types.Channel(type=standard_artifacts.InfraBlessing),
            **config.exec_properties(),
        )
        super().__init__(spec=spec)


def serving_validation(model: types.BaseChannel, examples: types.BaseChannel,
                       config: Optional[ServingValidationConfig] = None) -> base_component.BaseComponent:
    """The serving validation component for `config.mode`: both write an ``InfraBlessing``.

    "local" gives ServingValidator. "docker" and "kubernetes" give TFX's InfraValidator
    running ``{docker_image}:{docker_tag}``, querying ``serving_tf_example`` with
    ``num_examples`` eval examples, ``max_loading_time_seconds = timeout_seconds``, and
    making a warmed-up model when ``make_warmup``.
    """
    config = config or ServingValidationConfig()
    if config.mode == "local":
        return ServingValidator(model=model, examples=examples, config=config)
    from tfx.components.infra_validator.component import InfraValidator
    from tfx.proto import infra_validator_pb2 as iv

    platform = ({"local_docker": iv.LocalDockerConfig()} if config.mode == "docker"
                else {"kubernetes": iv.KubernetesConfig()})
    return InfraValidator(
        model=model,
        examples=examples,
        serving_spec=iv.ServingSpec(
            tensorflow_serving=iv.TensorFlowServing(image_name=config.docker_image, tags=[config.docker_tag]),
            model_name=config.model_name,
            **platform,
        ),
        validation_spec=iv.ValidationSpec(max_loading_time_seconds=config.timeout_seconds, num_tries=3),
        request_spec=iv.RequestSpec(
            tensorflow_serving=iv.TensorFlowServingRequestSpec(signature_names=[signatures.SERVING_TF_EXAMPLE]),
            split_name=config.split_name,
            num_examples=config.num_examples,
            make_warmup=config.make_warmup,
        ),
    )
