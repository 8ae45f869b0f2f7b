"""``rlopt collect``, ``stats``, ``reference-returns``, ``ablation-stats``, ``deepsea-stats``,
``collapse-stats``, ``nonstationary-stats`` and ``metatuning-stats``: the analysis stages."""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from rlopt.commands.common import parse_json_object
from rlopt.errors import UsageError

if TYPE_CHECKING:
    from rlopt.analysis.stats import StatsResult

STATS_LIBRARIES = ("rlopt", "rliable", "arch", "numpy", "scipy", "pandas", "pyarrow")


def register(subparsers: argparse._SubParsersAction) -> None:
    collect = subparsers.add_parser(
        "collect",
        help="stack training-run directories into the collected tables",
        description="Write final_returns.parquet, curves.parquet, runtime.parquet and updates.parquet.",
    )
    collect.add_argument(
        "--runs",
        nargs="+",
        required=True,
        type=Path,
        metavar="DIR",
        help="training-run directories (each with summary.json, returns.parquet, updates.parquet)",
    )
    collect.add_argument("--out-dir", required=True, type=Path)
    collect.set_defaults(func=run_collect)

    stats = subparsers.add_parser(
        "stats",
        help="rliable interval estimates, improvement probabilities, profiles",
        description="Write intervals.parquet, probability_of_improvement.parquet, "
        "performance_profile.parquet and stats.json.",
    )
    stats.add_argument("--final-returns", required=True, type=Path, metavar="FILE")
    stats.add_argument(
        "--reference",
        required=True,
        metavar="LABEL",
        help="label that normalises scores and that improvements are measured over",
    )
    stats.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    stats.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    stats.add_argument(
        "--taus",
        default="0:2:41",
        metavar="START:STOP:NUM",
        help="performance-profile thresholds, NUM evenly spaced (default 0:2:41)",
    )
    stats.add_argument("--labels", nargs="+", metavar="LABEL", help="only these labels (default: all)")
    stats.add_argument("--envs", nargs="+", metavar="ENV", help="only these envs (default: all)")
    stats.add_argument("--out-dir", required=True, type=Path)
    stats.set_defaults(func=run_stats)

    reference = subparsers.add_parser(
        "reference-returns", help="mean final return of one label per env (multi-task ES normaliser)"
    )
    reference.add_argument(
        "--runs",
        nargs="+",
        required=True,
        type=Path,
        metavar="DIR",
        help="evaluation run directories of the reference label",
    )
    reference.add_argument(
        "--estimator",
        choices=("window", "last_episode"),
        default="window",
        help="final-return estimator, as the meta-training's ES return_estimator (default window)",
    )
    reference.add_argument("--out", required=True, type=Path, help="JSON {env: return} to write")
    reference.set_defaults(func=run_reference_returns)

    ablations = subparsers.add_parser(
        "ablation-stats",
        help="OPEN's Fig. 5: IQM of final return and IQR dormancy per ablation variant",
        description="Write runs.parquet (one row per variant, trained optimizer and seed), "
        "intervals.parquet and stats.json.",
    )
    ablations.add_argument(
        "--runs",
        nargs="+",
        required=True,
        type=Path,
        metavar="DIR",
        help="evaluation run directories, one per trained optimizer; the variant is "
        "the run's label, the trained optimizer its folder name",
    )
    ablations.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    ablations.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    ablations.add_argument("--out-dir", required=True, type=Path)
    ablations.set_defaults(func=run_ablation_stats)

    deepsea = subparsers.add_parser(
        "deepsea-stats",
        help="OPEN's Fig. 6 / 17: IQM of final return per DeepSea size and variant",
        description="Write runs.parquet (one row per variant, size and seed), intervals.parquet "
        "(IQM per variant and size), gains.parquet (learned noise minus none, per architecture "
        "and size), randomness.parquet (the noise OPEN applied per update, variants with "
        "learned noise), designs.parquet (each design run minus its variant, per size) and stats.json.",
    )
    deepsea.add_argument(
        "--runs",
        nargs="+",
        required=True,
        type=Path,
        metavar="DIR",
        help="DeepSea evaluation run directories of OPEN, one per (variant, size); the "
        "variant is the run's label, the size its env option 'size'",
    )
    deepsea.add_argument(
        "--designs",
        nargs="*",
        default=[],
        metavar="DESIGN=VARIANT",
        help="labels among --runs that are VARIANT with one design choice changed (the preset's "
        "deepsea.designs); compared with their variant, left out of the variants' tables",
    )
    deepsea.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    deepsea.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    deepsea.add_argument("--out-dir", required=True, type=Path)
    deepsea.set_defaults(func=run_deepsea_stats)

    collapse = subparsers.add_parser(
        "collapse-stats",
        help="policy collapse per arm: detector verdicts, collapse rates, IQMs, update sizes",
        description="Write seeds.parquet (verdict per seed), rates.parquet (collapse rate with a Clopper-Pearson "
        "interval per arm and drop threshold), intervals.parquet (IQM with bootstrap CI of final and peak "
        "score, drop and drawdown), curves.parquet, iqm_curves.parquet, update_sizes.parquet and stats.json.",
    )
    _add_study_arguments(collapse)
    collapse.add_argument(
        "--reference", required=True, metavar="LABEL", help="arm whose final-return IQM is the reference return R_ref"
    )
    collapse.add_argument(
        "--detector",
        default="{}",
        help="detector settings as JSON: window, learned_fraction, drop, persistence, "
        "final_fraction (rlopt.analysis.collapse) and points (curve bins, default 100)",
    )
    collapse.set_defaults(func=run_collapse_stats)

    nonstationary = subparsers.add_parser(
        "nonstationary-stats",
        help="non-stationary dynamics: stream return, end-of-segment return, recovery",
        description="Write seeds.parquet (stream return), segments.parquet (end-of-segment return and recovery "
        "time per seed and segment), intervals.parquet, curves.parquet, update_sizes.parquet and stats.json.",
    )
    _add_study_arguments(nonstationary)
    nonstationary.add_argument("--window", type=int, default=5, help="trailing-mean width in updates (default 5)")
    nonstationary.add_argument(
        "--final-fraction", type=float, default=0.1, help="end of a segment, as a fraction of it (default 0.1)"
    )
    nonstationary.set_defaults(func=run_nonstationary_stats)

    metatuning = subparsers.add_parser(
        "metatuning-stats",
        help="meta-tuning: every cell of a learned optimizer's meta-hyperparameter grid against a baseline grid",
        description="Write seeds.parquet (final return per cell, seed and role), cells.parquet (IQM per cell "
        "and seed set; on the report seeds the difference from, and probability of improving on, the baseline "
        "cell chosen on the selection seeds), summary.parquet, expected_max.parquet, variance.parquet, "
        "histories.parquet and stats.json (rlopt.analysis.metatuning).",
    )
    metatuning.add_argument(
        "--cells",
        required=True,
        help="JSON (inline, or @FILE): {axes: [row, column], cells: [{cell, kind, variant, settings, meta_seed, "
        "run, history}]}, as rlopt.workflow_config.Plan.metatuning_cells_json writes it",
    )
    metatuning.add_argument(
        "--selection-seeds", required=True, help="seeds a cell is chosen on ('START:STOP' or a,b,c)"
    )
    metatuning.add_argument("--report-seeds", required=True, help="seeds the reported scores come from")
    metatuning.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    metatuning.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    metatuning.add_argument("--out-dir", required=True, type=Path)
    metatuning.set_defaults(func=run_metatuning_stats)


