"""The meta-tuning study: its cells from a preset, its statistics against independent
computations on hand-built runs, the command's errors, its figures and its table."""

from __future__ import annotations

import copy
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rlopt.analysis.metatuning import expected_max, metatuning_study, read_cells
from rlopt.analysis.stats import Bootstrap
from rlopt.cli import main
from rlopt.workflow_config import ConfigError, load_plan

REPO = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((REPO / "config/smoke.yaml").read_text())


def smoke_with(**metatuning) -> dict:
    config = copy.deepcopy(SMOKE)
    config["studies"]["metatuning"].update(metatuning)
    return config


# ----------------------------------------------------------------------------- the plan


def test_cells_cover_the_grid_with_extra_meta_seeds_on_corners_and_centre():
    config = smoke_with(
        axes={"reset_interval": [1, 2, 4], "meta_lr": [0.001, 0.003, 0.01]},
        variants={"global_norm": {"grad_norm": 0.5}, "elementwise": {"grad_norm": None, "grad_clip": 1.0}},
        meta_seeds={"count": 3, "cells": "corners_and_centre"},
        baseline={"optimizer": "adam", "grid": {"lr": [0.001, 0.003], "b2": [0.99, 0.999]}},
    )
    plan = load_plan(config, root=REPO)
    learned = [cell for cell in plan.metatuning_cells if cell.kind == "learned"]
    assert len(learned) == 2 * (9 + 5 * 2)  # every cell once, corners and centre twice more
    repeated = {(c.variant, c.settings["reset_interval"], c.settings["meta_lr"]) for c in learned if c.meta_seed == 2}
    assert {(r, m) for _, r, m in repeated} == {(1, 0.001), (1, 0.01), (4, 0.001), (4, 0.01), (2, 0.003)}
    assert len([c for c in plan.metatuning_cells if c.kind == "baseline"]) == 4
    # The cell that is the base block itself (its reset interval 2, meta lr and clip by default)
    # reuses the base's meta-training; every other cell has its own job.
    base_cell = "global_norm/reset_interval2-meta_lr0.001/meta_seed0"
    assert {c.name for c in learned if c.job == "metatrain/optim4rl_catch"} == {base_cell}
    assert len({c.job for c in learned}) == len(learned)
    assert len([job for job in plan.metatrain_jobs if job.startswith("studies/metatuning/")]) == len(learned) - 1

    corner = {"reset_interval": 4, "meta_lr": 0.01}
    cell = next(c for c in learned if (c.variant, c.settings, c.meta_seed) == ("elementwise", corner, 2))
    args = plan.metatrain_jobs[cell.job]
    base = plan.metatrain_jobs["metatrain/optim4rl_catch"]
    metagrad = json.loads(args["metagrad"])
    assert metagrad["reset_interval"] == 4 and metagrad["meta_lr"] == 0.01
    assert metagrad["grad_norm"] is None and metagrad["grad_clip"] == 1.0
    assert metagrad["iterations"] == json.loads(base["metagrad"])["iterations"]
    assert args["seed"] == base["seed"] + 2 and args["envs"] == "catch" and args["optimizer"] == "optim4rl"

    train = plan.metatuning_train_args(cell.name)
    assert train["inputs"] == [f"results/{cell.job}/best.npy"]
    assert json.loads(train["hparams"])["weights"] == f"results/{cell.job}/best.npy"
    assert train["seeds"] == "7000,7001,7100,7101" and train["agent"] == "a2c"
    adam = next(c for c in plan.metatuning_cells if c.kind == "baseline")
    assert plan.metatuning_train_args(adam.name)["optimizer"] == "adam"
    assert json.loads(plan.metatuning_train_args(adam.name)["hparams"]) == adam.settings


@pytest.mark.parametrize(
    "change, message",
    [
        ({"base": "open_es"}, r"studies.metatuning.base.*'open_es' is not a single-env metagrad block"),
        ({"axes": {"reset_interval": [2], "meta_learning_rate": [0.1]}}, r"meta_learning_rate"),
        (
            {"axes": {"reset_interval": [0], "meta_lr": [0.001]}},
            r"studies.metatuning \(variant global_norm.*reset_interval",
        ),
        ({"report_seeds": {"start": 7001, "count": 2}}, r"selection and report seeds must differ.*7001"),
        ({"selection_seeds": {"start": 2000, "count": 2}}, r"selection and validation seeds must differ.*2000"),
        ({"baseline": {"optimizer": "open", "grid": {"lr": [0.1]}}}, r"baseline.optimizer.*'open' is not one of"),
        ({"baseline": {"optimizer": "adam", "grid": {"momentum": [0.1]}}}, r"baseline.grid.*momentum"),
    ],
)
def test_a_bad_metatuning_block_is_named_before_any_job(change, message):
    with pytest.raises(ConfigError, match=message):
        load_plan(smoke_with(**change), root=REPO)


