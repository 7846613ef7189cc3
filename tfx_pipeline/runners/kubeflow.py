"""The pipeline on Kubeflow Pipelines (KFP v2): compile with TFX's KubeflowV2DagRunner, submit and schedule with kfp.

``compile_package`` builds the same pipeline as the local runner
(``tfx_pipeline.pipeline.create_pipeline`` from a ``PipelineConfig``) and compiles it with
``KubeflowV2DagRunner(config=KubeflowV2DagRunnerConfig(default_image=image))``. Every
component then runs in that image as
``python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor
--executor_class_path <executor> --json_serialized_invocation_args {{$}} <beam args>``,
so the image must hold this package (the repository's ``Dockerfile``): the custom
components (EventLogExampleGen, ExampleAnomalyGate, ServingValidator, the atomic Pusher),
the Trainer's ``run_fn``, Transform's ``preprocessing_fn`` and the Evaluator's model loader
are imported there by their dotted names.

What differs from the local run:

- **No metadata path.** KFP keeps ML Metadata itself; artifacts go under the pipeline root
  (``gs://bucket/root``, ``s3://``, ``minio://``), which every pod must reach. Input
  (``pipeline.log_dir``) and push (``pipeline.push_base``) locations must be reachable from
  the pods too: URIs, or paths of a volume mounted at the same place.
- **The schema file** is read inside the pod: by default from where the Dockerfile installs
  the package (``IMAGE_SCHEMA_PATH``).
- **EventLogExampleGen is never cached.** KFP's cache key is a task's inputs and command;
  EventLogExampleGen's inputs (the log folder and ingest settings) do not change when new
  spans arrive, so a cached result would train on old data forever. Its custom driver (the
  input fingerprint of the local runner) does not run on KFP. Downstream tasks see a new
  Examples artifact on every run.
- **Resources** (``Resources``) are set per component with
  ``BaseComponent.with_platform_config(ResourceSpec)``, which the V2 compiler copies into the
  container spec: CPU and memory limits and an accelerator (type and count).
- **Serving validation** must be ``mode: local`` (ServingValidator, a process inside the
  pod): TFX 1.16's KFP V2 compiler raises ``NotImplementedError`` for InfraValidator.

Packages: a ``.yaml``/``.yml`` output is a PipelineSpec, what the kfp 2.5 client and the KFP
UI upload; a ``.json`` output is a PipelineJob (Vertex AI Pipelines), which ``submit`` and
``schedule`` also accept. The pipeline root is stored in both (``defaultPipelineRoot``,
``runtimeConfig.gcsOutputDirectory``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:  # submitting and scheduling need neither TFX nor the pipeline config
    from tfx_pipeline.config import PipelineConfig

# Where the Dockerfile installs the package: a non-editable install in /app/.venv.
IMAGE_SITE_PACKAGES = "/app/.venv/lib/python3.10/site-packages"
IMAGE_SCHEMA_PATH = f"{IMAGE_SITE_PACKAGES}/tfx_pipeline/schema/schema.pbtxt"
# Components whose output depends on more than their KFP inputs (see the module docstring).
UNCACHED_COMPONENTS = ("EventLogExampleGen",)
DEFAULT_RESOURCE_COMPONENT = "Trainer"
DEFAULT_GPU_TYPE = "nvidia.com/gpu"  # the Kubernetes resource name; Vertex AI wants e.g. NVIDIA_TESLA_T4
PACKAGE_SUFFIXES = (".yaml", ".yml", ".json")


class KubeflowError(ValueError):
    """A setting or package that cannot work on Kubeflow Pipelines, with what to do instead."""


def is_uri(path: str) -> bool:
    return "://" in path


@dataclasses.dataclass(frozen=True)
class Resources:
    """Container limits of one component: vCPUs, memory in GB, and accelerators."""

    cpu: Optional[float] = None
    memory_gb: Optional[float] = None
    gpu: int = 0
    gpu_type: str = DEFAULT_GPU_TYPE

    @classmethod
    def parse(cls, text: str) -> Tuple[str, "Resources"]:
        """``[COMPONENT:]cpu=8,memory=32G,gpu=1[,gpu_type=nvidia.com/gpu]`` -> (component id, Resources).

        The component defaults to the Trainer. ``cpu`` takes vCPUs (``4``, ``0.5``, ``500m``);
        ``memory`` GB (``32``, ``32G``) or GiB (``30Gi``).
        """
        component, _, body = text.partition(":") if ":" in text.split("=", 1)[0] else ("", "", text)
        component = component or DEFAULT_RESOURCE_COMPONENT
        expected = ("Expected [COMPONENT:]cpu=N,memory=NG,gpu=N[,gpu_type=TYPE], "
                    "e.g. Trainer:cpu=8,memory=32G,gpu=1.")
        values: Dict[str, Any] = {}
        for item in filter(None, body.split(",")):
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not value:
                raise KubeflowError(f"Bad resources {text!r}: {item!r} is not key=value. {expected}")
            try:
                if key == "cpu":
                    values["cpu"] = float(value[:-1]) / 1000 if value.endswith("m") else float(value)
                elif key == "memory":
                    number = re.fullmatch(r"([0-9.]+)\s*(G|Gi|GB)?", value)
                    if not number:
                        raise ValueError(value)
                    scale = 1024 ** 3 / 1e9 if number.group(2) == "Gi" else 1.0
                    values["memory_gb"] = float(number.group(1)) * scale
                elif key == "gpu":
                    values["gpu"] = int(value)
                elif key == "gpu_type":
                    values["gpu_type"] = value
                else:
                    raise KubeflowError(f"Bad resources {text!r}: unknown key {key!r}. {expected}")
            except ValueError as err:
                if isinstance(err, KubeflowError):
                    raise
                raise KubeflowError(f"Bad resources {text!r}: {key}={value!r} is not a number. {expected}") from None
        if not values:
            raise KubeflowError(f"Bad resources {text!r}: nothing set. {expected}")
        resources = cls(**values)
        if any(v is not None and v <= 0 for v in (resources.cpu, resources.memory_gb)) or resources.gpu < 0:
            raise KubeflowError(f"Bad resources {text!r}: cpu and memory must be > 0 and gpu >= 0. {expected}")
        return component, resources

    def to_proto(self):
        from kfp.pipeline_spec import pipeline_spec_pb2

        spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
        if self.cpu is not None:
            spec.cpu_limit = self.cpu
        if self.memory_gb is not None:
            spec.memory_limit = self.memory_gb
        if self.gpu:
            spec.accelerator.type = self.gpu_type
            spec.accelerator.count = self.gpu
        return spec


@dataclasses.dataclass(frozen=True)
class KubeflowSettings:
    """How the pipeline runs on KFP; empty fields fall back to the pipeline config.

    ``beam_args``: empty means ``pipeline.beam_args`` of the config, else Beam's DirectRunner
    inside each pod. ``resources``: component id -> limits.
    """

    image: str
    pipeline_root: Optional[str] = None
    beam_args: Tuple[str, ...] = ()
    resources: Mapping[str, Resources] = dataclasses.field(default_factory=dict)
    log_dir: Optional[str] = None
    push_base: Optional[str] = None
    schema_path: str = IMAGE_SCHEMA_PATH


def pipeline_root(config: PipelineConfig, settings: KubeflowSettings) -> str:
    root = settings.pipeline_root or config.pipeline.root
    if not is_uri(root):
        raise KubeflowError(
            f"The pipeline root {root!r} is a local path; KFP pods write artifacts under a URI they can all "
            "reach. Pass --pipeline-root gs://BUCKET/ROOT (or s3://, minio://), or set pipeline.root to one.")
    return root


def local_paths(config: PipelineConfig, settings: KubeflowSettings) -> List[Tuple[str, str]]:
    """(setting, path) of the locations the pods read or write that are not URIs."""
    paths = [("pipeline.log_dir", settings.log_dir or config.pipeline.log_dir),
             ("pipeline.push_base", settings.push_base or config.pipeline.push_base)]
    return [(name, path) for name, path in paths if not is_uri(path)]


def build(config: PipelineConfig, settings: KubeflowSettings):
    """The TFX pipeline a config describes, for KFP: no metadata connection, the pods' paths.

    The data and model settings are the local runner's (``local.data_settings``,
    ``local.model_settings``): every span of the log, the newest one deciding the split.
    """
    from tfx_pipeline.beam_args import default_beam_args
    from tfx_pipeline.pipeline import create_pipeline
    from tfx_pipeline.runners import local

    if config.serving_validation.mode != "local":
        raise KubeflowError(
            f"serving_validation.mode is {config.serving_validation.mode!r}: TFX 1.16's Kubeflow V2 compiler "
            "does not support InfraValidator (it raises NotImplementedError). Set serving_validation.mode: local; "
            "ServingValidator then loads the model in a separate process inside its pod.")
    pipeline_settings = config.pipeline
    beam_args = list(settings.beam_args or pipeline_settings.beam_args or default_beam_args())
    pipeline = create_pipeline(
        pipeline_settings.name,
        pipeline_root(config, settings),
        dataclasses.replace(local.data_settings(config), log_dir=settings.log_dir or pipeline_settings.log_dir,
                            schema_path=settings.schema_path),
        metadata_connection_config=None,
        beam_pipeline_args=beam_args,
        enable_cache=pipeline_settings.enable_cache,
        model=dataclasses.replace(local.model_settings(config),
                                  push_base=settings.push_base or pipeline_settings.push_base),
    )
    _set_resources(pipeline, settings.resources)
    return pipeline


def _set_resources(pipeline, resources: Mapping[str, Resources]) -> None:
    from tfx.dsl.components.base import base_component

    components = {c.id: c for c in pipeline.components if isinstance(c, base_component.BaseComponent)}
    for component_id, limits in resources.items():
        if component_id not in components:
            raise KubeflowError(f"Resources for {component_id!r}: no such component. "
                                f"The pipeline's components are {sorted(components)}.")
        components[component_id].with_platform_config(limits.to_proto())


def compile_package(config: PipelineConfig, settings: KubeflowSettings, out: str) -> Dict[str, Any]:
    """Compiles the pipeline into `out` (.yaml/.yml: PipelineSpec; .json: PipelineJob); returns the PipelineJob dict."""
    from tfx import v1 as tfx

    if not out.endswith(PACKAGE_SUFFIXES):
        raise KubeflowError(f"The package {out!r} must end with .yaml or .yml (a PipelineSpec, for Kubeflow "
                            "Pipelines) or .json (a PipelineJob, for Vertex AI Pipelines).")
    pipeline = build(config, settings)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=settings.image),
        output_dir=os.path.dirname(os.path.abspath(out)),
        output_filename=os.path.basename(out),
    )
    job = runner.run(pipeline, write_out=False)
    spec = job["pipelineSpec"]
    spec["defaultPipelineRoot"] = pipeline.pipeline_info.pipeline_root
    for task_id in UNCACHED_COMPONENTS:
        spec["root"]["dag"]["tasks"][task_id]["cachingOptions"] = {"enableCache": False}
    write_package(job, out)
    return job


def write_package(job: Mapping[str, Any], out: str) -> None:
    import yaml

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        if out.endswith((".yaml", ".yml")):
            f.write(f"# PIPELINE DEFINITION\n# Name: {job['pipelineSpec']['pipelineInfo']['name']}\n"
                    f"# Compiled by ctrflow from a TFX pipeline ({job['pipelineSpec'].get('sdkVersion', 'tfx')}).\n")
            yaml.safe_dump(job["pipelineSpec"], f, sort_keys=True)
        else:
            json.dump(job, f, sort_keys=True, indent=2)


@dataclasses.dataclass(frozen=True)
class Package:
    """A compiled pipeline as the KFP API takes it."""

    spec: Dict[str, Any]  # the PipelineSpec
    pipeline_root: Optional[str]

    @property
    def name(self) -> str:
        return self.spec["pipelineInfo"]["name"]

    @property
    def parameters(self) -> Dict[str, Any]:
        """The pipeline's runtime parameters (name -> definition)."""
        return dict(self.spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}))


