"""``rlopt plot <kind> ...``: draw one figure (``STEM.pdf`` + ``STEM.png``) from one table."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlopt.errors import UsageError

TABLE_SUFFIXES = (".csv", ".parquet")


def read_table(path: str):
    """A parquet or CSV table as a DataFrame; a missing file is a usage error naming it."""
    import pandas as pd  # here, like every heavy import: keeps `rlopt --help` fast

    path = Path(path)
    if path.suffix not in TABLE_SUFFIXES:
        raise UsageError(f"{path}: unsupported table format; expected one of {TABLE_SUFFIXES}")
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plot", help="draw a figure (PDF and PNG) from a results table")
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="<kind>")

    def add_kind(name: str, help: str, table_flag: str, draw):
        kind = kinds.add_parser(name, help=help)
        kind.add_argument(table_flag, dest="table", required=True, metavar="TABLE", help="parquet or CSV table")
        kind.add_argument("--labels", nargs="+", metavar="LABEL", help="only these labels (default: all)")
        kind.add_argument("--envs", nargs="+", metavar="ENV",
                          help="only these envs, or scopes of a statistics table (default: all)")  # fmt: skip
        kind.add_argument("--out", required=True, metavar="STEM",
                          help="output path without suffix; writes STEM.pdf and STEM.png")  # fmt: skip
        kind.set_defaults(func=lambda args: _run(args, draw))
        return kind

    add_kind("curves", "episodic return vs env steps, one panel per env", "--curves",
             lambda df, args, f: f.plot_return_curves(df, args.out))  # fmt: skip

    dynamics = add_kind("dynamics", "a per-update metric (dormancy, OPEN's update size or randomness) vs env "
                        "steps, one panel per env", "--updates",
                        lambda df, args, f: f.plot_training_dynamics(df, args.metric, args.out))  # fmt: skip
    dynamics.add_argument("--metric", required=True, help="column of the updates table, e.g. dormancy")

    intervals = add_kind("intervals", "interval estimates of IQM/mean/median/optimality gap",
                         "--intervals", _draw_intervals)  # fmt: skip
    intervals.add_argument("--normalization", default="reference", choices=["reference", "raw"])
    intervals.add_argument("--scope", default="all", help="'all' or an env name (default: all)")
    intervals.add_argument("--per-env", action="store_true",
                           help="one panel per scope for --metric instead of one per metric")  # fmt: skip
    intervals.add_argument("--metric", default="iqm", choices=["iqm", "mean", "median", "optimality_gap"],
                           help="metric of the --per-env figure (default: iqm)")  # fmt: skip

    normalized = add_kind("normalized", "final returns divided by the reference label's mean, per env",
                          "--final-returns", lambda df, args, f: f.plot_normalized_scores(
                              df, args.reference, args.out))  # fmt: skip
    normalized.add_argument("--reference", default="adam", help="label to normalise by (default: adam)")

    add_kind("poi", "probability of improvement over the reference", "--poi",
             lambda df, args, f: f.plot_probability_of_improvement(df, args.out))  # fmt: skip
    add_kind("profile", "performance profiles", "--profile",
             lambda df, args, f: f.plot_performance_profile(df, args.out))  # fmt: skip
    add_kind("sweep", "every tuning configuration's mean final return, the chosen ones ringed", "--sweeps",
             lambda df, args, f: f.plot_sweep(df, args.out))  # fmt: skip
    add_kind("runtime", "env steps per second and wall time per label and env", "--runtime",
             lambda df, args, f: f.plot_runtime(df, args.out))  # fmt: skip

    add_kind("ablations", "OPEN's Fig. 5: final return and dormancy per ablation variant", "--intervals",
             lambda df, args, f: f.plot_ablations(df, args.out))  # fmt: skip

    for name, help, flag, draw in (
        ("deepsea", "OPEN's Fig. 17: IQM of final return against DeepSea size", "--intervals", "plot_deepsea_returns"),
        (
            "deepsea-gains",
            "OPEN's Fig. 6: IQM gain from learned noise against DeepSea size",
            "--gains",
            "plot_deepsea_gains",
        ),
        (
            "deepsea-designs",
            "each DeepSea design run minus its variant (IQM) against size",
            "--designs",
            "plot_deepsea_designs",
        ),
    ):
        kind = add_kind(
            name, help, flag, lambda df, args, f, draw=draw: getattr(f, draw)(df, args.out, args.train_sizes)
        )
        kind.add_argument(
            "--train-sizes",
            nargs=2,
            type=int,
            metavar=("LOW", "HIGH"),
            help="meta-training sizes to shade (larger ones are out of support)",
        )

    randomness = add_kind("deepsea-randomness", "OPEN's Fig. 14: randomness applied against update, per "
                          "DeepSea size", "--randomness", lambda df, args, f: f.plot_deepsea_randomness(
                              df, args.out, args.sizes))  # fmt: skip
    randomness.add_argument(
        "--sizes",
        nargs="+",
        type=int,
        metavar="SIZE",
        help="sizes to show, one panel each (default: five spread over those in the table)",
    )

    generations = add_kind("generations", "a metric against generations (e.g. meta-training fitness)",
                           "--table", lambda df, args, f: f.plot_metric_over_generations(
                               df, args.x, args.y, args.out, hue=args.hue))  # fmt: skip
    generations.add_argument("--x", default="generation", help="column on the x axis (default: generation)")
    generations.add_argument("--y", required=True, help="column on the y axis")
    generations.add_argument("--hue", help="column with one line per value")

    for name, help, flag, draw in (
        (
            "collapse-curves",
            "collapse study: IQM return per arm with its bootstrap band",
            "--iqm-curves",
            "plot_iqm_curves",
        ),
        (
            "collapse-seeds",
            "collapse study: per-seed small multiples coloured by the detector's verdict",
            "--curves",
            "plot_seed_flags",
        ),
        (
            "update-sizes",
            "max|update|/lr and L1 parameter change per update, per arm",
            "--update-sizes",
            "plot_update_sizes",
        ),
        (
            "nonstationary-curves",
            "return per update under each dynamics schedule, segments shaded",
            "--curves",
            "plot_nonstationary_curves",
        ),
    ):
        add_kind(name, help, flag, lambda df, args, f, draw=draw: _study_figure("studies", draw)(df, args.out))

    for name, help, flag, draw in (
        (
            "metatuning-heatmap",
            "meta-tuning: report IQM over the learned grid's two axes, one heatmap per variant",
            "--cells",
            "plot_metatuning_heatmaps",
        ),
        (
            "metatuning-distribution",
            "meta-tuning: ECDF of the report IQM over each grid's configurations",
            "--cells",
            "plot_metatuning_distribution",
        ),
        (
            "metatuning-histories",
            "meta-tuning: validation return per meta-iteration of every run of the learned grid",
            "--histories",
            "plot_metatuning_histories",
        ),
        (
            "expected-max",
            "meta-tuning: expected report IQM against configurations tried",
            "--expected-max",
            "plot_expected_max",
        ),
    ):
        add_kind(name, help, flag, lambda df, args, f, draw=draw: _study_figure("metatuning", draw)(df, args.out))


def _study_figure(module: str, name: str):
    from rlopt.plots import metatuning, studies  # imported by name: the code hash sees them

    return getattr({"studies": studies, "metatuning": metatuning}[module], name)


def _draw_intervals(df, args, figures):
    if args.per_env:
        return figures.plot_intervals_per_env(df, args.out, args.normalization, args.metric)
    return figures.plot_intervals(df, args.out, args.normalization, args.scope)


def _run(args: argparse.Namespace, draw) -> int:
    # Imported here: matplotlib/seaborn would slow down every other rlopt command.
    from rlopt.analysis.commands import select_rows
    from rlopt.plots import figures

    table = read_table(args.table)
    if args.labels:
        table = select_rows(table, "label", args.labels, "--labels")
    if args.envs:
        table = select_rows(table, "env" if "env" in table.columns else "scope", args.envs, "--envs")
    try:
        paths = draw(table, args, figures)
    except figures.PlotInputError as err:
        raise UsageError(f"{args.table}: {err}") from err
    print("\n".join(str(p) for p in paths))
    return 0
