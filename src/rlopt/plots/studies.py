"""Figures of the collapse and non-stationary studies (tables of ``rlopt collapse-stats`` and
``rlopt nonstationary-stats``), written as ``<out_stem>.pdf`` and ``.png``.

Time runs in PPO updates on the bottom axis and in env steps on the top one (a study's
runs share one batch size), because collapse and adaptation are about optimizer steps.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import EngFormatter

from rlopt.plots.figures import (
    PlotInputError,
    _legend_below,
    _lineplot_panels,
    _panel_grid,
    _t_interval,
    _themed,
    label_palette,
    require_columns,
    save_figure,
)

STATUS_COLOURS = {"learned": "#0173b2", "failed to learn": "#949494", "collapsed": "#d55e00"}
SEGMENT_SHADE = "0.92"


def _steps_axis(ax, table: pd.DataFrame) -> None:
    """A top axis in env steps, from the table's steps per update."""
    rows = table[table["update"] > 0]
    if rows.empty:
        return
    batch = float((rows["global_step"] / rows["update"]).median())
    top = ax.secondary_xaxis("top", functions=(lambda u: u * batch, lambda s: s / batch))
    top.xaxis.set_major_formatter(EngFormatter(sep=""))
    top.set_xlabel("environment steps")


@_themed
def plot_iqm_curves(iqm_curves: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """IQM over seeds of the (binned) return per arm, with its 95% stratified-bootstrap band."""
    require_columns(iqm_curves, ["label", "update", "global_step", "iqm", "ci_low", "ci_high"], "IQM curves")
    if iqm_curves.empty:
        raise PlotInputError("IQM curves table has no rows")
    palette = label_palette(iqm_curves["label"])
    fig, (ax,) = _panel_grid(1, panel_size=(6.0, 3.8))
    for label, rows in iqm_curves.groupby("label"):
        rows = rows.sort_values("update")
        ax.plot(rows["update"], rows["iqm"], color=palette[label], lw=2)
        ax.fill_between(rows["update"], rows["ci_low"], rows["ci_high"], color=palette[label], alpha=0.2)
    ax.set(xlabel="PPO update", ylabel="IQM of episodic return")
    _steps_axis(ax, iqm_curves)
    fig.tight_layout()
    _legend_below(fig, palette, iqm_curves["label"], title="arm")
    return save_figure(fig, out_stem)


@_themed
def plot_seed_flags(curves: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """Small multiples, one row per arm and one column per seed: the binned return (thin) and
    its trailing mean (thick), coloured by the detector's verdict."""
    require_columns(curves, ["label", "seed", "update", "episodic_return", "smoothed", "status"], "collapse curves")
    if curves.empty:
        raise PlotInputError("collapse curves table has no rows")
    labels = sorted(curves["label"].unique())
    seeds = sorted(curves["seed"].unique())
    fig, axes = plt.subplots(
        len(labels), len(seeds), figsize=(2.2 * len(seeds), 1.7 * len(labels)), squeeze=False, sharex=True, sharey=True
    )
    for row, label in enumerate(labels):
        for col, seed in enumerate(seeds):
            ax = axes[row][col]
            rows = curves[(curves["label"] == label) & (curves["seed"] == seed)].sort_values("update")
            if rows.empty:
                ax.set_axis_off()
                continue
            colour = STATUS_COLOURS[rows["status"].iloc[0]]
            ax.plot(rows["update"], rows["episodic_return"], color=colour, lw=0.7, alpha=0.5)
            ax.plot(rows["update"], rows["smoothed"], color=colour, lw=1.8)
            ax.set_title(f"{label} s{seed}: {rows['status'].iloc[0]}", fontsize=7, color=colour)
            ax.tick_params(labelsize=6)
    fig.supxlabel("PPO update")
    fig.supylabel("episodic return")
    fig.tight_layout()
    return save_figure(fig, out_stem)


UPDATE_SIZE_PANELS = {"update_max_over_lr": "max |update| / lr", "param_change_l1": "L1 parameter change per update"}


@_themed
def plot_update_sizes(update_sizes: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """Per arm, mean over seeds (95% t band) of max|update|/lr (1 = Adam's bound with
    beta1 = beta2; log scale) and of the L1 parameter change per update."""
    require_columns(update_sizes, ["label", "seed", "update", *UPDATE_SIZE_PANELS], "update sizes")
    # Networks differ between envs, so their parameter changes are not pooled: a panel per env.
    envs = sorted(update_sizes["env"].unique()) if "env" in update_sizes else []
    by_env = [(f"{env}: ", update_sizes[update_sizes["env"] == env]) for env in envs] if len(envs) > 1 else []
    panels, bounded = {}, []
    for metric, title in UPDATE_SIZE_PANELS.items():
        for prefix, table in by_env or [("", update_sizes)]:
            rows = table.dropna(subset=[metric])
            if not rows.empty:
                panels[prefix + title] = rows.rename(columns={metric: "value"})
                if metric == "update_max_over_lr":
                    bounded.append(prefix + title)
    if not panels:
        raise PlotInputError("update sizes table has no finite values")
    fig = _lineplot_panels(
        panels, "update", "value", "label", label_palette(update_sizes["label"]), "PPO update", "", hue_title="arm"
    )
    for ax, title in zip(fig.axes, panels):
        ax.set_yscale("log")
        if title in bounded:
            ax.axhline(1.0, color="0.3", lw=1, ls="--")
    return save_figure(fig, out_stem)


@_themed
def plot_nonstationary_curves(curves: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """One panel per env and schedule: return per update, mean over seeds (95% t band), one
    line per arm; every other segment shaded."""
    require_columns(
        curves,
        ["env", "schedule", "label", "seed", "update", "global_step", "episodic_return", "segment"],
        "non-stationary curves",
    )
    if curves.empty:
        raise PlotInputError("non-stationary curves table has no rows")
    panels = sorted(
        curves[["env", "schedule"]].drop_duplicates().itertuples(index=False),
        key=lambda p: (p.env, p.schedule == "stationary", p.schedule),
    )
    several_envs = curves["env"].nunique() > 1
    palette = label_palette(curves["label"])
    fig, axes = _panel_grid(len(panels), panel_size=(5.0, 3.4))
    for ax, (env, schedule) in zip(axes, panels):
        rows = curves[(curves["env"] == env) & (curves["schedule"] == schedule)]
        segments = rows.groupby("segment")["update"].agg(["min", "max"])
        for segment, (start, stop) in segments.iterrows():
            if segment % 2:
                ax.axvspan(start - 0.5, stop + 0.5, color=SEGMENT_SHADE, zorder=0)
        sns.lineplot(
            data=rows,
            x="update",
            y="episodic_return",
            hue="label",
            palette=palette,
            errorbar=_t_interval,
            ax=ax,
            legend=False,
        )
        ax.set(title=f"{env}: {schedule}" if several_envs else schedule, xlabel="PPO update", ylabel="episodic return")
        _steps_axis(ax, rows)
    fig.tight_layout()
    _legend_below(fig, palette, curves["label"], title="arm")
    return save_figure(fig, out_stem)
