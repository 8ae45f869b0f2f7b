"""The meta-tuning study: how much a learned optimizer's result depends on its own
meta-hyperparameters (docs/studies.md §5(c); the term project's "meta-tuning paradox").

Design.  A grid of a meta-gradient block's meta-hyperparameters: two axes (e.g. reset
interval x meta learning rate) for each gradient-processing variant, every cell meta-trained
once (meta-seed 0) and some cells on further meta-seeds.  A handcrafted optimizer gets a grid
of its own hyperparameters.  Every cell of both grids trains the same *selection* seeds
(on which a cell is chosen, as a user tuning it would) and *report* seeds (fresh ones, on
which every number reported is measured; Patterson et al. 2024).  A run's score is its
final return (``final_returns`` of ``summary.json``, rlopt's window estimator).

Per cell and seed set: the IQM over seeds with a 95% stratified-bootstrap CI (rliable).  The
*tuned baseline* is the baseline cell with the best selection IQM; on the report seeds every
cell is compared with it by the IQM difference and the probability of improvement
P(cell run > tuned-baseline run) (rliable, independent bootstrap of the two samples).

Grid summaries (meta-seed 0 cells: one draw per configuration), per grid:

- best, median and worst cell by report IQM;
- the cell chosen on the selection seeds, its selection IQM against its report IQM (the gap
  is the selection bias of choosing on the seeds one reports);
- the fraction of learned cells whose report IQM exceeds the tuned baseline's, with a
  Clopper-Pearson interval over cells;
- expected performance after trying n configurations (Dodge et al. 2019), n = 1..K, drawing
  n of the K cells uniformly with replacement.  If the cells sorted by a key have values
  v_(1) <= ... <= v_(K), the largest key among n draws is that of rank i with probability
  (i/K)^n - ((i-1)/K)^n.  ``oracle``: key and value both the report IQM (the best of n as
  measured on the report seeds); ``selected``: key the selection IQM, value the report IQM
  (what choosing honestly yields).

Variance decomposition (sums of squares of report-seed final returns of learned runs, exact in
a balanced design): over the meta-seed-0 grid, between configurations (split into each
factor's main effect and the rest, "interaction") and between evaluation seeds within a
run; over the cells meta-trained on several meta-seeds, between configurations, between
meta-seeds within a configuration and between evaluation seeds within a run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rlopt.analysis.collapse import clopper_pearson
from rlopt.analysis.stats import Bootstrap
from rlopt.analysis.studies import StudyInputError, iqm
from rlopt.runs import read_summary

LEARNED = "learned"
BASELINE = "baseline"
SELECTION = "selection"
REPORT = "report"
CELL_COLUMNS = (
    "cell",
    "kind",
    "variant",
    "meta_seed",
    "settings",
    "row_axis",
    "row_value",
    "column_axis",
    "column_value",
)


@dataclass(frozen=True)
class MetaTuningTables:
    seeds: pd.DataFrame  # one row per run and seed: the final return and the seed's role
    cells: pd.DataFrame  # per cell, role and metric: estimate with CI; ``chosen``: its grid's pick
    summary: pd.DataFrame  # per grid: best / median / worst, selected cell, fraction beating
    expected_max: pd.DataFrame  # per grid, n and mode (oracle / selected)
    variance: pd.DataFrame  # per scope and source: sum of squares and share
    histories: pd.DataFrame  # meta-training history of every learned cell
    tuned_baseline: str  # the baseline cell chosen on the selection seeds


def read_cells(spec: dict, selection: list[int], report: list[int], root: Path = Path(".")) -> pd.DataFrame:
    """``seeds`` table: every cell's run, one row per seed (role selection or report)."""
    overlap = set(selection) & set(report)
    if overlap:
        raise StudyInputError(f"selection and report seeds overlap: {sorted(overlap)}")
    rows = []
    for cell in spec["cells"]:
        run = root / cell["run"]
        summary = read_summary(run, ("seeds", "final_returns"))
        by_seed = dict(zip(summary["seeds"], summary["final_returns"]))
        missing = sorted(set(selection + report) - set(by_seed))
        if missing:
            raise StudyInputError(f"{run}: the run lacks seeds {missing} of the study")
        for role, seeds in ((SELECTION, selection), (REPORT, report)):
            rows += [
                {**_cell_columns(cell, spec["axes"]), "seed": seed, "role": role, "final_return": by_seed[seed]}
                for seed in seeds
            ]
    table = pd.DataFrame(rows)
    if not (table["kind"] == LEARNED).any() or not (table["kind"] == BASELINE).any():
        raise StudyInputError("the study needs learned and baseline cells")
    return table


