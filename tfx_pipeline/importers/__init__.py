"""Importers: real public datasets -> the canonical event log (``tfx_pipeline.eventlog``).

One module a dataset, one function each, all with the signature
``(src, out_dir, fmt) -> ImportResult``:

============  =============================  ================================================
name          module                         events
============  =============================  ================================================
taobao        ``importers.taobao``           pv -> click, buy -> buy, cart, fav; China-time days
amazon        ``importers.amazon``           each review -> click; position stands in for time
movielens     ``importers.movielens``        each rating -> click, rating >= 4 also -> buy
============  =============================  ================================================

Every importer streams its source, validates each row with ``validate_record``, writes good
events through ``LogWriter`` and bad rows as counted dead letters (good + bad = input rows),
and writes the manifest last. See ``docs/importers.md`` for the full semantics.
"""

from __future__ import annotations

from typing import Callable, Dict

from tfx_pipeline.eventlog.formats import FileFormat
from tfx_pipeline.importers.amazon import import_amazon
from tfx_pipeline.importers.base import ImporterError, ImportResult
from tfx_pipeline.importers.movielens import import_movielens
from tfx_pipeline.importers.taobao import import_taobao

Importer = Callable[[str, str, FileFormat], ImportResult]

IMPORTERS: Dict[str, Importer] = {
    "taobao": import_taobao,
    "amazon": import_amazon,
    "movielens": import_movielens,
}

def run_import(name: str, src: str, out_dir: str, fmt: FileFormat = FileFormat.CSV) -> ImportResult:
    """Runs the importer called `name`; an unknown name is an ImporterError listing the known ones."""
    try:
        importer = IMPORTERS[name]
    except KeyError:
        raise ImporterError(f"Unknown dataset {name!r}; expected one of {sorted(IMPORTERS)}.") from None
    return importer(src, out_dir, FileFormat(fmt))


__all__ = ["IMPORTERS", "ImporterError", "ImportResult", "run_import"]