def _add_study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs",
        nargs="+",
        required=True,
        type=Path,
        metavar="DIR",
        help="rlopt train run directories; the arm is the run's label (non-stationary runs: "
        "the schedule is the name of the folder holding the run)",
    )
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--out-dir", required=True, type=Path)


def run_collapse_stats(args: argparse.Namespace) -> int:
    _check_reps(args)
    from rlopt.analysis.collapse import CollapseInputError, CollapseThresholds
    from rlopt.analysis.stats import Bootstrap
    from rlopt.analysis.studies import StudyInputError, collapse_study, read_runs
    from rlopt.runs import InvalidRunError

    settings = parse_json_object(args.detector, "--detector")
    points = settings.pop("points", 100)
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise UsageError(f"--detector: points must be an integer >= 2, got {points!r}")
    try:
        thresholds = CollapseThresholds(**settings)
        tables = collapse_study(
            read_runs(args.runs), args.reference, thresholds, points, Bootstrap(args.reps, args.seed)
        )
    except TypeError as err:
        raise UsageError(f"--detector: {err}") from err
    except (CollapseInputError, StudyInputError, InvalidRunError) as err:
        raise UsageError(str(err)) from err
    _write_study_tables(
        args,
        {
            "seeds": tables.seeds,
            "rates": tables.rates,
            "intervals": tables.intervals,
            "curves": tables.curves,
            "iqm_curves": tables.iqm_curves,
            "update_sizes": tables.update_sizes,
        },
        "rliable stratified bootstrap over seeds, percentile intervals; collapse rates: Clopper-Pearson",
        extra={"detector": {**thresholds.to_dict(), "points": points}, **tables.anchors},
    )
    for row in tables.rates[tables.rates["configured"]].itertuples():
        print(
            f"{row.label:>20}: collapsed {row.collapsed}/{row.num_seeds} [{row.ci_low:.2f}, {row.ci_high:.2f}], "
            f"failed to learn {row.failed}"
        )
    return 0


