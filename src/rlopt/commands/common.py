"""Argument parsing helpers shared by the CLI stages."""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from pathlib import Path

from rlopt.errors import UsageError

# JAX counts in 32-bit integers (x64 is off): seeds, step and update counters must fit.
INT32_MAX = 2**31 - 1


def parse_seeds(text: str) -> list[int]:
    """'0:16' (half-open range), '3' or '0,1,5' -> unique ints in [0, 2**31)."""
    text = text.strip()
    try:
        if ":" in text:
            start, stop = (int(part) for part in text.split(":"))
            seeds = range(start, stop)  # bounds checked before it is listed
        else:
            seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--seeds: malformed seed list {text!r}; use 'START:STOP' or comma-separated integers")
    if not seeds:
        raise UsageError(f"--seeds: {text!r} selects no seeds")
    lowest, highest = (seeds[0], seeds[-1]) if isinstance(seeds, range) else (min(seeds), max(seeds))
    if lowest < 0:
        raise UsageError(f"--seeds: seeds must be non-negative, got {text!r}")
    if highest > INT32_MAX:
        raise UsageError(f"--seeds: seeds must be at most {INT32_MAX} (JAX's 32-bit seeds), got {text!r}")
    if not isinstance(seeds, range) and len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds: duplicate seeds in {text!r}")
    return list(seeds)


def parse_positive_int(text: str, option: str, maximum: int | None = None) -> int:
    """Accepts '1e7' and '10000000'; rejects non-integral, non-positive and too large values."""
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{option}: expected a positive integer, got {text!r}")
    if not math.isfinite(value) or value <= 0 or value != int(value):
        raise UsageError(f"{option}: expected a positive integer, got {text!r}")
    if maximum is not None and value > maximum:
        raise UsageError(f"{option}: at most {maximum:,} is supported, got {text!r}")
    return int(value)


def parse_json_object(text: str, option: str) -> dict:
    """A JSON object given inline or as '@path/to/file.json'."""
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise UsageError(f"{option}: file {path} does not exist")
        text = path.read_text()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"{option}: malformed JSON ({err.msg} at position {err.pos}): {text!r}")
    if not isinstance(value, dict):
        raise UsageError(f"{option}: expected a JSON object, got {text!r}")
    return value


def output_dir(text: str) -> Path:
    """argparse type of --out: a folder name; an empty one would mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path; name the folder to write to")
    return Path(text)


def prepare_output_dir(path: Path, option: str = "--out") -> None:
    """Creates ``path`` and checks that files can be written there, before any compile."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except FileExistsError:
        raise UsageError(f"{option}: {path} exists and is not a directory")
    except OSError as err:
        raise UsageError(f"{option}: cannot write to {path}: {err.strerror or err}")


def enable_compilation_cache() -> None:
    """Persistent XLA cache: repeated jobs of the same shape skip most of the compile."""
    import jax

    cache_dir = os.environ.get("RLOPT_JAX_CACHE_DIR", str(Path.home() / ".cache" / "rlopt" / "jax"))
    if cache_dir:
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def add_cpu_devices_argument(parser) -> None:
    parser.add_argument(
        "--cpu-devices",
        default="1",
        help="on a CPU: split it into this many XLA devices and shard the block over "
        "them (use up to the number of cores; ignored on a GPU)",
    )


def configure_cpu_devices(args) -> int:
    """Applies --cpu-devices; must run before anything starts JAX."""
    from rlopt.training import configure_cpu_devices as configure

    count = parse_positive_int(args.cpu_devices, "--cpu-devices")
    configure(count)
    return count
