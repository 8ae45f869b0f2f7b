"""What produced a result: code version, libraries, configuration, machine."""

from __future__ import annotations

import ast
import hashlib
import json
import os
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


def _source_files(entry: str = "") -> list[Path]:
    root = PACKAGE_ROOT / entry
    paths = [root] if root.is_file() else sorted(root.rglob("*"))
    return [p for p in paths if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts]


def _hash_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(PACKAGE_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def code_hash() -> str:
    """SHA-256 over all of the library's sources (recorded in every result's provenance)."""
    return _hash_files(_source_files())


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
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),  # None outside SLURM
        "python": platform.python_version(),
        "command": sys.argv,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# Snakemake does not track imported modules, so each job carries a hash of the library
# sources it runs: the transitive closure of the rlopt modules its command imports
# (anywhere in the module, lazy imports included), computed from the import graph.
# Optimizer modules are left out of a command's closure and hashed per optimizer, so
# editing OPEN reruns OPEN's jobs and not Adam's. A docstring-only edit changes the hash
# too (the hash is over the source text).
COMMANDS = {
    "train": "rlopt.commands.train",
    "metatrain": "rlopt.commands.metatrain",
    "select": "rlopt.commands.select",
    "weights": "rlopt.commands.weights",
    "stats": "rlopt.analysis.commands",
    "plots": "rlopt.plots.commands",
    "report": "rlopt.report.commands",
}
_CONTRACT_MODULES = ("rlopt.optimizers", "rlopt.optimizers.base", "rlopt.optimizers.learned")


def _module_file(module: str) -> Path | None:
    parts = module.split(".")[1:]
    package = PACKAGE_ROOT.joinpath(*parts, "__init__.py")
    plain = PACKAGE_ROOT.joinpath(*parts).with_suffix(".py") if parts else package
    return next((path for path in (plain, package) if path.is_file()), None)


def _imported_modules(path: Path) -> set[str]:
    """The rlopt modules ``path`` imports (``from rlopt.x import y`` counts rlopt.x.y if it is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] == "rlopt" and _module_file(name))
    return found


def _is_optimizer_module(module: str) -> bool:
    return module.startswith("rlopt.optimizers.") and module not in _CONTRACT_MODULES


def _part_of(name: str, module: str) -> bool:
    """``name`` is ``module`` or its settings (``<module>_settings``: what the optimizer
    registry imports of it without JAX), which are hashed with it."""
    return name in (module, f"{module}_settings")


def module_closure(module: str, stop_at_optimizers: bool = True) -> list[Path]:
    """Source files of ``module`` and every rlopt module it imports, transitively, with the
    YAML data files of their packages; optimizer modules other than ``module`` and its
    settings excluded."""
    seen, pending = set(), [module]
    while pending:
        name = pending.pop()
        if name in seen or (stop_at_optimizers and not _part_of(name, module) and _is_optimizer_module(name)):
            continue
        seen.add(name)
        pending.extend(_imported_modules(_module_file(name)))
        parents = name.split(".")
        pending.extend(".".join(parents[:i]) for i in range(2, len(parents)))  # importing a.b.c runs a.b
    files = {_module_file(name) for name in seen}
    files |= {data for path in list(files) for data in path.parent.glob("*.yaml")}
    return sorted(files)


def command_code_hash(command: str) -> str:
    return _hash_files(module_closure(COMMANDS[command]))


def optimizer_code_hash(module: str) -> str:
    """Hash of the module defining an optimizer and what it imports besides the commands'."""
    return _hash_files(module_closure(module))