def test_the_axes_must_be_two():
    with pytest.raises(ConfigError, match=r"studies.metatuning.axes"):
        load_plan(smoke_with(axes={"reset_interval": [2]}), root=REPO)


# ------------------------------------------------------------------------ the statistics


def brute_force_expected_max(keys, values, tries):
    """Every ordered draw of ``tries`` cells with replacement, equally likely."""
    outcomes = []
    for draw in itertools.product(range(len(keys)), repeat=tries):
        chosen = max(draw, key=lambda i: (keys[i], values[i]))
        outcomes.append(values[chosen])
    return float(np.mean(outcomes))


@pytest.mark.parametrize("tries", [1, 2, 3, 4])
def test_expected_max_equals_enumerating_every_draw(tries):
    rng = np.random.default_rng(tries)
    keys = rng.integers(0, 3, size=5).astype(float)  # ties on the key are broken by the value
    values = rng.normal(size=5)
    assert expected_max(keys, values, tries) == pytest.approx(brute_force_expected_max(keys, values, tries))
    # Chosen on the values themselves it is the expected best of n draws, rising with n.
    assert expected_max(values, values, tries) >= expected_max(values, values, max(tries - 1, 1)) - 1e-12


SELECTION, REPORT = [1, 2, 3, 4], [11, 12, 13, 14, 15, 16, 17, 18]


def write_cell(root: Path, name: str, kind: str, variant: str, settings: dict, meta_seed, returns: dict) -> dict:
    """A run directory with the final return of each seed, and the cell's entry of --cells."""
    run = root / "runs" / name
    run.mkdir(parents=True)
    seeds = sorted(returns)
    (run / "summary.json").write_text(json.dumps({"seeds": seeds, "final_returns": [returns[s] for s in seeds]}))
    history = None
    if kind == "learned":
        history = root / "metatrain" / name / "history.parquet"
        history.parent.mkdir(parents=True)
        pd.DataFrame(
            {"generation": [0, 1, 0, 1], "env": ["catch", "catch", "all", "all"], "validation_return": [0.1, 0.2] * 2}
        ).to_parquet(history)
    return {"cell": name, "kind": kind, "variant": variant, "settings": settings, "meta_seed": meta_seed,
            "run": str(run), "history": str(history) if history else None}  # fmt: skip


def constant(value: float, noise: dict | None = None) -> dict:
    return {seed: value + (noise or {}).get(seed, 0.0) for seed in SELECTION + REPORT}


@pytest.fixture
def study(tmp_path):
    """A 2x2 learned grid (row effect 1.0, column effect 0.25, no noise; the (1, b) cell on two
    meta-seeds that differ by 0.2) and a 3-point baseline whose best on the selection seeds
    (b1) is not its best on the report seeds (b2)."""
    cells = []
    for row, column in itertools.product([1, 2], [0.1, 0.2]):
        value = 1.0 * (row == 2) + 0.25 * (column == 0.2)
        name = f"g/r{row}-c{column}/meta_seed0"
        cells.append(write_cell(tmp_path, name, "learned", "g", {"r": row, "c": column}, 0, constant(value)))
    cells.append(write_cell(tmp_path, "g/r1-c0.2/meta_seed1", "learned", "g", {"r": 1, "c": 0.2}, 1, constant(0.45)))
    report_bonus = {seed: 0.5 for seed in REPORT}
    cells.append(write_cell(tmp_path, "adam/b1", "baseline", "adam", {"lr": 1}, None, constant(0.6)))
    cells.append(write_cell(tmp_path, "adam/b2", "baseline", "adam", {"lr": 2}, None, constant(0.3, report_bonus)))
    cells.append(write_cell(tmp_path, "adam/b3", "baseline", "adam", {"lr": 3}, None, constant(0.0)))
    return {"axes": ["r", "c"], "cells": cells}


