"""``rlopt weights``: the OPEN authors' pretrained optimizers, checksum-verified.

Copies them from a local folder when ``--from`` or ``RLOPT_OPEN_PRETRAINED_DIR`` names
one (machines without internet access, CI), and downloads them from the authors'
repository at the pinned commit otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from rlopt.errors import UsageError

LOCAL_DIR_VARIABLE = "RLOPT_OPEN_PRETRAINED_DIR"


def register(subparsers) -> None:
    parser = subparsers.add_parser("weights", help="fetch and verify the OPEN authors' pretrained optimizers")
    parser.add_argument("--names", nargs="+", required=True, help="e.g. breakout multi (files NAME_OPEN.npy)")
    parser.add_argument("--dest", required=True, type=Path, help="folder to put the verified files in")
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        help=f"local folder with the files (default: ${LOCAL_DIR_VARIABLE}, else download)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rlopt.optimizers.pretrained import (
        PRETRAINED_NAMES,
        DownloadError,
        PretrainedWeightsError,
        download_pretrained,
        file_name,
        verify_pretrained_dir,
    )

    unknown = sorted(set(args.names) - set(PRETRAINED_NAMES))
    if unknown:
        raise UsageError(f"--names: unknown pretrained optimizer(s) {unknown}; valid: {list(PRETRAINED_NAMES)}")
    names = tuple(args.names)
    source = args.source or (Path(os.environ[LOCAL_DIR_VARIABLE]) if os.environ.get(LOCAL_DIR_VARIABLE) else None)
    try:
        if source is None:
            try:
                paths = download_pretrained(args.dest, names)
            except DownloadError as err:
                files = ", ".join(map(file_name, names))
                raise UsageError(
                    f"{err}; without internet access, copy the files ({files}) into a folder and "
                    f"set {LOCAL_DIR_VARIABLE}=FOLDER (or pass --from FOLDER)"
                )
        else:
            verify_pretrained_dir(source, names)
            args.dest.mkdir(parents=True, exist_ok=True)
            for name in names:
                shutil.copyfile(source / file_name(name), args.dest / file_name(name))
            paths = verify_pretrained_dir(args.dest, names)
    except PretrainedWeightsError as err:
        raise UsageError(str(err))
    origin = f"copied from {source}" if source else "downloaded"
    print(
        f"{len(paths)} pretrained OPEN optimizer(s) {origin}, SHA-256 verified, in {args.dest} "
        f"(Goldie et al., Apache-2.0)"
    )
    return 0