def run_nonstationary_stats(args: argparse.Namespace) -> int:
    _check_reps(args)
    from rlopt.analysis.stats import Bootstrap
    from rlopt.analysis.studies import StudyInputError, nonstationary_study, read_runs
    from rlopt.runs import InvalidRunError

    if args.window < 1 or not 0 < args.final_fraction <= 1:
        raise UsageError("--window must be >= 1 and --final-fraction in (0, 1]")
    try:
        tables = nonstationary_study(
            read_runs(args.runs), args.window, args.final_fraction, Bootstrap(args.reps, args.seed)
        )
    except (StudyInputError, InvalidRunError) as err:
        raise UsageError(str(err)) from err
    _write_study_tables(
        args,
        {
            "seeds": tables.seeds,
            "segments": tables.segments,
            "intervals": tables.intervals,
            "curves": tables.curves,
            "update_sizes": tables.update_sizes,
        },
        "rliable stratified bootstrap over seeds, percentile intervals",
        extra={"window": args.window, "final_fraction": args.final_fraction},
    )
    for row in tables.intervals[tables.intervals["metric"] == "stream_return"].itertuples():
        print(
            f"{row.schedule:>12} {row.label:>20}: stream IQM {row.estimate:.3g} [{row.ci_low:.3g}, {row.ci_high:.3g}]"
        )
    return 0


def run_metatuning_stats(args: argparse.Namespace) -> int:
    _check_reps(args)
    from rlopt.analysis.metatuning import metatuning_study, read_cells, read_histories
    from rlopt.analysis.stats import Bootstrap
    from rlopt.analysis.studies import StudyInputError
    from rlopt.runs import InvalidRunError

    spec = parse_json_object(args.cells, "--cells")
    if not isinstance(spec.get("axes"), list) or len(spec["axes"]) != 2 or not isinstance(spec.get("cells"), list):
        raise UsageError("--cells: needs 'axes' (two metagrad settings) and a list 'cells'")
    selection = _seeds_option(args.selection_seeds, "--selection-seeds")
    report = _seeds_option(args.report_seeds, "--report-seeds")
    try:
        seeds = read_cells(spec, selection, report)
        tables = metatuning_study(seeds, read_histories(spec), spec["axes"], Bootstrap(args.reps, args.seed))
    except KeyError as err:
        raise UsageError(f"--cells: a cell lacks the entry {err}") from err
    except (StudyInputError, InvalidRunError) as err:
        raise UsageError(str(err)) from err
    args.runs = [cell["run"] for cell in spec["cells"]]
    _write_study_tables(
        args,
        {
            name: getattr(tables, name)
            for name in ("seeds", "cells", "summary", "expected_max", "variance", "histories")
        },
        "rliable stratified bootstrap over seeds, percentile intervals; fraction of cells: Clopper-Pearson",
        extra={
            "axes": spec["axes"],
            "selection_seeds": selection,
            "report_seeds": report,
            "tuned_baseline": tables.tuned_baseline,
        },  # fmt: skip
    )
    for row in tables.summary.itertuples():
        print(f"{row.kind:>8} {row.metric:>32}: {row.estimate:.4g} {row.cell or ''}")
    return 0


def _seeds_option(text: str, option: str) -> list[int]:
    from rlopt.commands.common import parse_seeds

    try:
        return parse_seeds(text)
    except UsageError as err:
        raise UsageError(str(err).replace("--seeds", option, 1)) from err


def _check_reps(args: argparse.Namespace) -> None:
    if args.reps < 1:
        raise UsageError(f"--reps must be at least 1, got {args.reps}")


