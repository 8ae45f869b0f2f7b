"""What the report shows: every figure and table, declared once.

A figure is ``results/figures/STEM.pdf`` (and ``.png``), drawn by one ``rlopt plot`` command
from one table. Its declaration holds everything the rest derives from:

- the command: the plot kind, the option naming the table, the table, and further options,
  which may name values of the preset in braces (``{reference}``; filled by
  ``rlopt.workflow_config.Plan.report_values``);
- the LaTeX caption and the "not run" note of ``report/main.tex`` (written into the
  ``contents.tex`` fragment by ``rlopt report tables``);
- the caption (reStructuredText) and category of Snakemake's HTML report;
- ``requires``: the properties of the Plan that must all be truthy for a preset to produce
  it (none: every preset does). ``Plan.report_figures`` lists those a preset includes.

A table is ``results/report_build/STEM.tex``, made by ``rlopt report tables --OPTION``.

Adding a figure: its plot function and ``rlopt plot`` kind, one ``Figure`` here, and one
``\\reportitem{STEM}`` in main.tex where it belongs. Nothing here imports JAX or pandas:
Snakemake reads this module while it parses the workflow.
"""

from __future__ import annotations

from dataclasses import dataclass

FIGURES_DIR = "results/figures"
FIGURE_LOGS_DIR = "results/logs/figures"
REPORT_BUILD_DIR = "results/report_build"
# One table of the meta-training histories of a group of jobs (Plan.history_groups).
HISTORIES = "results/metatrain_histories/{group}.parquet"


@dataclass(frozen=True)
class Figure:
    stem: str
    category: str
    kind: str  # `rlopt plot KIND`
    table_flag: str  # the option naming the input table
    table: str  # the input table
    options: str  # further options; {name} is a value of Plan.report_values
    caption: str  # LaTeX
    absent: str  # LaTeX: what would have produced it, for the "not run" note
    summary: str  # reStructuredText, for Snakemake's report
    requires: tuple[str, ...] = ()

    @property
    def out(self) -> str:
        """``rlopt plot --out``: the path of both files without suffix."""
        return f"{FIGURES_DIR}/{self.stem}"

    @property
    def log(self) -> str:
        return f"{FIGURE_LOGS_DIR}/{self.stem}.log"


@dataclass(frozen=True)
class Table:
    stem: str
    option: str  # `rlopt report tables --OPTION`
    inputs: tuple[str, ...]  # its tables, in the order the option takes them
    caption: str  # LaTeX
    absent: str  # LaTeX
    requires: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return f"{REPORT_BUILD_DIR}/{self.stem}.tex"


def _figure(stem, category, kind, table_flag, table, caption, absent, summary, options="", requires=()):
    return Figure(stem, category, kind, table_flag, table, options, caption, absent, summary, tuple(requires))


_INTERVALS = "results/stats/intervals.parquet"
_CURVES = "results/eval/curves.parquet"
_UPDATES = "results/eval/updates.parquet"
_PER_ENV_IQM = "--per-env --metric iqm --normalization reference"
_IQM_NOTE = "95% stratified-bootstrap confidence intervals"
_DYNAMICS = (
    "Training dynamics of the evaluated optimizers, per PPO update against environment steps, mean over seeds "
    "with 95% t-intervals: "
)
_DEEPSEA = (
    "OPEN's exploration experiment in DeepSea: OPEN with parameters shared by actor and critic or separated, "
    "each with and without learned stochasticity, meta-trained on a distribution of DeepSea sizes and "
    "evaluated on every size of the preset. "
)
_METAGRAD = "Meta-gradient training (Optim4RL's method, with pipeline training): per meta-iteration, "
_OPTIM4RL = (
    "Optimizers meta-trained by meta-gradients (Optim4RL) against the tuned handcrafted optimizers and OPEN on "
    "every environment they are evaluated on: "
)
_UPDATE_SIZES = (
    "max abs(update) / lr (dashed line: Adam's bound with beta1 = beta2) and the L1 parameter change per update, "
    "mean over seeds with 95% t-intervals"
)
_STUDIES = "The term project's studies (docs/studies.md §5). "
_METATUNING_CELLS = "results/studies/metatuning/stats/cells.parquet"
_METATUNING_ABSENT = r"the meta-tuning study"