def read_package(path: str) -> Package:
    """A package written by `compile_package` (or the KFP SDK): .yaml/.yml PipelineSpec or .json PipelineJob."""
    import yaml
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    if not path.endswith(PACKAGE_SUFFIXES):
        raise KubeflowError(f"The package {path!r} must be a .yaml/.yml PipelineSpec or a .json PipelineJob "
                            "(`ctrflow compile --out ctr-kfp.yaml`).")
    if not os.path.isfile(path):
        raise KubeflowError(f"The package {path!r} does not exist. Make it with "
                            "`ctrflow compile --orchestrator kubeflow --config FILE --out ctr-kfp.yaml --image IMAGE`.")
    with open(path) as f:
        try:
            data = json.load(f) if path.endswith(".json") else next(yaml.safe_load_all(f), None)
        except (ValueError, yaml.YAMLError) as err:
            raise KubeflowError(f"The package {path!r} cannot be read: {err}") from None
    if path.endswith(".json"):
        if not isinstance(data, dict) or "pipelineSpec" not in data:
            raise KubeflowError(f"The package {path!r} is not a PipelineJob (no `pipelineSpec`); "
                                f"found keys {sorted(data) if isinstance(data, dict) else type(data).__name__}.")
        spec, root = data["pipelineSpec"], data.get("runtimeConfig", {}).get("gcsOutputDirectory")
    else:
        spec, root = data, (data or {}).get("defaultPipelineRoot") if isinstance(data, dict) else None
    try:
        json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    except (json_format.ParseError, TypeError, AttributeError) as err:
        raise KubeflowError(f"The package {path!r} is not a KFP PipelineSpec: {err}") from None
    return Package(spec, root or spec.get("defaultPipelineRoot"))


