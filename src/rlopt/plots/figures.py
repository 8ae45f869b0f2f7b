"""Figures of the evaluation, each written as ``<out_stem>.pdf`` and ``<out_stem>.png``.

Every function takes one of the tables of ``docs/results-format.md`` (long format) and
copes with a single env, a single seed, or labels missing from some envs. Colours are a
function of the sorted set of labels a table mentions, so figures drawn from the tables
of one experiment agree on which colour is which optimizer.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless cluster nodes; must precede the pyplot import

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import EngFormatter, MaxNLocator  # noqa: E402
from scipy import stats  # noqa: E402

from rlopt.analysis.stats import AGGREGATE_SCOPE, RAW, scopes_in_order  # noqa: E402
from rlopt.io import write_atomic  # noqa: E402

METRIC_TITLES = {
    "iqm": "IQM",
    "mean": "Mean",
    "median": "Median",
    "optimality_gap": "Optimality gap (lower is better)",
}
CURVE_POINTS = 100  # x positions per return curve after binning
FEW_CURVE_POINTS = 5  # fewer x positions are drawn as points with error bars: a line would hide them
PANEL_SIZE = (3.8, 2.9)  # inches per panel
MAX_COLUMNS = 3
PNG_DPI = 200


class PlotInputError(ValueError):
    """A table lacks a column or holds no rows for what was asked; the message says which."""


# --------------------------------------------------------------------------- helpers


def label_palette(labels: Iterable[str]) -> dict[str, tuple]:
    """Colour per label, assigned in sorted label order (colour-blind palette first)."""
    ordered = sorted(set(labels))
    colours = sns.color_palette("colorblind", n_colors=max(len(ordered), 1))
    if len(ordered) > 10:  # 'colorblind' repeats after 10 colours
        colours = sns.color_palette("husl", n_colors=len(ordered))
    return dict(zip(ordered, colours))


def require_columns(df: pd.DataFrame, columns: Sequence[str], table: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise PlotInputError(f"{table} table lacks column(s) {missing}; it has {list(df.columns)}")


def save_figure(fig: plt.Figure, out_stem: str | os.PathLike) -> list[Path]:
    """Write ``fig`` as PDF and PNG next to each other (atomically), then close it."""
    paths = []
    for fmt in ("pdf", "png"):
        path = Path(f"{out_stem}.{fmt}")
        # No creation date in the PDF, so re-plotting unchanged data gives identical bytes.
        metadata = {"CreationDate": None} if fmt == "pdf" else {}
        write_atomic(
            path,
            lambda f, fmt=fmt, metadata=metadata: fig.savefig(
                f, format=fmt, dpi=PNG_DPI, bbox_inches="tight", metadata=metadata
            ),
        )
        paths.append(path)
    plt.close(fig)
    return paths


def _themed(plot_function):
    """Draw inside one seaborn style without changing the caller's global rcParams."""

    @functools.wraps(plot_function)
    def wrapper(*args, **kwargs):
        with sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.1):
            return plot_function(*args, **kwargs)

    return wrapper


def _panel_grid(num_panels: int, panel_size=PANEL_SIZE, max_columns=MAX_COLUMNS, **kwargs):
    """Figure with ``num_panels`` axes in rows of at most ``max_columns``; spare axes removed."""
    ncols = min(num_panels, max_columns)
    nrows = math.ceil(num_panels / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
        squeeze=False, **kwargs,
    )  # fmt: skip
    axes = list(axes.flat)
    for spare in axes[num_panels:]:
        spare.remove()
    return fig, axes[:num_panels]


def _legend_below(fig: plt.Figure, palette: dict[str, tuple], labels: Iterable[str], title="label"):
    """One legend for all panels, under them, so it never covers data."""
    shown = sorted(set(labels))
    handles = [Line2D([], [], color=palette[label], lw=2.5) for label in shown]
    fig.legend(
        handles, shown, title=title, loc="upper center", bbox_to_anchor=(0.5, 0.0),
        ncol=min(len(shown), 5), frameon=False,
    )  # fmt: skip