def _cell_columns(cell: dict, axes: list[str]) -> dict:
    learned = cell["kind"] == LEARNED
    return {
        "cell": cell["cell"],
        "kind": cell["kind"],
        "variant": cell["variant"],
        "meta_seed": cell["meta_seed"] if learned else -1,
        "settings": json.dumps(cell["settings"], sort_keys=True),
        "row_axis": axes[0],
        "row_value": float(cell["settings"][axes[0]]) if learned else np.nan,
        "column_axis": axes[1],
        "column_value": float(cell["settings"][axes[1]]) if learned else np.nan,
    }


def read_histories(spec: dict, root: Path = Path(".")) -> pd.DataFrame:
    """The combined (env 'all') rows of every learned cell's meta-training history."""
    frames = []
    for cell in spec["cells"]:
        if cell["kind"] != LEARNED:
            continue
        path = root / cell["history"]
        if not path.is_file():
            raise StudyInputError(f"{path}: no meta-training history of cell {cell['cell']}")
        history = pd.read_parquet(path)
        history = history[history["env"] == "all"].drop(columns="env")
        frames.append(history.assign(label=cell["cell"], **_cell_columns(cell, spec["axes"])))
    return pd.concat(frames, ignore_index=True)


def metatuning_study(seeds: pd.DataFrame, histories: pd.DataFrame, axes: list[str], bootstrap: Bootstrap):
    """Every table of the study from the ``seeds`` table of :func:`read_cells`."""
    selection_iqm = _iqms(seeds, SELECTION)
    report_iqm = _iqms(seeds, REPORT)
    chosen = {kind: str(_grid(selection_iqm, kind)["iqm"].idxmax()) for kind in (LEARNED, BASELINE)}
    tuned = chosen[BASELINE]
    cells = _cell_intervals(seeds, tuned, bootstrap)
    return MetaTuningTables(
        seeds=seeds,
        cells=cells.assign(chosen=cells["cell"].isin(chosen.values())),
        summary=_grid_summary(selection_iqm, report_iqm, tuned),
        expected_max=_expected_max(selection_iqm, report_iqm),
        variance=_variance(seeds, axes),
        histories=histories,
        tuned_baseline=tuned,
    )


def _iqms(seeds: pd.DataFrame, role: str) -> pd.DataFrame:
    """IQM over ``role`` seeds per cell (columns of the seeds table, then ``iqm``)."""
    rows = seeds[seeds["role"] == role]
    return (
        rows.groupby(list(CELL_COLUMNS), dropna=False, sort=False)["final_return"]
        .apply(iqm)
        .rename("iqm")
        .reset_index()
    )


def _returns(seeds: pd.DataFrame, cell: str, role: str) -> np.ndarray:
    rows = seeds[(seeds["cell"] == cell) & (seeds["role"] == role)]
    return rows["final_return"].to_numpy(np.float64)[:, None]


def _cell_intervals(seeds: pd.DataFrame, tuned: str, bootstrap: Bootstrap) -> pd.DataFrame:
    """Per cell: IQM [CI] on each seed set; on the report seeds also the IQM difference from
    the tuned baseline and P(cell > tuned baseline), each with its CI."""
    reference = _returns(seeds, tuned, REPORT)
    rows = []
    for cell, group in seeds.groupby("cell", sort=False):
        first = group.iloc[0]
        columns = {k: first[k] for k in CELL_COLUMNS}
        for role in (SELECTION, REPORT):
            scores = _returns(seeds, cell, role)
            point, ci = bootstrap.intervals(scores, ["iqm"])
            rows.append({**columns, "role": role, "metric": "iqm", **_interval(point[0], ci[:, 0], len(scores))})
        scores = _returns(seeds, cell, REPORT)
        for metric, estimate in (
            ("iqm_minus_tuned_baseline", bootstrap.iqm_difference),
            ("probability_of_improvement", bootstrap.probability_of_improvement),
        ):
            point, ci = estimate(scores, reference)
            rows.append({**columns, "role": REPORT, "metric": metric, **_interval(point, ci, len(scores))})
    return pd.DataFrame(rows)


def _interval(estimate: float, ci, num_seeds: int) -> dict:
    return {"estimate": float(estimate), "ci_low": float(ci[0]), "ci_high": float(ci[1]), "num_seeds": num_seeds}