def parse_params(items: Sequence[str], package: Package) -> Dict[str, Any]:
    """``k=v`` items -> arguments; values are JSON when they parse (numbers, booleans), else strings."""
    known = package.parameters
    params: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise KubeflowError(f"Bad parameter {item!r}: expected NAME=VALUE, e.g. --param epochs=3.")
        if key not in known:
            raise KubeflowError(f"Bad parameter {key!r}: the pipeline {package.name!r} takes "
                                f"{sorted(known) or 'no runtime parameters'}.")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def make_client(endpoint: str, namespace: Optional[str] = None):
    """A kfp.Client for the KFP API at `endpoint` (it checks /apis/v2beta1/healthz)."""
    import kfp

    kwargs = {"namespace": namespace} if namespace else {}
    return kfp.Client(host=endpoint, **kwargs)


def _spec_file(package: Package, directory: str) -> str:
    """The PipelineSpec as the .yaml file the kfp client reads (it takes no PipelineJob JSON)."""
    import yaml

    path = os.path.join(directory, "pipeline.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(package.spec, f, sort_keys=True)
    return path


def submit(client, package: Package, experiment: str, run_name: Optional[str] = None,
           params: Optional[Mapping[str, Any]] = None, pipeline_root: Optional[str] = None,
           enable_caching: Optional[bool] = None, namespace: Optional[str] = None,
           service_account: Optional[str] = None):
    """One run of the package (kfp's create_run_from_pipeline_package); returns its RunPipelineResult."""
    with tempfile.TemporaryDirectory() as tmp:
        return client.create_run_from_pipeline_package(
            _spec_file(package, tmp),
            arguments=dict(params or {}),
            run_name=run_name,
            experiment_name=experiment,
            namespace=namespace,
            pipeline_root=pipeline_root or package.pipeline_root,
            enable_caching=enable_caching,
            service_account=service_account,
        )


def schedule(client, package: Package, experiment: str, job_name: str, cron: Optional[str] = None,
             interval_seconds: Optional[int] = None, max_concurrency: int = 1, no_catchup: bool = False,
             params: Optional[Mapping[str, Any]] = None, pipeline_root: Optional[str] = None,
             enable_caching: Optional[bool] = None, namespace: Optional[str] = None,
             service_account: Optional[str] = None):
    """A recurring run (kfp's create_recurring_run) on a 6-field cron or an interval; returns it."""
    if (cron is None) == (interval_seconds is None):
        raise KubeflowError("A recurring run needs either a cron expression or an interval, not both.")
    experiment_id = client.create_experiment(name=experiment, namespace=namespace).experiment_id
    with tempfile.TemporaryDirectory() as tmp:
        return client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=job_name,
            cron_expression=cron,
            interval_second=interval_seconds,
            max_concurrency=max_concurrency,
            no_catchup=no_catchup,
            params=dict(params or {}),
            pipeline_package_path=_spec_file(package, tmp),
            pipeline_root=pipeline_root or package.pipeline_root,
            enable_caching=enable_caching,
            service_account=service_account,
        )