FIGURES: tuple[Figure, ...] = (
    _figure(
        "tuning",
        "Tuning",
        "sweep",
        "--sweeps",
        "results/tune/sweeps.parquet",
        r"Final return of the tuning grid, per optimizer and environment.",
        r"hyperparameter tuning",
        "Mean final return over the tuning seeds of every grid point, per optimizer (rows) and environment "
        "(panels); the configuration chosen for evaluation is ringed.",
    ),
    _figure(
        "eval_curves",
        "Evaluation",
        "curves",
        "--curves",
        _CURVES,
        r"Episodic return against environment steps: mean over seeds, shaded 95\% $t$-interval of the mean "
        r"(points with error bars where fewer than five logging steps hold finished episodes).",
        r"the evaluation runs",
        "Episodic return against environment steps on the evaluation seeds: mean over seeds with a 95% "
        "t-interval band, per environment; an environment with fewer than five logging steps holding "
        "finished episodes (long episodes against the budget) is drawn as points with error bars.",
    ),
    _figure(
        "eval_intervals",
        "Evaluation",
        "intervals",
        "--intervals",
        _INTERVALS,
        r"Interval estimates over all environments of normalised final return (as in Figs.~2--3 of~\cite{open}): "
        r"bars are 95\% stratified bootstrap confidence intervals, ticks the point estimates.",
        r"the evaluation statistics",
        "Aggregate over environments of the reference-normalised final return (each return divided by the "
        "reference optimizer's mean on that environment): IQM, mean, median and optimality gap with "
        f"{_IQM_NOTE} (rliable).",
        options="--normalization reference --scope all",
    ),
    _figure(
        "eval_intervals_per_env",
        "Evaluation",
        "intervals",
        "--intervals",
        _INTERVALS,
        r"IQM of normalised final return per environment, with 95\% stratified bootstrap confidence intervals.",
        r"the evaluation statistics",
        f"IQM of the reference-normalised final return per environment, with {_IQM_NOTE}.",
        options=_PER_ENV_IQM,
    ),
    _figure(
        "eval_normalized",
        "Evaluation",
        "normalized",
        "--final-returns",
        "results/eval/final_returns.parquet",
        r"Final return of every seed divided by the reference optimizer's mean on that environment "
        r"(dashed line: 1).",
        r"the evaluation runs",
        "Final return of every evaluation seed divided by the reference optimizer's mean final return on that "
        "environment.",
        options="--reference {reference}",
    ),
    _figure(
        "eval_poi",
        "Evaluation",
        "poi",
        "--poi",
        "results/stats/probability_of_improvement.parquet",
        r"Probability that a run of each optimizer beats a run of the reference optimizer, with 95\% bootstrap "
        r"confidence intervals (dashed: 0.5).",
        r"the evaluation statistics",
        "Probability that a run of each optimizer ends with a higher final return than a run of the reference "
        "optimizer, with 95% bootstrap confidence intervals.",
    ),
    _figure(
        "eval_profile",
        "Evaluation",
        "profile",
        "--profile",
        "results/stats/performance_profile.parquet",
        r"Performance profiles: fraction of runs whose normalised score exceeds $\tau$, with 95\% bootstrap "
        r"confidence bands.",
        r"the evaluation statistics",
        "Performance profiles: fraction of runs whose reference-normalised final return exceeds tau.",
    ),
    _figure(
        "dynamics_dormancy",
        "Evaluation",
        "dynamics",
        "--updates",
        _UPDATES,
        r"Dormant neurons during training (as Fig.~10 of~\cite{open}): fraction of hidden neurons with zero "
        r"activation over a minibatch, mean over seeds with 95\% t-intervals.",
        r"the evaluation",
        _DYNAMICS + "the fraction of tau=0-dormant hidden neurons (the OPEN paper's Fig. 10).",
        options="--metric dormancy",
    ),
    _figure(
        "dynamics_update_size",
        "Evaluation",
        "dynamics",
        "--updates",
        _UPDATES,
        r"OPEN's update size relative to the parameters during training (as Fig.~12 of~\cite{open}: mean "
        r"$|\hat u|$ over mean $|p|$).",
        r"the evaluation of OPEN",
        _DYNAMICS + "OPEN's step before noise relative to the parameters (mean abs(u_hat) / mean abs(p), the OPEN "
        "paper's Fig. 12).",
        options="--metric update_size",
        requires=["learned_labels"],  # learned optimizers log their update size
    ),
    _figure(
        "dynamics_randomness",
        "Evaluation",
        "dynamics",
        "--updates",
        _UPDATES,
        r"Randomness OPEN applies to the actor's parameters during training (as Fig.~13 of~\cite{open}: mean "
        r"$|\alpha_3\delta|$ over mean $|p|$).",
        r"the evaluation of OPEN",
        _DYNAMICS + "the learned noise weight OPEN applies to the actor relative to its parameters (the OPEN "
        "paper's Fig. 13).",
        options="--metric randomness",
        requires=["learned_noise_labels"],
    ),
    _figure(
        "runtime",
        "Compute cost",
        "runtime",
        "--runtime",
        "results/eval/runtime.parquet",
        r"Training throughput (environment steps per second, compilation excluded) and wall time per job.",
        r"the runtime summary",
        "Environment steps per second and wall time of every evaluation job.",
    ),
    _figure(
        "open_pretrained_intervals",
        "OPEN",
        "intervals",
        "--intervals",
        _INTERVALS,
        r"Pretrained OPEN and the learned optimizers meta-trained here on one game against the handcrafted "
        r"optimizers: IQM of normalised final return per environment.",
        r"evaluation of the pretrained OPEN weights",
        "IQM of the reference-normalised final return per MinAtar game: the OPEN authors' single-task "
        "optimizers (label open; Goldie et al., Apache-2.0) and the optimizers meta-trained here by ES on "
        "one game (each on its game only; e.g. the paper's learned baseline No Features) against the tuned "
        "baselines, with 95% stratified-bootstrap CIs (the OPEN paper's Figure 2).",
        options=_PER_ENV_IQM + " --labels {open_compared} --envs {minatar}",
        requires=["open_pretrained_on_minatar"],
    ),
    _figure(
        "open_multitask_intervals",
        "OPEN",
        "intervals",
        "--intervals",
        "results/stats/open_multitask/intervals.parquet",
        r"Multi-task OPEN on the MinAtar environments: mean, IQM and optimality gap with 95\% bootstrap "
        r"confidence intervals.",
        r"the multi-task MinAtar evaluation",
        "Aggregate over the four MinAtar games of the reference-normalised final return of the OPEN authors' "
        "multi-task optimizer (open_multi) and of any optimizer meta-trained here by ES on the four games "
        "(e.g. No Features) against the tuned baselines (the OPEN paper's Figure 3).",
        options="--normalization reference --scope all",
        requires=["open_multitask_on_minatar"],
    ),
    _figure(
        "open_zeroshot_curves",
        "OPEN",
        "curves",
        "--curves",
        _CURVES,
        r"Zero-shot transfer of the MinAtar-trained OPEN to Ant.",
        r"the zero-shot Ant evaluation",
        "Return curves on Brax Ant: the multi-task OPEN optimizer, trained on MinAtar only, applied zero-shot, "
        "next to the Ant-trained OPEN optimizer and the tuned baselines.",
        options="--envs ant --labels {zeroshot_compared}",
        requires=["open_multitask_on_ant"],
    ),
    _figure(
        "open_metatrain_fitness",
        "OPEN",
        "generations",
        "--table",
        HISTORIES.format(group="es"),
        r"OPEN meta-training with OpenAI-ES: fitness (normalised return) against generation.",
        r"OPEN meta-training",
        "Meta-training of the learned optimizers with OpenAI-ES: mean fitness of the population per generation "
        "(the combined, reference-normalised fitness for multi-task runs).",
        options="--x generation --y fitness_mean --hue label",
        requires=["es_labels"],
    ),
    _figure(
        "metagrad_validation_return",
        "Optim4RL",
        "generations",
        "--table",
        HISTORIES.format(group="metagrad"),
        r"Meta-gradient training: mean final return of A2C runs with the learned optimizer on the validation "
        r"seeds, against meta-iteration.",
        r"meta-gradient training",
        _METAGRAD + "the mean final return of A2C runs with the learned optimizer on held-out validation seeds.",
        options="--x generation --y validation_return --hue label",
        requires=["metagrad_labels"],
    ),
    _figure(
        "metagrad_meta_loss",
        "Optim4RL",
        "generations",
        "--table",
        HISTORIES.format(group="metagrad"),
        r"Meta-gradient training: meta-loss (A2C loss of the updated agents on a fresh rollout, mean over units) "
        r"against meta-iteration.",
        r"meta-gradient training",
        _METAGRAD + "the meta-loss (the A2C loss of the updated agents on a fresh rollout, mean over training units).",
        options="--x generation --y meta_loss --hue label",
        requires=["metagrad_labels"],
    ),
    _figure(
        "optim4rl_curves",
        "Optim4RL",
        "curves",
        "--curves",
        _CURVES,
        r"Optimizers meta-trained by meta-gradients against the tuned handcrafted optimizers and OPEN: episodic "
        r"return against environment steps.",
        r"the Optim4RL evaluation",
        _OPTIM4RL + "episodic return against environment steps.",
        options="--labels {metagrad_compared} --envs {metagrad_envs}",
        requires=["metagrad_labels"],
    ),
    _figure(
        "optim4rl_intervals",
        "Optim4RL",
        "intervals",
        "--intervals",
        _INTERVALS,
        r"Optimizers meta-trained by meta-gradients against the tuned handcrafted optimizers and OPEN: IQM of "
        r"normalised final return per environment, 95\% stratified bootstrap confidence intervals.",
        r"the Optim4RL evaluation",
        _OPTIM4RL + "the IQM of final return normalised by the reference optimizer with 95% bootstrap intervals.",
        options=_PER_ENV_IQM + " --labels {metagrad_compared} --envs {metagrad_envs}",
        requires=["metagrad_labels"],
    ),
    _figure(
        "ablations_intervals",
        "OPEN",
        "ablations",
        "--intervals",
        "results/ablate/stats/intervals.parquet",
        r"Ablations of OPEN (as Fig.~5 of~\cite{open}): IQM over trained optimizers of their mean final return, "
        r"and the mean $\tau=0$ dormant-neuron percentage of the optimizers in its interquartile range, with "
        r"95\% stratified bootstrap confidence intervals.",
        r"the ablations",
        "OPEN's design ablations (the OPEN paper's Figure 5): each variant removes one element of OPEN and is "
        "meta-trained from scratch several times with the same ES; every trained optimizer is evaluated on a "
        "block of seeds. Left: IQM over trained optimizers of their mean final return; right: mean tau=0 "
        "dormant-neuron percentage of the optimizers in that interquartile range. Bars are 95% stratified "
        "bootstrap confidence intervals over trained optimizers.",
        requires=["ablation_runs"],
    ),
    _figure(
        "deepsea_metatrain_fitness",
        "OPEN",
        "generations",
        "--table",
        HISTORIES.format(group="deepsea"),
        r"DeepSea meta-training with OpenAI-ES: mean population fitness (final return on the sampled size) "
        r"against generation, per variant.",
        r"the DeepSea experiment",
        "Meta-training of the DeepSea variants with OpenAI-ES: mean fitness of the population (final return on "
        "the sampled size) per generation.",
        options="--x generation --y fitness_mean --hue label",
        requires=["deepsea_evaluations"],
    ),
    _figure(
        "deepsea_returns",
        "OPEN",
        "deepsea",
        "--intervals",
        "results/deepsea/stats/intervals.parquet",
        r"DeepSea (as Fig.~17 of~\cite{open}): IQM of final return against size, 95\% stratified bootstrap "
        r"confidence intervals over seeds; meta-training sizes shaded.",
        r"the DeepSea experiment",
        _DEEPSEA + "IQM over seeds of the final return against size, meta-training sizes shaded (the OPEN "
        "paper's Figure 17; bands: 95% bootstrap confidence intervals over seeds).",
        options="--train-sizes {deepsea_train_sizes}",
        requires=["deepsea_evaluations"],
    ),
    _figure(
        "deepsea_gains",
        "OPEN",
        "deepsea-gains",
        "--gains",
        "results/deepsea/stats/gains.parquet",
        r"DeepSea (as Fig.~6 of~\cite{open}): IQM improvement of the variant with learned stochasticity over the "
        r"one without, per architecture, 95\% confidence intervals.",
        r"the DeepSea experiment",
        _DEEPSEA + "IQM of the variant with learned noise minus the one without, per architecture (the OPEN "
        "paper's Figure 6; bands: 95% bootstrap confidence intervals over seeds).",
        options="--train-sizes {deepsea_train_sizes}",
        requires=["deepsea_evaluations", "deepsea_has_noise_pairs"],
    ),
    _figure(
        "deepsea_designs",
        "OPEN",
        "deepsea-designs",
        "--designs",
        "results/deepsea/stats/designs.parquet",
        r"DeepSea design choices: IQM of final return of a variant meta-trained and evaluated with one of this "
        r"project's choices changed, minus the variant's, against size; 95\% confidence intervals.",
        r"the DeepSea experiment",
        _DEEPSEA + "IQM of each design run (a variant meta-trained with the same ES seed and evaluated again with "
        "the observation padding or the training tasks' action mapping changed) minus the variant's, against "
        "size (bands: 95% bootstrap confidence intervals over seeds).",
        options="--train-sizes {deepsea_train_sizes}",
        requires=["deepsea_evaluations", "deepsea_designs"],
    ),
    _figure(
        "deepsea_randomness",
        "OPEN",
        "deepsea-randomness",
        "--randomness",
        "results/deepsea/stats/randomness.parquet",
        r"DeepSea (as Fig.~14 of~\cite{open}): randomness OPEN applies to the actor's parameters (mean "
        r"$|\alpha_3\delta|$ over mean $|p|$) against PPO update, per size; mean over seeds with 95\% "
        r"t-intervals.",
        r"the DeepSea experiment",
        _DEEPSEA + "The randomness OPEN applies to the actor's parameters (mean noise weight over mean parameter "
        "magnitude) against PPO update, per size, for the variants with learned noise (the OPEN paper's Figure "
        "14; bands: 95% t-intervals over seeds).",
        requires=["deepsea_evaluations", "deepsea_has_noise"],
    ),
    _figure(
        "collapse_curves",
        "Studies",
        "collapse-curves",
        "--iqm-curves",
        "results/studies/collapse/stats/iqm_curves.parquet",
        r"Policy collapse: IQM of the training return per arm against PPO update (top: environment steps), "
        r"95\% bootstrap band.",
        r"the policy-collapse study",
        _STUDIES + "IQM over seeds of the training return per arm against PPO update (top axis: env steps), "
        "band: 95% stratified-bootstrap interval.",
        requires=["collapse_arms"],
    ),
    _figure(
        "collapse_seeds",
        "Studies",
        "collapse-seeds",
        "--curves",
        "results/studies/collapse/stats/curves.parquet",
        r"Every seed's binned return (thin) and its trailing mean (thick), coloured by the detector's verdict.",
        r"the policy-collapse study",
        _STUDIES + "Every seed's binned return (thin) and trailing mean (thick), coloured by the collapse "
        "detector's verdict (learned, failed to learn, collapsed).",
        requires=["collapse_arms"],
    ),
    _figure(
        "collapse_update_sizes",
        "Studies",
        "update-sizes",
        "--update-sizes",
        "results/studies/collapse/stats/update_sizes.parquet",
        r"Update sizes: largest $|\Delta\theta|$ over the learning rate (dashed: 1) and L1 parameter change per "
        r"update; mean over seeds with 95\% t-intervals.",
        r"the policy-collapse study",
        _STUDIES + f"Policy collapse: {_UPDATE_SIZES}.",
        requires=["collapse_arms"],
    ),
    _figure(
        "nonstationary_curves",
        "Studies",
        "nonstationary-curves",
        "--curves",
        "results/studies/nonstationary/stats/curves.parquet",
        r"Training return under each schedule (every other segment shaded) and on the stationary task; mean "
        r"over seeds with 95\% t-intervals.",
        r"the non-stationarity study",
        _STUDIES + "Training return under each dynamics schedule (every other segment shaded) and on the "
        "stationary task, mean over seeds with 95% t-intervals.",
        requires=["nonstationary_runs"],
    ),
    _figure(
        "nonstationary_update_sizes",
        "Studies",
        "update-sizes",
        "--update-sizes",
        "results/studies/nonstationary/stats/update_sizes.parquet",
        r"Update sizes under non-stationary dynamics.",
        r"the non-stationarity study",
        _STUDIES + f"Non-stationary dynamics: {_UPDATE_SIZES}.",
        requires=["nonstationary_runs"],
    ),
    _figure(
        "transfer_intervals",
        "Studies",
        "intervals",
        "--intervals",
        "results/studies/transfer/stats/intervals.parquet",
        r"Zero-shot transfer: IQM of the normalised final return per arm, over all target environments and on "
        r"each, 95\% stratified-bootstrap CIs.",
        r"the zero-shot transfer study",
        _STUDIES + "Zero-shot transfer: IQM over seeds of the final return divided by the reference arm's mean "
        "(over all target envs, then per env), 95% stratified-bootstrap intervals.",
        options=_PER_ENV_IQM,
        requires=["transfer_runs"],
    ),
    _figure(
        "transfer_poi",
        "Studies",
        "poi",
        "--poi",
        "results/studies/transfer/stats/probability_of_improvement.parquet",
        r"Zero-shot transfer: probability that an arm's run beats a run of the reference arm (0.5: no "
        r"difference), 95\% CIs.",
        r"the zero-shot transfer study",
        _STUDIES + "Zero-shot transfer: probability that an arm's run beats a reference run (0.5: no difference).",
        requires=["transfer_runs"],
    ),
    _figure(
        "transfer_curves",
        "Studies",
        "curves",
        "--curves",
        "results/studies/transfer/curves.parquet",
        r"Zero-shot transfer: training return per target environment and arm, mean over seeds with 95\% "
        r"t-intervals.",
        r"the zero-shot transfer study",
        _STUDIES + "Zero-shot transfer: training return per target env and arm, mean over seeds with 95% t-intervals.",
        requires=["transfer_runs"],
    ),
    _figure(
        "metatuning_heatmap",
        "Studies",
        "metatuning-heatmap",
        "--cells",
        _METATUNING_CELLS,
        r"Meta-tuning: IQM of the final return on the report seeds of the optimizer meta-trained with each "
        r"setting of its meta-hyperparameters (mean over meta-seeds where several, their number in "
        r"brackets), coloured around the tuned baseline's; outlined: the setting chosen on the selection seeds.",
        _METATUNING_ABSENT,
        _STUDIES + "Meta-tuning: report-seed IQM of the final return for every meta-hyperparameter setting of "
        "the learned optimizer, one heatmap per meta-gradient processing, coloured around the tuned baseline.",
        requires=["metatuning_cells"],
    ),
    _figure(
        "metatuning_distribution",
        "Studies",
        "metatuning-distribution",
        "--cells",
        _METATUNING_CELLS,
        r"Meta-tuning: empirical CDF of the report IQM over the configurations of the meta-trained grid "
        r"(meta-seed 0) and of the baseline's grid; dashed: the tuned baseline.",
        _METATUNING_ABSENT,
        _STUDIES + "Meta-tuning: distribution of the report-seed IQM over the configurations of each grid.",
        requires=["metatuning_cells"],
    ),
    _figure(
        "metatuning_expected_max",
        "Studies",
        "expected-max",
        "--expected-max",
        "results/studies/metatuning/stats/expected_max.parquet",
        r"Meta-tuning: expected report IQM after trying $n$ configurations drawn at random (Dodge et al.~2019), "
        r"taking the one best on the selection seeds (solid) or, as an upper bound, on the report seeds "
        r"(dotted).",
        _METATUNING_ABSENT,
        _STUDIES + "Meta-tuning: expected report-seed IQM after trying n configurations of each grid.",
        requires=["metatuning_cells"],
    ),
    _figure(
        "metatuning_histories",
        "Studies",
        "metatuning-histories",
        "--histories",
        "results/studies/metatuning/stats/histories.parquet",
        r"Meta-tuning: validation return of every meta-training run of the grid against meta-iteration "
        r"(colour: one axis of the grid, line style: the other).",
        _METATUNING_ABSENT,
        _STUDIES + "Meta-tuning: validation return of each meta-training run of the grid per meta-iteration.",
        requires=["metatuning_cells"],
    ),
)