def _grid(iqms: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The cells of one grid, one per configuration (learned: meta-seed 0)."""
    rows = iqms[iqms["kind"] == kind]
    return rows[rows["meta_seed"] <= 0].set_index("cell")


def _grid_summary(selection_iqm: pd.DataFrame, report_iqm: pd.DataFrame, tuned: str) -> pd.DataFrame:
    tuned_report = float(report_iqm.set_index("cell").loc[tuned, "iqm"])
    rows = []
    for kind in (LEARNED, BASELINE):
        grid = _grid(report_iqm, kind)
        report = grid["iqm"]
        selection = _grid(selection_iqm, kind)["iqm"]
        ranked = report.sort_values(kind="stable")
        median_cell = ranked.index[(len(ranked) - 1) // 2]
        chosen = selection.idxmax()
        named = [
            ("best_report_iqm", ranked.index[-1], ranked.iloc[-1]),
            ("median_report_iqm", median_cell, ranked.loc[median_cell]),
            ("worst_report_iqm", ranked.index[0], ranked.iloc[0]),
            ("selected_selection_iqm", chosen, selection.loc[chosen]),
            ("selected_report_iqm", chosen, report.loc[chosen]),
        ]
        rows += [
            {"kind": kind, "metric": metric, "cell": cell, "settings": grid.loc[cell, "settings"], "estimate": value}
            for metric, cell, value in named
        ]
        beating = int((report > tuned_report).sum())
        low, high = clopper_pearson(beating, len(report))
        rows.append(
            {"kind": kind, "metric": "fraction_beating_tuned_baseline", "cell": None, "settings": None,
             "estimate": beating / len(report), "ci_low": low, "ci_high": high, "count": beating,
             "total": len(report)}
        )  # fmt: skip
    table = pd.DataFrame(rows)
    for column in ("estimate", "ci_low", "ci_high"):
        table[column] = table[column].astype(float)
    for column in ("count", "total"):
        table[column] = table[column].astype("Int64")
    return table


def expected_max(keys: np.ndarray, values: np.ndarray, tries: int) -> float:
    """Expected ``value`` of the largest-``key`` cell among ``tries`` uniform draws with
    replacement (Dodge et al. 2019; ties of the key broken by the value)."""
    order = np.lexsort((values, keys))
    k = len(order)
    ranks = np.arange(1, k + 1)
    weights = (ranks / k) ** tries - ((ranks - 1) / k) ** tries
    return float(np.dot(weights, np.asarray(values, np.float64)[order]))


def _expected_max(selection_iqm: pd.DataFrame, report_iqm: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for kind in (LEARNED, BASELINE):
        report = _grid(report_iqm, kind)["iqm"]
        selection = _grid(selection_iqm, kind)["iqm"].reindex(report.index)
        for tries in range(1, len(report) + 1):
            for mode, keys in (("oracle", report), ("selected", selection)):
                value = expected_max(keys.to_numpy(), report.to_numpy(), tries)
                rows.append({"kind": kind, "mode": mode, "configurations": tries, "expected_report_iqm": value})
    return pd.DataFrame(rows)


def _variance(seeds: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Sums of squares of the learned runs' report-seed final returns (module docstring)."""
    rows = seeds[(seeds["kind"] == LEARNED) & (seeds["role"] == REPORT)].copy()
    rows["configuration"] = (
        rows["variant"] + "|" + rows["row_value"].astype(str) + "|" + rows["column_value"].astype(str)
    )
    grid = rows[rows["meta_seed"] == 0]
    factors = {"variant": "variant", axes[0]: "row_value", axes[1]: "column_value"}
    table = [{"scope": "grid", **entry} for entry in _grid_variance(grid, factors)]
    repeated = rows.groupby("configuration")["meta_seed"].transform("nunique") > 1
    if repeated.any():
        table += [{"scope": "repeated_cells", **entry} for entry in _nested_variance(rows[repeated])]
    frame = pd.DataFrame(table)
    totals = frame.groupby("scope")["sum_of_squares"].transform("sum")
    frame["share"] = np.where(totals > 0, frame["sum_of_squares"] / totals.where(totals > 0, 1.0), np.nan)
    return frame


def _grid_variance(grid: pd.DataFrame, factors: dict[str, str]) -> list[dict]:
    y = grid["final_return"].to_numpy(np.float64)
    mean = y.mean()
    config_means = grid.groupby("configuration")["final_return"].transform("mean").to_numpy()
    between = float(((config_means - mean) ** 2).sum())
    entries = []
    for name, column in factors.items():
        if grid[column].nunique() < 2:
            continue  # a factor with one level explains nothing
        level_means = grid.groupby(column)["final_return"].transform("mean").to_numpy()
        entries.append({"source": name, "sum_of_squares": float(((level_means - mean) ** 2).sum())})
    explained = sum(entry["sum_of_squares"] for entry in entries)
    entries.append({"source": "interaction", "sum_of_squares": max(between - explained, 0.0)})
    entries.append({"source": "evaluation_seed", "sum_of_squares": float(((y - config_means) ** 2).sum())})
    return entries


def _nested_variance(rows: pd.DataFrame) -> list[dict]:
    y = rows["final_return"].to_numpy(np.float64)
    config_means = rows.groupby("configuration")["final_return"].transform("mean").to_numpy()
    run_means = rows.groupby(["configuration", "meta_seed"])["final_return"].transform("mean").to_numpy()
    return [
        {"source": "configuration", "sum_of_squares": float(((config_means - y.mean()) ** 2).sum())},
        {"source": "meta_seed", "sum_of_squares": float(((run_means - config_means) ** 2).sum())},
        {"source": "evaluation_seed", "sum_of_squares": float(((y - run_means) ** 2).sum())},
    ]
