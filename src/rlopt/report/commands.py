"""``rlopt report tables|build``: LaTeX fragments from the result tables, then the PDF."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
from pathlib import Path

from rlopt.errors import UsageError
from rlopt.report.contents import TABLES_BY_OPTION, latex_declarations

# Fragment files that main.tex \input's (names are part of its contract).
PRESET_FRAGMENT = "preset.tex"
PATHS_FRAGMENT = "paths.tex"
CONTENTS_FRAGMENT = "contents.tex"
TABLE_FRAGMENTS = {option: Path(table.path).name for option, table in TABLES_BY_OPTION.items()}
TEX_INSTALL_HINT = "apt-get install -y --no-install-recommends texlive-latex-base texlive-latex-recommended latexmk"
LATEX_TIMEOUT_S = 600
BUILD_SUBDIR = "build"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="LaTeX fragments and the PDF report")
    actions = parser.add_subparsers(dest="action", required=True, metavar="<action>")

    tables = actions.add_parser("tables", help="write the LaTeX fragments main.tex inputs")
    tables.add_argument(
        "--meta",
        required=True,
        help="preset JSON (inline or a file): preset, description, total_steps, num_seeds, bootstrap_reps[, scale]",
    )
    tables.add_argument("--figures-dir", required=True, help="directory holding the figures (STEM.pdf)")
    tables.add_argument("--out-dir", required=True, help="where the fragments are written")
    tables.add_argument("--intervals", help="intervals table (parquet/CSV)")
    tables.add_argument("--poi", help="probability_of_improvement table (parquet/CSV)")
    tables.add_argument("--runtime", help="runtime table (parquet/CSV)")
    tables.add_argument("--sweeps", help="combined sweep table of `rlopt sweeps` (parquet/CSV)")
    tables.add_argument("--ablations", help="ablation intervals table of `rlopt ablation-stats` (parquet/CSV)")
    tables.add_argument("--deepsea", help="DeepSea intervals table of `rlopt deepsea-stats` (parquet/CSV)")
    tables.add_argument(
        "--collapse",
        nargs=2,
        metavar=("RATES", "INTERVALS"),
        help="rates and intervals tables of `rlopt collapse-stats`",
    )
    tables.add_argument("--nonstationary", help="intervals table of `rlopt nonstationary-stats`")
    tables.add_argument(
        "--transfer",
        nargs=2,
        metavar=("INTERVALS", "POI"),
        help="intervals and probability_of_improvement tables of the transfer study's `rlopt stats`",
    )
    tables.add_argument(
        "--metatuning",
        nargs=2,
        metavar=("SUMMARY", "VARIANCE"),
        help="summary and variance tables of `rlopt metatuning-stats`",
    )
    tables.add_argument("--benchmarks", nargs="+", metavar="TSV", help="Snakemake benchmark files "
                        "under benchmarks/<rule>/")  # fmt: skip
    tables.set_defaults(func=write_tables)

    build = actions.add_parser("build", help="compile the report with latexmk")
    build.add_argument("--tex", required=True, help="main .tex file (e.g. report/main.tex)")
    build.add_argument("--workdir", required=True, help="directory holding the fragments of `report tables`")
    build.add_argument("--out", required=True, help="where the PDF is copied (e.g. results/report.pdf)")
    build.set_defaults(func=build_report)


# --------------------------------------------------------------------------- tables


def write_tables(args: argparse.Namespace) -> int:
    from rlopt.plots.commands import read_table
    from rlopt.report import latex

    out_dir = Path(args.out_dir)
    try:
        fragments = {
            PRESET_FRAGMENT: latex.preset_fragment(_read_meta(args.meta)),
            PATHS_FRAGMENT: latex.paths_fragment(args.figures_dir),
            CONTENTS_FRAGMENT: latex_declarations(),
        }
        table_makers = {
            "intervals": lambda path: latex.intervals_fragment(read_table(path)),
            "poi": lambda path: latex.poi_fragment(read_table(path)),
            "runtime": lambda path: latex.runtime_fragment(read_table(path)),
            "sweeps": lambda path: latex.tuning_fragment(read_table(path)),
            "ablations": lambda path: latex.ablations_fragment(read_table(path)),
            "deepsea": lambda path: latex.deepsea_fragment(read_table(path)),
            "collapse": lambda paths: latex.collapse_fragment(read_table(paths[0]), read_table(paths[1])),
            "nonstationary": lambda path: latex.nonstationary_fragment(read_table(path)),
            "transfer": lambda paths: latex.transfer_fragment(read_table(paths[0]), read_table(paths[1])),
            "metatuning": lambda paths: latex.metatuning_fragment(read_table(paths[0]), read_table(paths[1])),
            "benchmarks": lambda paths: latex.cost_fragment(latex.summarise_cost(latex.read_benchmarks(paths))),
        }
        for option, make in table_makers.items():
            source = getattr(args, option)
            if source:
                fragments[TABLE_FRAGMENTS[option]] = make(source)
    except latex.ReportInputError as err:
        raise UsageError(str(err)) from err

    for name, text in fragments.items():
        latex.write_text_atomic(text, out_dir / name)
        print(out_dir / name)
    # A table left over from an earlier run would describe other data; main.tex shows a
    # "not run" note for absent ones instead.
    for name in set(TABLE_FRAGMENTS.values()) - set(fragments):
        (out_dir / name).unlink(missing_ok=True)
    return 0


def _read_meta(text: str) -> dict:
    """The preset description: inline JSON (as the workflow passes it) or a JSON file."""
    from rlopt.commands.common import parse_json_object

    return parse_json_object(text if text.lstrip().startswith("{") else f"@{text}", "--meta")


# --------------------------------------------------------------------------- build


def build_report(args: argparse.Namespace) -> int:
    from rlopt.io import write_atomic

    missing = [tool for tool in ("latexmk", "pdflatex") if shutil.which(tool) is None]
    if missing:
        raise UsageError(f"{' and '.join(missing)} not found on PATH; install TeX Live: {TEX_INSTALL_HINT}")
    tex = Path(args.tex).resolve()
    workdir = Path(args.workdir).resolve()
    if not tex.is_file():
        raise UsageError(f"{args.tex}: no such file")
    if not workdir.is_dir():
        raise UsageError(f"{args.workdir}: no such directory (run `rlopt report tables` first)")

    pdf = run_latexmk(tex, workdir)
    write_atomic(args.out, lambda f: f.write(pdf.read_bytes()))
    print(args.out)
    return 0


def run_latexmk(tex: Path, workdir: Path) -> Path:
    """Compile ``tex`` in a fresh ``workdir/build``; fragments are found through TEXINPUTS."""
    build_dir = workdir / BUILD_SUBDIR
    shutil.rmtree(build_dir, ignore_errors=True)  # no stale .aux from another preset's run
    build_dir.mkdir(parents=True)
    # Trailing separator: keep TeX's default search path after ours.
    env = {**os.environ, "TEXINPUTS": os.pathsep.join([str(workdir), str(tex.parent), ""])}
    command = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
               f"-outdir={build_dir}", str(tex)]  # fmt: skip
    try:
        result = subprocess.run(command, cwd=build_dir, env=env, capture_output=True, text=True,
                                timeout=LATEX_TIMEOUT_S)  # fmt: skip
    except subprocess.TimeoutExpired as err:
        raise UsageError(f"latexmk did not finish within {LATEX_TIMEOUT_S} s; see {build_dir}") from err
    log = build_dir / f"{tex.stem}.log"
    pdf = build_dir / f"{tex.stem}.pdf"
    if result.returncode != 0 or not pdf.is_file():
        raise UsageError(f"LaTeX build failed: {first_latex_error(log, result.stdout + result.stderr)}; "
                         f"full log: {log}")  # fmt: skip
    return pdf


def first_latex_error(log: Path, output: str) -> str:
    """The first error line of the LaTeX log (file:line: message or '! message')."""
    text = log.read_text(errors="replace") if log.is_file() else output
    match = re.search(r"^(?:!.*|.*:\d+: .*)$", text, flags=re.MULTILINE)
    return match.group(0).strip() if match else "no error line in the log"
