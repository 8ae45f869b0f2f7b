"""Atomic writers for result files.

A Snakemake job that dies half-way must not leave a truncated parquet/JSON file that a
later run mistakes for a finished output, so every writer goes through a temporary file
in the target's directory (same filesystem, hence an atomic ``os.replace``).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pandas as pd


def write_parquet_atomic(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` (without its index) to ``path`` as parquet, atomically."""
    return write_atomic(path, lambda f: df.to_parquet(f, index=False))


def write_json_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON to ``path``, atomically.

    Non-finite floats are written as ``NaN``/``Infinity`` (Python's ``json`` reads them back),
    because final returns of runs without any finished episode are NaN by definition.
    """
    text = json.dumps(obj, indent=2) + "\n"
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name rather than mkstemp: mkstemp creates mode 0600, while a plain open
    # honours the umask like any other output file.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
