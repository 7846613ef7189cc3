"""Beam pipeline arguments for the DirectRunner, used where a caller passes none.

Bigger runs pass their own (``--runner=DataflowRunner`` ..., see README "Beam runners").
"""

from __future__ import annotations

from typing import List


def default_beam_args(workers: int = 2) -> List[str]:
    """DirectRunner in multi-processing mode on `workers` processes (one per core)."""
    return [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        f"--direct_num_workers={workers}",
    ]


def in_memory() -> List[str]:
    """DirectRunner inside the calling process: small runs where worker start-up would dominate."""
    return ["--runner=DirectRunner", "--direct_running_mode=in_memory"]