def _write_study_tables(args: argparse.Namespace, tables: dict, bootstrap: str, extra: dict | None = None) -> None:
    """Each table as ``<name>.parquet`` in --out-dir, then stats.json (provenance)."""
    from rlopt.io import write_json_atomic, write_parquet_atomic

    for name, table in tables.items():
        write_parquet_atomic(table, args.out_dir / f"{name}.parquet")
    provenance = {
        "runs": [str(r) for r in args.runs],
        "reps": args.reps,
        "seed": args.seed,
        "bootstrap": bootstrap,
        "library_versions": _library_versions(),
        "python": platform.python_version(),
        "command": sys.argv,
        **(extra or {}),
    }
    write_json_atomic(provenance, args.out_dir / "stats.json")


def run_ablation_stats(args: argparse.Namespace) -> int:
    _check_reps(args)
    from rlopt.analysis.ablations import ablation_intervals, ablation_runs
    from rlopt.runs import InvalidRunError

    try:
        runs = ablation_runs(args.runs)
    except InvalidRunError as err:
        raise UsageError(f"--runs: {err}") from err
    intervals = ablation_intervals(runs, reps=args.reps, seed=args.seed)
    _write_study_tables(
        args,
        {"runs": runs, "intervals": intervals},
        "rliable stratified bootstrap over trained optimizers, percentile intervals",
    )
    for row in intervals.itertuples():
        print(f"{row.variant:>24} {row.metric}: {row.estimate:.3g} [{row.ci_low:.3g}, {row.ci_high:.3g}]")
    return 0


def run_deepsea_stats(args: argparse.Namespace) -> int:
    _check_reps(args)
    from rlopt.analysis.deepsea import (
        deepsea_runs,
        design_differences,
        randomness_curves,
        return_intervals,
        stochasticity_gains,
    )
    from rlopt.runs import InvalidRunError

    designs = _design_pairs(args.designs)
    try:
        runs = deepsea_runs(args.runs)
        variant_runs = runs[~runs["variant"].isin(list(designs))]
        randomness = randomness_curves(variant_runs, args.runs)
        differences = design_differences(runs, designs, reps=args.reps, seed=args.seed)
    except InvalidRunError as err:
        raise UsageError(f"--runs: {err}") from err
    intervals = return_intervals(variant_runs, reps=args.reps, seed=args.seed)
    gains = stochasticity_gains(variant_runs, reps=args.reps, seed=args.seed)
    _write_study_tables(
        args,
        {"runs": runs, "intervals": intervals, "gains": gains, "randomness": randomness, "designs": differences},
        "rliable stratified bootstrap over seeds (gains and designs: independent bootstrap of "
        "the two samples), percentile intervals",
        {"designs": designs},
    )
    for row in intervals.itertuples():
        print(f"{row.variant:>22} size {row.size:>3}: IQM {row.estimate:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]")
    for row in gains.itertuples():
        print(
            f"{row.architecture:>22} size {row.size:>3}: noise gain {row.estimate:+.3f} "
            f"[{row.ci_low:+.3f}, {row.ci_high:+.3f}]"
        )
    for row in differences.itertuples():
        print(
            f"{row.design:>22} size {row.size:>3}: minus {row.variant} {row.estimate:+.3f} "
            f"[{row.ci_low:+.3f}, {row.ci_high:+.3f}]"
        )
    return 0


def _design_pairs(words: list[str]) -> dict[str, str]:
    """``DESIGN=VARIANT`` words -> {design: variant}."""
    pairs = {}
    for word in words:
        design, sep, variant = word.partition("=")
        if not (sep and design and variant) or design == variant:
            raise UsageError(f"--designs: {word!r} is not DESIGN=VARIANT with two different labels")
        if design in pairs:
            raise UsageError(f"--designs: {design!r} is given twice")
        pairs[design] = variant
    return pairs


def run_reference_returns(args: argparse.Namespace) -> int:
    """Mean final return of one label per env: the multi-task meta-training normaliser."""
    import math

    from rlopt.analysis.collect import ESTIMATOR_COLUMNS, collect_tables
    from rlopt.io import write_json_atomic
    from rlopt.runs import InvalidRunError

    try:
        table = collect_tables(args.runs).final_returns
    except InvalidRunError as err:
        raise UsageError(str(err)) from err
    labels = sorted(set(table["label"]))
    if len(labels) != 1:
        raise UsageError(f"--runs: expected the runs of one label, got {labels}")
    means = table.groupby("env")[ESTIMATOR_COLUMNS[args.estimator]].mean()
    bad = {env: value for env, value in means.items() if not (math.isfinite(value) and value > 0)}
    if bad:
        raise UsageError(f"'{labels[0]}' has no positive mean final return on {bad}; it cannot normalise")
    write_json_atomic({env: float(value) for env, value in means.items()}, args.out)
    print(f"reference returns of {labels[0]}: " + ", ".join(f"{e} {v:.3g}" for e, v in means.items()))
    return 0


