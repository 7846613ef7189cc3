"""What the benchmarks share: a canonical log ingested and transformed into a work folder.

Layout under ``work``: ``log/`` (the canonical log the benchmark writes first),
``ingest/examples`` and ``ingest/dead`` (ingest's examples and dead letters), ``transform/``
(Transform's graph and transformed examples). A later run can reuse the folder.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Tuple


def paths(work: str) -> Dict[str, str]:
    """graph, transformed and raw (ingest's examples) under `work`."""
    return {"graph": os.path.join(work, "transform", "transform_graph"),
            "transformed": os.path.join(work, "transform", "transformed_examples"),
            "raw": os.path.join(work, "ingest", "examples")}


def is_prepared(work: str) -> bool:
    return os.path.exists(paths(work)["graph"])


def ingest_and_transform(work: str, ingest_config) -> Tuple[Dict[str, str], Dict[str, Any]]:
    """Ingests ``work/log`` with `ingest_config` and runs Transform; (paths, ingest report)."""
    from tfx_pipeline.beam_args import in_memory
    from tfx_pipeline.ingest import pipeline as ingest
    from transforms.preprocessing import TransformSettings
    from transforms.run import run_transform

    outputs = ingest.IngestOutputs(os.path.join(work, "ingest", "examples"), os.path.join(work, "ingest", "dead"))
    report = ingest.run_ingest(os.path.join(work, "log"), outputs, ingest_config, in_memory())
    run_transform(outputs.examples_dir, os.path.join(work, "transform"),
                  TransformSettings(max_history=ingest_config.max_history), beam_args=in_memory())
    return paths(work), report