def _t_interval(values: pd.Series) -> tuple[float, float]:
    """95% Student-t interval of the mean: honest with the handful of seeds a run has."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return (np.nan, np.nan)
    half_width = stats.t.ppf(0.975, len(values) - 1) * stats.sem(values)
    return (values.mean() - half_width, values.mean() + half_width)


def _select(df: pd.DataFrame, table: str, **equal_to) -> pd.DataFrame:
    """Rows whose columns equal the given values; an empty selection is an input error."""
    selected = df
    for column, value in equal_to.items():
        selected = selected[selected[column] == value]
    if selected.empty:
        available = {c: sorted(df[c].unique().tolist()) for c in equal_to}
        raise PlotInputError(f"{table} table has no rows for {equal_to}; available: {available}")
    return selected


def _time_unit(max_seconds: float) -> tuple[str, float]:
    """A unit that keeps wall times readable: (name, seconds per unit)."""
    if max_seconds < 120:
        return "s", 1.0
    if max_seconds < 2 * 3600:
        return "min", 60.0
    return "h", 3600.0


# --------------------------------------------------------------------------- return curves


def bin_steps(curves: pd.DataFrame, num_points: int = CURVE_POINTS, value: str = "episodic_return") -> pd.DataFrame:
    """Snap ``global_step`` to a common grid of one env, averaging a seed's points per bin.

    Seeds log at the same steps, but a logging interval without a finished episode is
    absent, so raw steps would give each x position a different set of seeds.
    """
    max_step = curves["global_step"].max()
    steps = curves["global_step"].to_numpy()
    if curves["global_step"].nunique() > num_points and max_step > 0:
        width = max_step / num_points
        steps = np.ceil(steps / width) * width  # each point belongs to the bin it closes
    binned = curves.assign(global_step=steps)
    return binned.groupby(["label", "seed", "global_step"], as_index=False)[value].mean()


@_themed
def plot_return_curves(curves_df: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """One panel per env: mean episodic return over seeds vs env steps, 95% t-interval band.

    An env whose episodes are long against the run (e.g. Freeway's 2,500 steps: 64 envs
    finish their first episodes together) has few steps with finished episodes; its panel
    draws them as points with error bars and its title says how many there are.
    """
    require_columns(curves_df, ["label", "env", "seed", "global_step", "episodic_return"], "curves")
    curves_df = curves_df.dropna(subset=["episodic_return"])
    if curves_df.empty:
        raise PlotInputError("curves table has no finite episodic_return")
    palette = label_palette(curves_df["label"])
    envs = sorted(curves_df["env"].unique())
    fig, axes = _panel_grid(len(envs))
    for ax, env in zip(axes, envs):
        binned = bin_steps(curves_df[curves_df["env"] == env])
        num_steps = binned["global_step"].nunique()
        title = env
        if num_steps < FEW_CURVE_POINTS:
            _draw_mean_points(ax, binned, "global_step", "episodic_return", palette)
            title = f"{env} ({num_steps} step{'s' * (num_steps > 1)} with episode ends)"
        else:
            sns.lineplot(
                data=binned, x="global_step", y="episodic_return", hue="label", palette=palette,
                errorbar=_t_interval, ax=ax, legend=False,
            )  # fmt: skip
        ax.set(title=title, xlabel="environment steps", ylabel="episodic return")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    fig.tight_layout()
    _legend_below(fig, palette, curves_df["label"])
    return save_figure(fig, out_stem)


def _draw_mean_points(ax, rows: pd.DataFrame, x: str, y: str, palette: dict[str, tuple]) -> None:
    """Per label and ``x`` value: the mean over seeds as a point with its 95% t-interval as a
    bar; labels are dodged by 1% of the axis so that equal x values stay readable, and the
    axis starts at 0 to show where in the run the points lie."""
    labels = sorted(rows["label"].unique())
    dodge = 0.01 * rows[x].max()
    for i, label in enumerate(labels):
        by_x = rows[rows["label"] == label].groupby(x, sort=True)[y]
        means = by_x.mean()
        intervals = np.array([_t_interval(values) for _, values in by_x])
        errors = np.abs(intervals - means.to_numpy()[:, None]).T
        positions = means.index.to_numpy() + (i - (len(labels) - 1) / 2) * dodge
        ax.errorbar(positions, means.to_numpy(), yerr=errors, fmt="o", capsize=3, color=palette[label])
    ax.set_xlim(0, rows[x].max() + len(labels) * dodge)


DYNAMICS_AXIS = {
    "dormancy": "dormant fraction (tau = 0)",
    "update_size": "update size / |p|",
    "randomness": "randomness / |p|",
    "entropy": "policy entropy",
}


@_themed
def plot_training_dynamics(updates_df: pd.DataFrame, metric: str, out_stem: str | os.PathLike) -> list[Path]:
    """One panel per env: a per-update metric (e.g. dormancy, OPEN's update size or
    randomness) against env steps, mean over seeds with a 95% t-interval band; labels
    that do not log the metric are left out."""
    require_columns(updates_df, ["label", "env", "seed", "global_step", metric], "updates")
    updates_df = updates_df.dropna(subset=[metric])
    if updates_df.empty:
        raise PlotInputError(f"updates table has no finite '{metric}' (no selected optimizer logs it)")
    panels = {env: bin_steps(rows, value=metric) for env, rows in updates_df.groupby("env", sort=True)}
    fig = _lineplot_panels(
        panels,
        "global_step",
        metric,
        "label",
        label_palette(updates_df["label"]),
        "environment steps",
        DYNAMICS_AXIS.get(metric, metric.replace("_", " ")),
    )
    for ax in fig.axes[: len(panels)]:
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    return save_figure(fig, out_stem)


def _lineplot_panels(
    panels: dict[str, pd.DataFrame],
    x: str,
    y: str,
    hue: str,
    palette: dict,
    xlabel: str,
    ylabel: str,
    hue_title: str = "label",
) -> plt.Figure:
    """One panel per (title -> rows): ``y`` against ``x``, mean over seeds with a 95%
    t-interval band, one line per ``hue`` value; one legend below."""
    fig, axes = _panel_grid(len(panels))
    for ax, (title, rows) in zip(axes, panels.items()):
        sns.lineplot(data=rows, x=x, y=y, hue=hue, palette=palette, errorbar=_t_interval, ax=ax, legend=False)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.tight_layout()
    _legend_below(fig, palette, pd.concat(panels.values())[hue], title=hue_title)
    return fig


# --------------------------------------------------------------------------- interval estimates


def _draw_intervals(ax, rows: pd.DataFrame, palette: dict[str, tuple], order: list[str],
                    name_column="label"):  # fmt: skip
    """rliable-style rows: a bar spanning [ci_low, ci_high] and a black tick at the estimate.

    Rows sit at fixed positions given by ``order`` (first at the top), so panels can share
    the y axis even when a label is missing from one of them.
    """
    position = {name: len(order) - 1 - i for i, name in enumerate(order)}
    y = rows[name_column].map(position).to_numpy()
    colours = [palette[label] for label in rows["label"]]
    ax.barh(y, rows["ci_high"] - rows["ci_low"], left=rows["ci_low"], height=0.6,
            color=colours, alpha=0.75)  # fmt: skip
    ax.vlines(rows["estimate"], y - 0.3, y + 0.3, color="black", lw=2)
    ax.set_yticks([position[name] for name in order], order)
    ax.set_ylim(-0.6, len(order) - 0.4)
    ax.grid(axis="y", visible=False)


def _interval_panel_size(num_rows: int) -> tuple[float, float]:
    return (3.2, 0.45 * num_rows + 1.2)


def _score_axis_label(normalization: str) -> str:
    if normalization == "reference":
        return "final return / reference mean"
    return "final return"


INTERVAL_COLUMNS = ["scope", "normalization", "label", "metric", "estimate", "ci_low", "ci_high"]


@_themed
def plot_intervals(
    intervals_df: pd.DataFrame,
    out_stem: str | os.PathLike,
    normalization: str = "reference",
    scope: str = AGGREGATE_SCOPE,
) -> list[Path]:
    """Interval estimates (OPEN Fig. 3 / rliable): one panel per metric, one row per label."""
    require_columns(intervals_df, INTERVAL_COLUMNS, "intervals")
    rows = _select(intervals_df, "intervals", normalization=normalization, scope=scope)
    palette = label_palette(intervals_df["label"])
    metrics = [m for m in METRIC_TITLES if m in set(rows["metric"])]
    order = sorted(rows["label"].unique())
    fig, axes = _panel_grid(len(metrics), _interval_panel_size(len(order)), max_columns=4, sharey=True)
    for ax, metric in zip(axes, metrics):
        _draw_intervals(ax, rows[rows["metric"] == metric], palette, order)
        ax.set(title=METRIC_TITLES[metric], xlabel=_score_axis_label(normalization))
    fig.suptitle(f"{scope}: 95% bootstrap confidence intervals", y=1.02)
    fig.tight_layout()
    return save_figure(fig, out_stem)


@_themed
def plot_intervals_per_env(
    intervals_df: pd.DataFrame,
    out_stem: str | os.PathLike,
    normalization: str = "reference",
    metric: str = "iqm",
) -> list[Path]:
    """One panel per scope (aggregate first, then envs) for one metric, as OPEN's Figure 2.

    An env on which the reference's mean return is not positive cannot be normalised (the
    statistics give it raw rows only): its panel shows raw returns and its title says so.
    """
    require_columns(intervals_df, INTERVAL_COLUMNS, "intervals")
    rows = _select(intervals_df, "intervals", metric=metric)
    chosen = rows[rows["normalization"] == normalization]
    if normalization != RAW:
        unnormalised = (rows["scope"] != AGGREGATE_SCOPE) & ~rows["scope"].isin(chosen["scope"])
        chosen = pd.concat([chosen, rows[unnormalised & (rows["normalization"] == RAW)]])
    if chosen.empty:
        raise PlotInputError(f"intervals table has no {normalization!r} or raw rows for metric {metric!r}")
    palette = label_palette(intervals_df["label"])
    scopes = scopes_in_order(chosen["scope"])
    order = sorted(chosen["label"].unique())
    fig, axes = _panel_grid(len(scopes), _interval_panel_size(len(order)), max_columns=4, sharey=True)
    for ax, scope in zip(axes, scopes):
        panel = chosen[chosen["scope"] == scope]
        used = panel["normalization"].iloc[0]
        title = scope if used == normalization else f"{scope} (raw: reference mean not positive)"
        _draw_intervals(ax, panel, palette, order)
        ax.set(title=title, xlabel=f"{METRIC_TITLES[metric]} of {_score_axis_label(used)}")
    fig.tight_layout()
    return save_figure(fig, out_stem)


@_themed
def plot_probability_of_improvement(poi_df: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """P(label > reference) with 95% CIs, one panel per scope; 0.5 marks no difference."""
    require_columns(poi_df, ["scope", "label", "reference", "estimate", "ci_low", "ci_high"],
                    "probability_of_improvement")  # fmt: skip
    if poi_df.empty:
        raise PlotInputError("probability_of_improvement table has no rows")
    palette = label_palette([*poi_df["label"], *poi_df["reference"]])
    rows = poi_df.assign(pair=poi_df["label"] + " vs " + poi_df["reference"])
    scopes = scopes_in_order(rows["scope"])
    order = sorted(rows["pair"].unique())
    fig, axes = _panel_grid(len(scopes), _interval_panel_size(len(order)), sharey=True)
    for ax, scope in zip(axes, scopes):
        _draw_intervals(ax, rows[rows["scope"] == scope], palette, order, name_column="pair")
        ax.axvline(0.5, color="grey", ls="--", lw=1)
        ax.set(title=scope, xlabel="P(label > reference)", xlim=(0, 1))
    fig.tight_layout()
    return save_figure(fig, out_stem)


@_themed
def plot_performance_profile(profile_df: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """Fraction of runs scoring above tau, per label, with a 95% CI band; one panel per scope."""
    require_columns(profile_df, ["scope", "label", "tau", "fraction", "ci_low", "ci_high"],
                    "performance_profile")  # fmt: skip
    if profile_df.empty:
        raise PlotInputError("performance_profile table has no rows")
    palette = label_palette(profile_df["label"])
    scopes = scopes_in_order(profile_df["scope"])
    fig, axes = _panel_grid(len(scopes))
    for ax, scope in zip(axes, scopes):
        for label, rows in profile_df[profile_df["scope"] == scope].groupby("label"):
            rows = rows.sort_values("tau")
            ax.plot(rows["tau"], rows["fraction"], color=palette[label], lw=2)
            ax.fill_between(rows["tau"], rows["ci_low"], rows["ci_high"], color=palette[label], alpha=0.2)
        ax.set(title=scope, xlabel=r"normalised score $\tau$", ylabel=r"fraction of runs > $\tau$",
               ylim=(-0.02, 1.02))  # fmt: skip
    fig.tight_layout()
    _legend_below(fig, palette, profile_df["label"])
    return save_figure(fig, out_stem)


# --------------------------------------------------------------------------- scores and runtime


def normalize_by_reference(final_returns_df: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Add ``score`` = final return / the reference label's mean final return on the same env.

    As in ``rlopt stats``, only a positive reference mean can normalise: other envs are dropped.
    """
    finite = final_returns_df.dropna(subset=["final_return"])
    reference_means = finite[finite["label"] == reference].groupby("env")["final_return"].mean()
    reference_means = reference_means[reference_means > 0]
    if reference_means.empty:
        labels = sorted(final_returns_df["label"].unique())
        raise PlotInputError(f"reference label {reference!r} has a positive mean final return on no env; "
                             f"labels: {labels}")  # fmt: skip
    scored = finite[finite["env"].isin(reference_means.index)]
    return scored.assign(score=scored["final_return"] / scored["env"].map(reference_means))


