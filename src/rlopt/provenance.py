"""What produced a result: code version, libraries, configuration, machine."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

LIBRARIES = ("jax", "jaxlib", "flax", "optax", "gymnax", "brax", "evosax", "rliable", "numpy", "pandas")
PACKAGE_ROOT = Path(__file__).resolve().parent


def config_hash(config: dict) -> str:
    canonical = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def code_hash() -> str:
    """SHA-256 over the library's Python sources; Snakemake rules use it as a rerun trigger."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_ROOT.rglob("*")):
        if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(PACKAGE_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def library_versions() -> dict:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(config: dict) -> dict:
    import jax

    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_sha": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "code_hash": code_hash(),
        "library_versions": library_versions(),
        "config_hash": config_hash(config),
        "device": str(jax.devices()[0]),
        "python": platform.python_version(),
        "command": sys.argv,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