_CRON_ATOM = r"(?:[0-9]+|[A-Za-z]{3}|\*|\?)"
_CRON_FIELD = re.compile(rf"^{_CRON_ATOM}(?:[,/\-]{_CRON_ATOM})*$")
CRON_FIELDS = ("second", "minute", "hour", "day of month", "month", "day of week")


def check_cron(expression: str) -> str:
    """A KFP cron expression: 6 fields, seconds first (robfig/cron), or a descriptor (@daily, @every 1h)."""
    text = " ".join(expression.split())
    if text.startswith("@"):
        return text
    fields = text.split(" ") if text else []
    if len(fields) == 5:
        raise KubeflowError(
            f"The cron {expression!r} has 5 fields; KFP's cron has 6, seconds first "
            f"({' '.join(CRON_FIELDS)}). Did you mean {'0 ' + text!r}?")
    if len(fields) != 6:
        raise KubeflowError(f"The cron {expression!r} has {len(fields)} fields; KFP's cron has 6, seconds first "
                            f"({' '.join(CRON_FIELDS)}), e.g. '0 0 3 * * *' for 03:00 every day.")
    for name, field in zip(CRON_FIELDS, fields):
        if not _CRON_FIELD.match(field):
            raise KubeflowError(f"The cron {expression!r}: the {name} field {field!r} is not a cron field "
                                "(numbers, 3-letter names like MON or JAN, * and ?, joined by , - /).")
    return text