def run_collect(args: argparse.Namespace) -> int:
    from rlopt.analysis.collect import collect_tables
    from rlopt.io import write_parquet_atomic
    from rlopt.runs import InvalidRunError

    try:
        tables = collect_tables(args.runs)
    except InvalidRunError as err:
        raise UsageError(str(err)) from err
    write_parquet_atomic(tables.final_returns, args.out_dir / "final_returns.parquet")
    write_parquet_atomic(tables.curves, args.out_dir / "curves.parquet")
    write_parquet_atomic(tables.runtime, args.out_dir / "runtime.parquet")
    write_parquet_atomic(tables.updates, args.out_dir / "updates.parquet")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    taus = parse_taus(args.taus)
    if args.reps < 1:
        raise UsageError(f"--reps must be at least 1, got {args.reps}")
    if not args.final_returns.is_file():
        raise UsageError(f"--final-returns {args.final_returns}: no such file")

    import pandas as pd

    from rlopt.analysis.stats import StatsInputError, compute_statistics
    from rlopt.io import write_json_atomic, write_parquet_atomic

    try:
        final_returns = pd.read_parquet(args.final_returns)
    except Exception as err:  # pyarrow raises several unrelated types for bad files
        raise UsageError(f"--final-returns {args.final_returns}: cannot read: {err}") from err
    final_returns = select_rows(final_returns, "label", args.labels, "--labels")
    final_returns = select_rows(final_returns, "env", args.envs, "--envs")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = compute_statistics(final_returns, args.reference, reps=args.reps, seed=args.seed, taus=taus)
    except StatsInputError as err:
        raise UsageError(str(err)) from err
    for warning in caught:
        print(f"rlopt stats: warning: {warning.message}", file=sys.stderr)

    tables = {
        "intervals": result.intervals,
        "probability_of_improvement": result.probability_of_improvement,
        "performance_profile": result.performance_profile,
    }
    for name, table in tables.items():
        write_parquet_atomic(table, args.out_dir / f"{name}.parquet")
    write_json_atomic(_stats_provenance(args, taus, result), args.out_dir / "stats.json")
    return 0


def select_rows(table, column: str, wanted: list[str] | None, option: str):
    """Rows whose ``column`` is in ``wanted`` (all rows when None); unknown values are an error."""
    if not wanted:
        return table
    if column not in table.columns:
        raise UsageError(f"{option}: the table has no '{column}' column")
    missing = sorted(set(wanted) - set(table[column]))
    if missing:
        raise UsageError(f"{option}: {missing} not in the table; it has {sorted(set(table[column]))}")
    return table[table[column].isin(wanted)].reset_index(drop=True)


def parse_taus(text: str) -> list[float]:
    """``START:STOP:NUM`` -> NUM evenly spaced thresholds from START to STOP inclusive."""
    import numpy as np

    parts = text.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise UsageError(f"--taus {text!r}: expected START:STOP:NUM, e.g. 0:2:41") from None
    if not (np.isfinite(start) and np.isfinite(stop)) or start > stop or num < 1:
        raise UsageError(f"--taus {text!r}: need finite START <= STOP and NUM >= 1")
    return np.linspace(start, stop, num).tolist()


def _stats_provenance(args: argparse.Namespace, taus: list[float], result: StatsResult) -> dict:
    from rlopt.analysis.stats import CONFIDENCE

    return {
        "inputs": {
            "final_returns": str(args.final_returns),
            "final_returns_sha256": hashlib.sha256(args.final_returns.read_bytes()).hexdigest(),
        },
        "reference": args.reference,
        "reps": args.reps,
        "seed": args.seed,
        "confidence": CONFIDENCE,
        "bootstrap": "rliable stratified bootstrap, percentile intervals; "
        "np.random.seed(seed) before every rliable call",
        "taus": taus,
        "aggregate_envs": result.aggregate_envs,
        "dropped_runs": result.dropped_runs.to_dict(orient="records"),
        "warnings": result.warnings,
        "library_versions": _library_versions(),
        "python": platform.python_version(),
        "command": sys.argv,
    }


def _library_versions() -> dict[str, str]:
    versions = {}
    for name in STATS_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
