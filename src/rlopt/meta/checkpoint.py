"""Meta-training checkpoints: one directory per checkpoint, written atomically.

``<checkpoint_dir>/gen_000024/`` holds everything needed to continue after 24 completed
generations: the evosax state (``es_state.msgpack``), its mean as a flat float32 .npy in
the pretrained-file format (``mean.npy``), the best validated mean so far (``best.npy``),
the history rows so far (``history.parquet``) and ``checkpoint.json`` (config hash,
generation, best generation and score). A directory is assembled under a hidden temporary
name and renamed into place, so a run killed mid-write leaves no half checkpoint behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from flax import serialization

CHECKPOINT_PATTERN = re.compile(r"^gen_(\d{6})$")
META_FILE = "checkpoint.json"


class CheckpointMismatchError(ValueError):
    """A checkpoint directory holds a checkpoint of a different configuration."""


@dataclass
class Checkpoint:
    generation: int  # generations completed
    es_state: Any
    mean: np.ndarray
    best_mean: np.ndarray | None
    best_generation: int | None
    best_score: float
    history: pd.DataFrame


def checkpoint_path(directory: Path, generation: int) -> Path:
    return Path(directory) / f"gen_{generation:06d}"


def latest_checkpoint(directory: Path) -> Path | None:
    """The complete checkpoint with the most generations, or None."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = [
        (int(m.group(1)), p)
        for p in directory.iterdir()
        if (m := CHECKPOINT_PATTERN.match(p.name)) and (p / META_FILE).is_file()
    ]
    return max(found)[1] if found else None


def read_meta(path: Path) -> dict:
    return json.loads((Path(path) / META_FILE).read_text())


def check_config(directory: Path, config_hash: str) -> Path | None:
    """The latest checkpoint if it belongs to ``config_hash``; None if there is none."""
    path = latest_checkpoint(directory)
    if path is None:
        return None
    stored = read_meta(path).get("config_hash")
    if stored != config_hash:
        raise CheckpointMismatchError(
            f"checkpoint {path} belongs to another configuration (config hash {stored}, this run "
            f"{config_hash}); use another --checkpoint-dir or delete it"
        )
    return path


def save(directory: Path, checkpoint: Checkpoint, config_hash: str) -> Path:
    """Writes ``checkpoint`` under a temporary name, then renames it into place."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(directory, checkpoint.generation)
    tmp = directory / f".{final.name}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir()
    try:
        _write_file(tmp / "es_state.msgpack", serialization.to_bytes(checkpoint.es_state))
        _write_npy(tmp / "mean.npy", checkpoint.mean)
        if checkpoint.best_mean is not None:
            _write_npy(tmp / "best.npy", checkpoint.best_mean)
        checkpoint.history.to_parquet(tmp / "history.parquet", index=False)
        meta = {
            "config_hash": config_hash,
            "generation": checkpoint.generation,
            "best_generation": checkpoint.best_generation,
            "best_score": checkpoint.best_score,
        }
        _write_file(tmp / META_FILE, (json.dumps(meta, indent=2) + "\n").encode())
        if final.exists():  # only after a resumed run re-reaches the same generation
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load(path: Path, es_state_template: Any) -> Checkpoint:
    """Reads a checkpoint; ``es_state_template`` gives the state's structure and dtypes."""
    path = Path(path)
    meta = read_meta(path)
    es_state = serialization.from_bytes(es_state_template, (path / "es_state.msgpack").read_bytes())
    best_file = path / "best.npy"
    return Checkpoint(
        generation=int(meta["generation"]),
        es_state=es_state,
        mean=np.load(path / "mean.npy"),
        best_mean=np.load(best_file) if best_file.is_file() else None,
        best_generation=meta["best_generation"],
        best_score=float(meta["best_score"]),
        history=pd.read_parquet(path / "history.parquet"),
    )


def remove_stale_temporaries(directory: Path) -> None:
    """Half-written checkpoints of a killed run (only one run may use a directory)."""
    directory = Path(directory)
    if directory.is_dir():
        for tmp in directory.glob(".gen_*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_npy(path: Path, vector: np.ndarray) -> None:
    with open(path, "xb") as f:
        np.save(f, np.asarray(vector, np.float32))
        f.flush()
        os.fsync(f.fileno())


class BestValidated:
    """The meta-parameters with the best validation score so far (what a run tests with)."""

    def __init__(self, vector=None, generation=None, score=float("-inf")):
        self.vector, self.generation, self.score = vector, generation, score

    def offer(self, vector, generation: int, score: float) -> None:
        if score > self.score:  # NaN never wins; ties keep the earlier generation
            self.vector, self.generation, self.score = np.asarray(vector, np.float32).copy(), generation, score