def test_the_tuned_baseline_is_chosen_on_selection_seeds_and_scored_on_report_seeds(study):
    seeds = read_cells(study, SELECTION, REPORT)
    tables = metatuning_study(seeds, pd.DataFrame(), study["axes"], Bootstrap(50, 0))
    assert tables.tuned_baseline == "adam/b1"  # 0.6 on the selection seeds; b2 is 0.8 on the report ones
    summary = tables.summary.set_index(["kind", "metric"])
    assert summary.loc[("baseline", "selected_selection_iqm"), "estimate"] == pytest.approx(0.6)
    assert summary.loc[("baseline", "best_report_iqm"), "cell"] == "adam/b2"
    # Learned grid at meta-seed 0: 0, 0.25, 1, 1.25; two beat the tuned baseline's 0.6.
    beating = summary.loc[("learned", "fraction_beating_tuned_baseline")]
    assert (beating["count"], beating["total"], beating["estimate"]) == (2, 4, 0.5)
    assert summary.loc[("learned", "worst_report_iqm"), "estimate"] == pytest.approx(0.0)
    assert summary.loc[("learned", "selected_report_iqm"), "cell"] == "g/r2-c0.2/meta_seed0"
    cells = tables.cells.set_index(["cell", "role", "metric"])
    difference = cells.loc[("g/r2-c0.1/meta_seed0", "report", "iqm_minus_tuned_baseline")]
    assert difference["estimate"] == pytest.approx(1.0 - 0.6)
    assert cells.loc[("g/r2-c0.1/meta_seed0", "report", "probability_of_improvement"), "estimate"] == 1.0
    assert set(tables.cells.loc[tables.cells["chosen"], "cell"]) == {"adam/b1", "g/r2-c0.2/meta_seed0"}


def test_the_variance_decomposition_finds_each_source(study):
    seeds = read_cells(study, SELECTION, REPORT)
    variance = metatuning_study(seeds, pd.DataFrame(), study["axes"], Bootstrap(50, 0)).variance
    grid = variance[variance["scope"] == "grid"].set_index("source")["sum_of_squares"]
    # Cell values 0, .25, 1, 1.25 with 8 report seeds each: row SS = 32 * 0.5^2, column SS = 32 * 0.125^2.
    assert grid["r"] == pytest.approx(32 * 0.25) and grid["c"] == pytest.approx(32 * 0.125**2)
    assert grid["interaction"] == pytest.approx(0.0, abs=1e-12) and grid["evaluation_seed"] == pytest.approx(0.0)
    assert "variant" not in grid  # one variant: nothing to explain
    repeated = variance[variance["scope"] == "repeated_cells"].set_index("source")["sum_of_squares"]
    # The (1, 0.2) cell: meta-seeds at 0.25 and 0.45, 8 seeds each.
    assert repeated["meta_seed"] == pytest.approx(16 * 0.1**2) and repeated["configuration"] == pytest.approx(0.0)
    for scope, rows in variance.groupby("scope"):
        assert rows["share"].sum() == pytest.approx(1.0), scope


def test_the_command_writes_every_table_figures_and_the_latex_table(study, tmp_path):
    out = tmp_path / "stats"
    argv = ["metatuning-stats", "--cells", json.dumps(study), "--selection-seeds", "1:5", "--report-seeds", "11:19",
            "--reps", "50", "--out-dir", str(out)]  # fmt: skip
    assert main(argv) == 0
    for name in ("seeds", "cells", "summary", "expected_max", "variance", "histories"):
        assert not pd.read_parquet(out / f"{name}.parquet").empty, name
    assert json.loads((out / "stats.json").read_text())["tuned_baseline"] == "adam/b1"
    histories = pd.read_parquet(out / "histories.parquet")
    assert len(histories) == 5 * 2 and set(histories["label"]) == {c["cell"] for c in study["cells"][:5]}

    for kind, flag, table in (
        ("metatuning-heatmap", "--cells", "cells"),
        ("metatuning-distribution", "--cells", "cells"),
        ("expected-max", "--expected-max", "expected_max"),
        ("metatuning-histories", "--histories", "histories"),
    ):
        stem = tmp_path / "figures" / kind
        assert main(["plot", kind, flag, str(out / f"{table}.parquet"), "--out", str(stem)]) == 0
        assert stem.with_suffix(".png").stat().st_size > 5_000

    from rlopt.report.latex import metatuning_fragment

    text = metatuning_fragment(pd.read_parquet(out / "summary.parquet"), pd.read_parquet(out / "variance.parquet"))
    assert "2/4" in text and r"c=0.2, r=2" in text and "meta seed" in text


@pytest.mark.parametrize(
    "argv_change, message",
    [
        ({"--report-seeds": "3:6"}, r"selection and report seeds overlap: \[3, 4\]"),
        ({"--report-seeds": "11:30"}, r"lacks seeds \[19, 20"),
        ({"--selection-seeds": "x"}, r"--selection-seeds: malformed"),
        ({"--cells": '{"axes": ["r"], "cells": []}'}, r"--cells: needs 'axes'"),
    ],
)
def test_bad_input_to_the_command_is_a_clear_error(study, tmp_path, capsys, argv_change, message):
    options = {"--cells": json.dumps(study), "--selection-seeds": "1:5", "--report-seeds": "11:19",
               "--out-dir": str(tmp_path / "stats")}  # fmt: skip
    options.update(argv_change)
    assert main(["metatuning-stats", *itertools.chain.from_iterable(options.items()), "--reps", "20"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "stats" / "stats.json").exists()