TABLES: tuple[Table, ...] = (
    Table(
        "table_tuning",
        "sweeps",
        ("results/tune/sweeps.parquet",),
        r"Selected hyperparameters per optimizer and environment.",
        r"hyperparameter tuning",
    ),
    Table(
        "table_intervals",
        "intervals",
        (_INTERVALS,),
        r"IQM of final return [95\% bootstrap CI] per label, aggregated over all environments (\emph{all}) and "
        r"per environment.",
        r"the evaluation statistics",
    ),
    Table(
        "table_poi",
        "poi",
        ("results/stats/probability_of_improvement.parquet",),
        r"Probability of improvement over the reference [95\% CI].",
        r"the evaluation statistics",
    ),
    Table(
        "table_runtime",
        "runtime",
        ("results/eval/runtime.parquet",),
        r"Throughput and wall time of the training jobs.",
        r"the runtime summary",
    ),
    Table(
        "table_cost",
        "benchmarks",
        (),  # the benchmark files of every training job (the workflow lists them)
        r"Cost per Snakemake rule, from its benchmark files: summed wall and CPU time, peak resident memory of "
        r"one job.",
        r"the Snakemake benchmarks",
    ),
    Table(
        "table_ablations",
        "ablations",
        ("results/ablate/stats/intervals.parquet",),
        r"Ablations of OPEN: IQM of final return and dormant neurons [95\% CI], number of trained optimizers and "
        r"evaluation seeds per optimizer.",
        r"the ablations",
        requires=("ablation_runs",),
    ),
    Table(
        "table_deepsea",
        "deepsea",
        ("results/deepsea/stats/intervals.parquet",),
        r"DeepSea: IQM of final return [95\% CI] per size and variant, and the seeds per size.",
        r"the DeepSea experiment",
        requires=("deepsea_evaluations",),
    ),
    Table(
        "table_collapse",
        "collapse",
        ("results/studies/collapse/stats/rates.parquet", "results/studies/collapse/stats/intervals.parquet"),
        r"Policy collapse per arm: verdict counts, collapse rate [Clopper--Pearson 95\% CI] and IQM over seeds "
        r"[95\% stratified bootstrap CI] of the final score $(F-B)/(R_\mathrm{ref}-B)$, the normalised final "
        r"drop and the normalised maximum drawdown.",
        r"the policy-collapse study",
        requires=("collapse_arms",),
    ),
    Table(
        "table_nonstationary",
        "nonstationary",
        ("results/studies/nonstationary/stats/intervals.parquet",),
        r"Non-stationary dynamics per schedule and arm: IQM over seeds [95\% CI] of the stream return, the "
        r"return at the end of the last segment, and the recovery time after the last change (seeds that did "
        r"not recover within the segment left out).",
        r"the non-stationarity study",
        requires=("nonstationary_runs",),
    ),
    Table(
        "table_transfer",
        "transfer",
        (
            "results/studies/transfer/stats/intervals.parquet",
            "results/studies/transfer/stats/probability_of_improvement.parquet",
        ),
        r"Zero-shot transfer: IQM [95\% CI] of the final return normalised by the reference arm's mean, per "
        r"target environment and over all of them, and the probability of improving on the reference arm.",
        r"the zero-shot transfer study",
        requires=("transfer_runs",),
    ),
    Table(
        "table_metatuning",
        "metatuning",
        ("results/studies/metatuning/stats/summary.parquet", "results/studies/metatuning/stats/variance.parquet"),
        r"Meta-tuning: report-seed IQM of the final return of the best, median and worst configuration of "
        r"each grid (meta-seed 0), of the one chosen on the selection seeds (its selection IQM $\to$ its "
        r"report IQM: the gap is the selection bias), and the configurations whose report IQM beats the tuned "
        r"baseline's [Clopper--Pearson 95\% CI]; below, the share of the meta-trained runs' report-seed "
        r"variance by source (sums of squares).",
        _METATUNING_ABSENT,
        requires=("metatuning_cells",),
    ),
)

FIGURES_BY_STEM = {figure.stem: figure for figure in FIGURES}
TABLES_BY_OPTION = {table.option: table for table in TABLES}


def latex_declarations() -> str:
    """``contents.tex``: ``\\reportitem{STEM}`` of main.tex shows the declared figure or table
    STEM with its caption, or the "not run" note when the preset did not make it."""
    lines = ["% Generated by `rlopt report tables` from rlopt.report.contents; do not edit."]
    items = [("optionalfigure", figure.stem, figure.caption, figure.absent) for figure in FIGURES]
    items += [("optionaltable", table.stem, table.caption, table.absent) for table in TABLES]
    for macro, stem, caption, absent in items:
        lines.append(
            rf"\expandafter\def\csname rloptitem@{stem}\endcsname{{\{macro}{{{stem}}}{{{caption}}}{{{absent}}}}}"
        )
    return "\n".join([*lines, ""])
