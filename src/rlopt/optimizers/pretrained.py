"""The OPEN authors' pretrained meta-parameters: pinned source, checksums and download.

The seven files are the work of Goldie et al. ("Can Learned Optimization Make
Reinforcement Learning Less Difficult?", NeurIPS 2024), published in their repository
AlexGoldie/rl-learned-optimization under the Apache License 2.0. rlopt does not ship them;
it downloads them from that repository at a pinned commit and checks their SHA-256 sums.
Load a verified file with :func:`rlopt.optimizers.open_settings.load_weights`.
"""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import Callable
from pathlib import Path

from rlopt.io import write_atomic

REPOSITORY = "AlexGoldie/rl-learned-optimization"
# The commit that added the files; they are byte-identical at b65037bd (HEAD, Dec 2025).
COMMIT = "0e847c55a3d0230b0bb713c16b25e82774d40bf0"
FOLDER = "rl_optimizer/pretrained"
LICENSE = "Apache-2.0"

# name -> SHA-256 of f"{name}_OPEN.npy"
SHA256 = {
    "ant": "e1901cafe323d1c5619b84e5178b3075c95a7cde920777e2c15e58c812c3e725",
    "asterix": "55d96c80dca70e4a308352798daec00fc962d7a3faacc24f612e1b437c1893aa",
    "breakout": "d7f0876c78736a0e354f8837e2a549dc7f45ff4d01f952ba9d547d8afc6f7926",
    "freeway": "97ea3f8f9a6e34523dd50c138a1538b33fbd2b1c3a5ee05a31014460825ea9f0",
    "gridworld": "16ebb93a79adbcbfdb3e6019986109ee374764cb9cc8b0ad65f69bdcaedd9bb5",
    "multi": "9ba2dea70b0b308a365516dab092808b7b9211c70072bca934d83affaee5f60c",
    "spaceinvaders": "42845f4c0b6b460789afffb1788f806e676b27acafa0febf34e86bd63d3e362f",
}
PRETRAINED_NAMES = tuple(SHA256)


class PretrainedWeightsError(RuntimeError):
    """A pretrained file is missing, corrupt or could not be downloaded."""


class DownloadError(PretrainedWeightsError):
    """The files could not be fetched (no network, server error)."""


def file_name(name: str) -> str:
    if name not in SHA256:
        raise PretrainedWeightsError(
            f"no pretrained OPEN optimizer named {name!r}; choose from {list(PRETRAINED_NAMES)}"
        )
    return f"{name}_OPEN.npy"


def source_url(name: str) -> str:
    return f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/{FOLDER}/{file_name(name)}"


def _where_to_get_them() -> str:
    return (
        f"get them with rlopt.optimizers.pretrained.download_pretrained(DIR), or by hand from "
        f"https://github.com/{REPOSITORY}/tree/{COMMIT}/{FOLDER} ({LICENSE})"
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _problem(directory: Path, name: str) -> str | None:
    """Why the file for ``name`` in ``directory`` is unusable, or None if it is fine."""
    path = directory / file_name(name)
    if not path.is_file():
        return f"{path} is missing"
    actual = _sha256(path.read_bytes())
    if actual != SHA256[name]:
        return f"{path} has SHA-256 {actual}, expected {SHA256[name]}"
    return None


def verify_if_pretrained(path: str | Path) -> None:
    """A file named like one of the authors' (``breakout_OPEN.npy``) must be their file."""
    path = Path(path)
    name = path.name.removesuffix("_OPEN.npy")
    if name not in SHA256 or path.name != file_name(name):
        return
    problem = _problem(path.parent, name)
    if problem:
        raise PretrainedWeightsError(
            f"{problem}: named like the authors' pretrained '{name}' optimizer but not "
            f"their file; {_where_to_get_them()}"
        )


def verify_pretrained_dir(directory: str | Path, names: tuple[str, ...] = PRETRAINED_NAMES) -> dict[str, Path]:
    """Checks the files for ``names`` against the pinned sums; returns name -> path."""
    directory = Path(directory)
    problems = [p for p in (_problem(directory, name) for name in names) if p]
    if problems:
        raise PretrainedWeightsError(
            "pretrained OPEN weights are not usable:\n  " + "\n  ".join(problems) + "\n" + _where_to_get_them()
        )
    return {name: directory / file_name(name) for name in names}


def pretrained_path(directory: str | Path, name: str) -> Path:
    """The verified path of one pretrained optimizer, e.g. ``pretrained_path(d, "breakout")``."""
    return verify_pretrained_dir(directory, (name,))[name]


def download_pretrained(
    dest_dir: str | Path,
    names: tuple[str, ...] = PRETRAINED_NAMES,
    opener: Callable = urllib.request.urlopen,
    timeout_s: float = 60.0,
) -> dict[str, Path]:
    """Fetches the files for ``names`` from the pinned commit into ``dest_dir``.

    Files already present with the right checksum are kept. Downloaded bytes are checked
    before anything is written. ``opener(url, timeout=...)`` must return a context manager
    with ``read()`` (``urllib.request.urlopen``; tests pass a fake).
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        if _problem(dest_dir, name) is None:
            continue
        url = source_url(name)
        try:
            with opener(url, timeout=timeout_s) as response:
                data = response.read()
        except OSError as err:  # urllib's URLError/HTTPError are OSErrors
            reason = getattr(err, "reason", None) or err  # URLError: the cause without its wrapper
            raise DownloadError(f"could not download {url} ({reason})") from err
        if _sha256(data) != SHA256[name]:
            raise PretrainedWeightsError(
                f"downloaded {url} has SHA-256 {_sha256(data)}, expected {SHA256[name]}; nothing was written"
            )
        write_atomic(dest_dir / file_name(name), lambda f: f.write(data))  # noqa: B023 (called at once)
    return verify_pretrained_dir(dest_dir, names)