@_themed
def plot_normalized_scores(final_returns_df: pd.DataFrame, reference: str, out_stem: str | os.PathLike) -> list[Path]:
    """Per env, each seed's final return over the reference's mean: box plus points per label."""
    require_columns(final_returns_df, ["label", "env", "seed", "final_return"], "final_returns")
    scored = normalize_by_reference(final_returns_df, reference)
    palette = label_palette(final_returns_df["label"])
    envs = sorted(scored["env"].unique())
    fig, axes = _panel_grid(len(envs), panel_size=(3.6, 0.45 * scored["label"].nunique() + 1.3))
    for ax, env in zip(axes, envs):
        rows = scored[scored["env"] == env]
        order = sorted(rows["label"].unique())
        sns.boxplot(data=rows, x="score", y="label", order=order, hue="label", palette=palette,
                    legend=False, fliersize=0, boxprops={"alpha": 0.6}, ax=ax)  # fmt: skip
        sns.stripplot(data=rows, x="score", y="label", order=order, color="black", size=3, ax=ax)
        ax.axvline(1.0, color="grey", ls="--", lw=1)
        ax.set(title=env, xlabel=f"final return / {reference} mean", ylabel="")
    fig.tight_layout()
    return save_figure(fig, out_stem)


@_themed
def plot_runtime(runtime_df: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """Bars per env and label: env steps per second (left) and wall time of the job (right)."""
    require_columns(runtime_df, ["label", "env", "steps_per_second", "wall_seconds"], "runtime")
    if runtime_df.empty:
        raise PlotInputError("runtime table has no rows")
    palette = label_palette(runtime_df["label"])
    unit, seconds_per_unit = _time_unit(runtime_df["wall_seconds"].max())
    rows = runtime_df.assign(wall_time=runtime_df["wall_seconds"] / seconds_per_unit)
    order = sorted(rows["env"].unique())
    fig, axes = _panel_grid(2, panel_size=(max(3.8, 1.2 * len(order)), 3.2), max_columns=2)
    panels = [("steps_per_second", "env steps per second"), ("wall_time", f"wall time [{unit}]")]
    for ax, (column, ylabel) in zip(axes, panels):
        sns.barplot(data=rows, x="env", y=column, order=order, hue="label", palette=palette,
                    hue_order=sorted(palette), errorbar=None, legend=False, ax=ax)  # fmt: skip
        ax.set(xlabel="", ylabel=ylabel)
        ax.yaxis.set_major_formatter(EngFormatter(sep=""))
        ax.tick_params(axis="x", rotation=30 if len(order) > 3 else 0)
    fig.tight_layout()
    _legend_below(fig, palette, rows["label"])
    return save_figure(fig, out_stem)


@_themed
def plot_sweep(sweeps_df: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """Per env, the mean final return of every sweep point per optimizer; the chosen one ringed."""
    require_columns(sweeps_df, ["env", "optimizer", "mean_final_return", "best"], "sweeps")
    rows = sweeps_df[np.isfinite(sweeps_df["mean_final_return"])]
    if rows.empty:
        raise PlotInputError("sweep table has no finite results")
    palette = label_palette(rows["optimizer"])
    envs = sorted(rows["env"].unique())
    fig, axes = _panel_grid(len(envs), panel_size=(3.6, 0.45 * rows["optimizer"].nunique() + 1.3))
    for ax, env in zip(axes, envs):
        panel = rows[rows["env"] == env]
        order = sorted(panel["optimizer"].unique())
        sns.stripplot(data=panel, x="mean_final_return", y="optimizer", order=order, hue="optimizer",
                      palette=palette, legend=False, size=5, ax=ax)  # fmt: skip
        best = panel[panel["best"]]
        ax.scatter(best["mean_final_return"], [order.index(o) for o in best["optimizer"]], s=110,
                   facecolors="none", edgecolors="black", linewidths=1.2, zorder=3)  # fmt: skip
        ax.set(title=env, xlabel="mean final return (tuning seeds)", ylabel="")
    fig.tight_layout()
    return save_figure(fig, out_stem)


@_themed
def plot_metric_over_generations(
    df: pd.DataFrame, x: str, y: str, out_stem: str | os.PathLike, hue: str | None = None
) -> list[Path]:
    """``y`` against ``x`` (e.g. meta-training fitness per generation; rows without a ``y``
    are left out); repeated x are averaged with a 95% t-interval band, one line per ``hue`` value."""
    require_columns(df, [x, y] + ([hue] if hue else []), "metric")
    df = df.dropna(subset=[y])  # e.g. validation returns exist only every eval_every generations
    if df.empty:
        raise PlotInputError(f"metric table has no rows with a value of {y!r}")
    fig, (ax,) = _panel_grid(1, panel_size=(5.0, 3.4))
    palette = label_palette(df[hue].astype(str)) if hue else None
    data = df.assign(**{hue: df[hue].astype(str)}) if hue else df
    # Markers keep a run of a single generation visible.
    sns.lineplot(data=data, x=x, y=y, hue=hue, palette=palette, errorbar=_t_interval, ax=ax, legend=False,
                 marker="o", markersize=4, markeredgewidth=0)  # fmt: skip
    if df[x].nunique() == 1:
        ax.set_xticks(df[x].unique())
    elif pd.api.types.is_integer_dtype(df[x]):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel=x.replace("_", " "), ylabel=y.replace("_", " "))
    fig.tight_layout()
    if hue:
        _legend_below(fig, palette, data[hue], title=hue.replace("_", " "))
    return save_figure(fig, out_stem)


ABLATION_PANELS = {"final_return_iqm": "IQM of final return", "dormant_percent_iqr": "dormant neurons [%]"}


@_themed
def plot_ablations(intervals_df: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """OPEN's Figure 5: per ablation variant, the IQM of final return and the dormancy of
    the optimizers in its interquartile range, each with a 95% bootstrap CI."""
    require_columns(intervals_df, ["variant", "metric", "estimate", "ci_low", "ci_high"], "ablation intervals")
    if intervals_df.empty:
        raise PlotInputError("ablation intervals table has no rows")
    rows = intervals_df.assign(label=intervals_df["variant"])
    palette = label_palette(rows["label"])
    # The full optimizer on top, the ablations below it in alphabetical order.
    variants = set(rows["variant"])
    order = ["open"] * ("open" in variants) + sorted(variants - {"open"})
    metrics = [m for m in ABLATION_PANELS if m in set(rows["metric"])]
    fig, axes = _panel_grid(len(metrics), _interval_panel_size(len(order)), sharey=True)
    for ax, metric in zip(axes, metrics):
        _draw_intervals(ax, rows[rows["metric"] == metric], palette, order)
        ax.set(xlabel=ABLATION_PANELS[metric])
    fig.tight_layout()
    return save_figure(fig, out_stem)


def _plot_against_size(
    df: pd.DataFrame,
    hue: str,
    ylabel: str,
    out_stem: str | os.PathLike,
    train_sizes: Sequence[int] | None,
    zero_line: bool = False,
) -> list[Path]:
    """``estimate`` with its CI band against DeepSea size, one line per ``hue`` value; integer
    sizes on x, the meta-training range shaded (larger sizes are out of support)."""
    palette = label_palette(df[hue])
    fig, (ax,) = _panel_grid(1, panel_size=(5.0, 3.4))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if train_sizes:
        ax.axvspan(train_sizes[0], train_sizes[1], color="0.9", zorder=0, label="training sizes")
    if zero_line:
        ax.axhline(0.0, color="0.4", lw=1)
    for value, rows in df.groupby(hue):
        rows = rows.sort_values("size")
        ax.plot(rows["size"], rows["estimate"], color=palette[value], lw=2, marker="o", ms=3)
        ax.fill_between(rows["size"], rows["ci_low"], rows["ci_high"], color=palette[value], alpha=0.2)
    ax.set(xlabel="DeepSea size", ylabel=ylabel)
    fig.tight_layout()
    _legend_below(fig, palette, df[hue], title=hue)
    return save_figure(fig, out_stem)


@_themed
def plot_deepsea_returns(
    intervals_df: pd.DataFrame, out_stem: str | os.PathLike, train_sizes: Sequence[int] | None = None
) -> list[Path]:
    """OPEN's Figure 17: IQM of final return against DeepSea size per variant, 95% CI band."""
    require_columns(intervals_df, ["variant", "size", "estimate", "ci_low", "ci_high"], "deepsea intervals")
    if intervals_df.empty:
        raise PlotInputError("deepsea intervals table has no rows")
    return _plot_against_size(intervals_df, "variant", "IQM of final return", out_stem, train_sizes)


@_themed
def plot_deepsea_gains(
    gains_df: pd.DataFrame, out_stem: str | os.PathLike, train_sizes: Sequence[int] | None = None
) -> list[Path]:
    """OPEN's Figure 6: IQM improvement from learned stochasticity (variant with noise minus
    the one without) against DeepSea size, per architecture, 95% CI band."""
    require_columns(gains_df, ["architecture", "size", "estimate", "ci_low", "ci_high"], "deepsea gains")
    if gains_df.empty:
        raise PlotInputError(
            "deepsea gains table has no rows (no architecture has a variant with and one without learned noise)"
        )
    return _plot_against_size(
        gains_df, "architecture", "IQM gain from learned noise", out_stem, train_sizes, zero_line=True
    )


@_themed
def plot_deepsea_designs(
    designs_df: pd.DataFrame, out_stem: str | os.PathLike, train_sizes: Sequence[int] | None = None
) -> list[Path]:
    """IQM of each design run (a variant with one DeepSea choice changed) minus its variant's,
    against DeepSea size, 95% CI band; above 0 the changed choice does better."""
    require_columns(designs_df, ["design", "variant", "size", "estimate", "ci_low", "ci_high"], "deepsea designs")
    if designs_df.empty:
        raise PlotInputError("deepsea designs table has no rows (the preset's deepsea block has no designs)")
    named = designs_df.assign(design=designs_df["design"] + " - " + designs_df["variant"])
    return _plot_against_size(named, "design", "IQM difference", out_stem, train_sizes, zero_line=True)


RANDOMNESS_PANELS = 5  # sizes shown by default, spread over those evaluated (the paper shows 10-50)


def spread_sizes(sizes: Iterable[int], count: int = RANDOMNESS_PANELS) -> list[int]:
    """Up to ``count`` of ``sizes``, evenly spread from the smallest to the largest."""
    ordered = sorted(set(sizes))
    if len(ordered) <= count:
        return ordered
    return sorted({ordered[round(i * (len(ordered) - 1) / (count - 1))] for i in range(count)})


@_themed
def plot_deepsea_randomness(
    randomness_df: pd.DataFrame, out_stem: str | os.PathLike, sizes: Sequence[int] | None = None
) -> list[Path]:
    """OPEN's Figure 14: the randomness OPEN applies (relative to the actor's parameters)
    against PPO update, one panel per DeepSea size, mean over seeds with a 95% t-interval
    band, one line per variant with learned noise.  Panels keep their own y scale."""
    require_columns(randomness_df, ["variant", "size", "seed", "update", "randomness"], "deepsea randomness")
    if randomness_df.empty:
        raise PlotInputError("deepsea randomness table has no rows (no variant with learned noise)")
    shown = list(sizes) if sizes else spread_sizes(randomness_df["size"])
    missing = sorted(set(shown) - set(randomness_df["size"]))
    if missing:
        raise PlotInputError(f"no randomness rows for size(s) {missing}")
    panels = {f"size {size}": randomness_df[randomness_df["size"] == size] for size in shown}
    fig = _lineplot_panels(
        panels,
        "update",
        "randomness",
        "variant",
        label_palette(randomness_df["variant"]),
        "PPO update",
        "randomness / |p|",
        hue_title="variant",
    )
    for ax in fig.axes[: len(panels)]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return save_figure(fig, out_stem)
