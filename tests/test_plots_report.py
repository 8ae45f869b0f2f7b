"""Figures, LaTeX fragments and the report build, from small synthetic result tables."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rlopt.cli import main
from rlopt.report import latex

LABELS = ["adam", "optim4rl_l2", "open_pretrained"]
ENVS = ["ant", "breakout"]
SEEDS = [0, 1, 2]
SCOPES = ["all", *ENVS]
MAIN_TEX = Path(__file__).resolve().parents[1] / "report" / "main.tex"
SECTION_TITLES = ["Setup", "Tuning", "Evaluation", "OPEN", "Optim4RL", "Ablations", "Studies", "Compute cost"]


def interval_rows(rng, labels=LABELS, scopes=SCOPES):
    for scope in scopes:
        for normalization in ("raw", "reference"):
            for label in labels:
                for metric in ("iqm", "mean", "median", "optimality_gap"):
                    estimate = rng.uniform(0.5, 1.5)
                    yield dict(scope=scope, normalization=normalization, label=label, metric=metric,
                               estimate=estimate, ci_low=estimate - 0.1, ci_high=estimate + 0.2,
                               reps=100, num_runs=len(SEEDS))  # fmt: skip


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, Path]:
    """The collected and statistics tables of docs/results-format.md, written as parquet."""
    rng = np.random.default_rng(0)
    steps = np.arange(1, 41) * 500
    curves = pd.concat(
        pd.DataFrame(dict(label=label, optimizer=label, env=env, seed=seed, global_step=steps,
                          episodic_return=np.log1p(steps / 1000) + rng.normal(0, 0.2, len(steps))))
        .sample(frac=0.9, random_state=seed)  # some logging intervals without a finished episode
        for label in LABELS for env in ENVS for seed in SEEDS
    )  # fmt: skip
    final_returns = pd.DataFrame(
        dict(label=label, optimizer=label, env=env, seed=seed, final_return=rng.uniform(1, 3), diverged=False)
        for label in LABELS for env in ENVS for seed in SEEDS
    )  # fmt: skip
    intervals = pd.DataFrame(interval_rows(rng))
    poi = pd.DataFrame(
        dict(scope=scope, label=label, reference="adam", estimate=0.6, ci_low=0.45, ci_high=0.75)
        for scope in SCOPES for label in LABELS[1:]
    )  # fmt: skip
    profile = pd.DataFrame(
        dict(scope=scope, label=label, tau=tau, fraction=np.exp(-tau), ci_low=np.exp(-tau) - 0.05,
             ci_high=np.exp(-tau) + 0.05)
        for scope in SCOPES for label in LABELS for tau in np.linspace(0, 2, 11)
    )  # fmt: skip
    runtime = pd.DataFrame(
        dict(label=label, optimizer=label, env=env, num_seeds=len(SEEDS), total_steps=20_000,
             steps_per_second=5_000.0 * (i + 1), wall_seconds=90.0 * (i + 1))
        for i, label in enumerate(LABELS) for env in ENVS
    )  # fmt: skip
    generations = pd.DataFrame(dict(generation=np.tile(np.arange(10), 2), fitness=rng.normal(size=20),
                                    run=np.repeat(["a", "b"], 10)))  # fmt: skip
    directory = tmp_path_factory.mktemp("tables")
    frames = dict(curves=curves, final_returns=final_returns, intervals=intervals, poi=poi,
                  profile=profile, runtime=runtime, generations=generations)  # fmt: skip
    paths = {}
    for name, frame in frames.items():
        paths[name] = directory / f"{name}.parquet"
        frame.to_parquet(paths[name], index=False)
    return paths


def plot_commands(tables: dict[str, Path]) -> dict[str, list[str]]:
    return {
        "curves": ["curves", "--curves", str(tables["curves"])],
        "intervals": ["intervals", "--intervals", str(tables["intervals"])],
        "intervals_per_env": [
            "intervals",
            "--intervals",
            str(tables["intervals"]),
            "--per-env",
            "--normalization",
            "raw",
        ],  # fmt: skip
        "intervals_env_scope": ["intervals", "--intervals", str(tables["intervals"]), "--scope", "ant"],
        "normalized": ["normalized", "--final-returns", str(tables["final_returns"]), "--reference", "adam"],
        "poi": ["poi", "--poi", str(tables["poi"])],
        "profile": ["profile", "--profile", str(tables["profile"])],
        "runtime": ["runtime", "--runtime", str(tables["runtime"])],
        "generations": ["generations", "--table", str(tables["generations"]), "--y", "fitness", "--hue", "run"],
    }


def assert_figure_written(stem: Path) -> None:
    for suffix in (".pdf", ".png"):
        path = stem.with_suffix(suffix)
        assert path.is_file() and path.stat().st_size > 1000, path


def test_every_plot_command_writes_pdf_and_png(tables, tmp_path):
    for name, command in plot_commands(tables).items():
        assert main(["plot", *command, "--out", str(tmp_path / name)]) == 0, name
        assert_figure_written(tmp_path / name)


def test_plots_cope_with_one_env_one_seed_and_missing_labels(tables, tmp_path):
    from rlopt.plots import figures

    curves = pd.read_parquet(tables["curves"]).query("env == 'ant' and seed == 0")
    final_returns = pd.read_parquet(tables["final_returns"]).query("env == 'ant' and seed == 0")
    intervals = pd.read_parquet(tables["intervals"])
    intervals = intervals[~((intervals["scope"] == "ant") & (intervals["label"] == "adam"))]

    figures.plot_return_curves(curves, tmp_path / "curves")
    figures.plot_normalized_scores(final_returns, "adam", tmp_path / "normalized")
    figures.plot_intervals_per_env(intervals, tmp_path / "per_env")
    figures.plot_runtime(pd.read_parquet(tables["runtime"]).head(1), tmp_path / "runtime")
    for stem in ("curves", "normalized", "per_env", "runtime"):
        assert_figure_written(tmp_path / stem)


def test_a_curve_with_few_logging_steps_is_drawn_as_points_and_says_so(tables, tmp_path, monkeypatch):
    """Freeway at the default budget: every env ends its first episode at one step, which a
    line would not show."""
    from rlopt.plots import figures

    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, out_stem: drawn.append(fig) or [])
    curves = pd.read_parquet(tables["curves"])
    full = curves[curves["env"] == ENVS[0]]
    one_step = full.assign(env="freeway", global_step=161_792)
    figures.plot_return_curves(pd.concat([full, one_step]), tmp_path / "curves")
    panels = {ax.get_title(): ax for ax in drawn[0].axes}
    assert set(panels) >= {ENVS[0], "freeway (1 step with episode ends)"}
    points = [line for line in panels["freeway (1 step with episode ends)"].lines if line.get_marker() == "o"]
    assert len(points) == len(LABELS) and all(abs(line.get_xdata()[0] - 161_792) < 5_000 for line in points)
    assert not [line for line in panels[ENVS[0]].lines if line.get_marker() == "o"]


def test_an_env_the_reference_cannot_normalise_is_shown_raw_and_says_so(tmp_path, monkeypatch):
    """The statistics give an env whose reference mean is not positive raw rows only (e.g.
    Catch early in training): its panel shows them instead of vanishing, and with no
    normalisable env at all the figure is still drawn (it used to fail the pipeline)."""
    from rlopt.plots import figures

    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, out_stem: drawn.append(fig) or [])

    def rows(scope, normalization):
        return [
            dict(
                scope=scope,
                normalization=normalization,
                label=label,
                metric="iqm",
                estimate=1.0,
                ci_low=0.5,
                ci_high=1.5,
            )  # fmt: skip
            for label in ("adam", "open")
        ]

    both = rows("all", "reference") + rows("breakout", "reference") + rows("breakout", "raw") + rows("catch", "raw")
    figures.plot_intervals_per_env(pd.DataFrame(both), tmp_path / "mixed")
    raw_only = rows("all", "raw") + rows("catch", "raw")
    figures.plot_intervals_per_env(pd.DataFrame(raw_only), tmp_path / "raw")
    titles = [[ax.get_title() for ax in fig.axes if ax.get_title()] for fig in drawn]
    assert titles == [
        ["all", "breakout", "catch (raw: reference mean not positive)"],
        ["catch (raw: reference mean not positive)"],  # a raw aggregate over envs mixes their scales
    ]
    assert drawn[0].axes[2].get_xlabel() == "IQM of final return"


def test_plot_reports_missing_file_and_column(tables, tmp_path, capsys):
    out = str(tmp_path / "x")
    assert main(["plot", "curves", "--curves", str(tmp_path / "absent.parquet"), "--out", out]) == 2
    assert "absent.parquet: no such file" in capsys.readouterr().err
    assert main(["plot", "poi", "--poi", str(tables["runtime"]), "--out", out]) == 2
    assert "lacks column(s) ['scope', 'reference'" in capsys.readouterr().err
    assert main(["plot", "normalized", "--final-returns", str(tables["final_returns"]),
                 "--reference", "sgd", "--out", out]) == 2  # fmt: skip
    assert "reference label 'sgd'" in capsys.readouterr().err


def test_fragments_escape_latex_special_characters():
    assert latex.escape_latex("optim4rl_l2 & 50% #1 $x^2$ ~{a}\\") == (
        r"optim4rl\_l2 \& 50\% \#1 \$x\textasciicircum{}2\$ \textasciitilde{}\{a\}\textbackslash{}"
    )
    rng = np.random.default_rng(1)
    intervals = pd.DataFrame(interval_rows(rng, labels=["open_pretrained"], scopes=["all", "ant_v2"]))
    table = latex.intervals_fragment(intervals)
    assert r"open\_pretrained" in table and r"ant\_v2" in table and "open_pretrained" not in table
    preset = latex.preset_fragment(dict(preset="smoke_test", description="CI & tests", total_steps={"ant": 20_000},
                                        num_seeds=3, bootstrap_reps=100))  # fmt: skip
    assert r"\newcommand{\rloptPreset}{smoke\_test}" in preset
    assert r"CI \& tests" in preset
    assert "Reduced scale: 20,000 (ant) environment steps per run; 3 seeds" in preset


def test_cost_table_sums_time_and_takes_peak_memory_per_rule(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    files = {
        "benchmarks/train_ppo/ant_adam.tsv": "60.0\t0:01:00\t500.0\t1\t1\t1\t0\t0\t90\t50.0\n",
        "benchmarks/train_ppo/ant_open.tsv": "3600.0\t1:00:00\t900.0\t1\t1\t1\t0\t0\t90\t3000.0\n",
        "benchmarks/stats.tsv": "5.0\t0:00:05\tNA\t-\t-\t-\t-\t-\t-\t-\n",
    }
    for relative, row in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(header + row)
    cost = latex.summarise_cost(latex.read_benchmarks([tmp_path / r for r in files])).set_index("rule")
    assert cost.loc["train_ppo", "jobs"] == 2
    assert cost.loc["train_ppo", "wall_seconds"] == 3660.0
    assert cost.loc["train_ppo", "peak_rss_mb"] == 900.0
    table = latex.cost_fragment(cost.reset_index())
    assert r"train\_ppo & 2 & 1:01:00 & 0:50:50 & 900.0 \\" in table
    assert r"stats & 1 & 0:00:05 & -- & -- \\" in table


def write_meta(path: Path) -> Path:
    meta = dict(preset="smoke_test", description="Synthetic tables for the tests.",
                total_steps={"ant": 20_000, "breakout": 20_000}, num_seeds=3, bootstrap_reps=100)  # fmt: skip
    path.write_text(json.dumps(meta))
    return path


def test_report_tables_removes_fragments_of_stages_not_given(tables, tmp_path):
    common = ["report", "tables", "--meta", str(write_meta(tmp_path / "meta.json")),
              "--figures-dir", str(tmp_path), "--out-dir", str(tmp_path / "tex")]  # fmt: skip
    assert main([*common, "--poi", str(tables["poi"])]) == 0
    assert (tmp_path / "tex" / "table_poi.tex").is_file()
    assert main(common) == 0
    assert not (tmp_path / "tex" / "table_poi.tex").exists()
    assert (tmp_path / "tex" / "preset.tex").is_file() and (tmp_path / "tex" / "paths.tex").is_file()


@pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("pdflatex") is None,
                    reason="latexmk/pdflatex not installed (apt-get install texlive-latex-base "
                           "texlive-latex-recommended latexmk)")  # fmt: skip
def test_report_build_has_every_section_and_available_figures(tables, tmp_path):
    figures_dir, workdir, pdf = tmp_path / "figures", tmp_path / "tex", tmp_path / "out" / "report.pdf"
    curves_stem = str(figures_dir / "eval_curves")
    assert main(["plot", "curves", "--curves", str(tables["curves"]), "--out", curves_stem]) == 0
    assert main(["report", "tables", "--meta", str(write_meta(tmp_path / "meta.json")),
                 "--figures-dir", str(figures_dir), "--out-dir", str(workdir),
                 "--intervals", str(tables["intervals"]), "--poi", str(tables["poi"]),
                 "--runtime", str(tables["runtime"])]) == 0  # fmt: skip
    assert main(["report", "build", "--tex", str(MAIN_TEX), "--workdir", str(workdir), "--out", str(pdf)]) == 0

    assert pdf.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    else:  # section titles also land in the table-of-contents entries of the .aux file
        text = (workdir / "build" / "main.aux").read_text()
    for title in SECTION_TITLES:
        assert title in text, title
    assert "Reduced scale" in text
    assert "Episodic return against environment steps" in text  # the figure that exists
    assert "Not run in this preset" in text  # and a note for those that do not


def test_report_build_without_latexmk_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no TeX on PATH
    assert main(["report", "build", "--tex", str(MAIN_TEX), "--workdir", str(tmp_path),
                 "--out", str(tmp_path / "report.pdf")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "latexmk and pdflatex not found on PATH" in err
    assert "apt-get install -y --no-install-recommends texlive-latex-base texlive-latex-recommended latexmk" in err
