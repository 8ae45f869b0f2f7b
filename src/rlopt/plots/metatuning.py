"""Figures of the meta-tuning study (tables of ``rlopt metatuning-stats``), written as
``<out_stem>.pdf`` and ``.png``.  Every score is a report-seed IQM of the final return;
the tuned baseline is the baseline cell chosen on the selection seeds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from rlopt.plots.figures import PlotInputError, _panel_grid, _themed, require_columns, save_figure

KIND_NAMES = {"learned": "meta-trained (meta-seed 0)", "baseline": "baseline grid"}


def _report_iqms(cells: pd.DataFrame) -> pd.DataFrame:
    require_columns(
        cells,
        ["cell", "kind", "variant", "meta_seed", "row_axis", "row_value", "column_axis", "column_value", "role",
         "metric", "estimate", "chosen"],
        "meta-tuning cells",
    )  # fmt: skip
    rows = cells[(cells["role"] == "report") & (cells["metric"] == "iqm")]
    if rows.empty or not (rows["kind"] == "baseline").any() or not (rows["kind"] == "learned").any():
        raise PlotInputError("meta-tuning cells table needs report-seed IQMs of learned and baseline cells")
    return rows


def _tuned_baseline(rows: pd.DataFrame) -> float:
    return float(rows.loc[(rows["kind"] == "baseline") & rows["chosen"], "estimate"].iloc[0])


def _axis_label(name: str) -> str:
    return name.replace("_", " ")


@_themed
def plot_metatuning_heatmaps(cells: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """One heatmap per variant of the learned grid: report IQM per (row, column) cell, the
    mean over its meta-seeds (their number in brackets where above one), coloured around the
    tuned baseline's report IQM; the cell chosen on the selection seeds is outlined."""
    rows = _report_iqms(cells)
    tuned = _tuned_baseline(rows)
    learned = rows[rows["kind"] == "learned"]
    variants = sorted(learned["variant"].unique())
    spread = float(np.nanmax(np.abs(learned["estimate"] - tuned))) or 1.0
    fig, axes = _panel_grid(len(variants), panel_size=(4.6, 3.8))
    row_axis, column_axis = learned["row_axis"].iloc[0], learned["column_axis"].iloc[0]
    for ax, variant in zip(axes, variants):
        grid = learned[learned["variant"] == variant]
        means = grid.pivot_table(index="row_value", columns="column_value", values="estimate", aggfunc="mean")
        counts = grid.pivot_table(index="row_value", columns="column_value", values="meta_seed", aggfunc="count")
        notes = means.map(lambda v: f"{v:.3g}") + counts.map(lambda n: f"\n({n})" if n > 1 else "")
        sns.heatmap(means, annot=notes, fmt="", cmap="vlag_r", center=tuned, vmin=tuned - spread,
                    vmax=tuned + spread, cbar_kws={"label": "report IQM"}, ax=ax)  # fmt: skip
        chosen = grid[grid["chosen"]]
        for row in chosen.itertuples():
            i, j = list(means.index).index(row.row_value), list(means.columns).index(row.column_value)
            ax.add_patch(_outline(j, i))
        ax.set(title=f"{variant} (tuned baseline {tuned:.3g})", xlabel=_axis_label(column_axis),
               ylabel=_axis_label(row_axis))  # fmt: skip
        ax.set_xticklabels([f"{v:g}" for v in means.columns])
        ax.set_yticklabels([f"{v:g}" for v in means.index], rotation=0)
    fig.tight_layout()
    return save_figure(fig, out_stem)


def _outline(x: int, y: int):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), 1, 1, fill=False, edgecolor="black", lw=2.5)


@_themed
def plot_metatuning_distribution(cells: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """Empirical CDF of the report IQM over the configurations of each grid (learned cells
    at meta-seed 0), with the tuned baseline's as a vertical line."""
    rows = _report_iqms(cells)
    rows = rows[rows["meta_seed"] <= 0].assign(grid=lambda df: df["kind"].map(KIND_NAMES))
    fig, (ax,) = _panel_grid(1, panel_size=(5.4, 3.6))
    sns.ecdfplot(data=rows, x="estimate", hue="grid", ax=ax, lw=2, marker="o", markersize=4)
    ax.axvline(_tuned_baseline(rows), color="0.3", ls="--", lw=1.2)
    ax.set(xlabel="report IQM of final return (dashed: tuned baseline)", ylabel="fraction of configurations")
    fig.tight_layout()
    return save_figure(fig, out_stem)


@_themed
def plot_expected_max(expected_max: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """Expected report IQM after trying n configurations of each grid (Dodge et al. 2019):
    the best of them on the report seeds (oracle, dotted) and the one chosen on the
    selection seeds (solid)."""
    require_columns(expected_max, ["kind", "mode", "configurations", "expected_report_iqm"], "expected maximum")
    if expected_max.empty:
        raise PlotInputError("expected maximum table has no rows")
    data = expected_max.assign(grid=expected_max["kind"].map(KIND_NAMES))
    fig, (ax,) = _panel_grid(1, panel_size=(5.4, 3.6))
    sns.lineplot(data=data, x="configurations", y="expected_report_iqm", hue="grid", style="mode",
                 style_order=["selected", "oracle"], markers=True, dashes={"selected": "", "oracle": (1, 2)},
                 ax=ax)  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="configurations tried", ylabel="expected report IQM")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return save_figure(fig, out_stem)


@_themed
def plot_metatuning_histories(histories: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """Validation return of every meta-training run of the learned grid against
    meta-iteration, one panel per variant: colour the column axis, line style the row axis,
    one line per run (meta-seeds apart)."""
    require_columns(
        histories,
        ["generation", "validation_return", "label", "variant", "row_axis", "row_value", "column_axis",
         "column_value"],
        "meta-tuning histories",
    )  # fmt: skip
    rows = histories.dropna(subset=["validation_return"])
    if rows.empty:
        raise PlotInputError("meta-tuning histories have no validation returns")
    row_axis, column_axis = _axis_label(rows["row_axis"].iloc[0]), _axis_label(rows["column_axis"].iloc[0])
    data = rows.assign(**{column_axis: rows["column_value"].map("{:g}".format),
                          row_axis: rows["row_value"].map("{:g}".format)})  # fmt: skip
    variants = sorted(data["variant"].unique())
    fig, axes = _panel_grid(len(variants), panel_size=(5.4, 3.6))
    for ax, variant in zip(axes, variants):
        sns.lineplot(data=data[data["variant"] == variant], x="generation", y="validation_return", hue=column_axis,
                     style=row_axis, units="label", estimator=None, marker="o", markersize=4, ax=ax)  # fmt: skip
        ax.set(title=variant, xlabel="meta-iteration", ylabel="validation return")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return save_figure(fig, out_stem)
