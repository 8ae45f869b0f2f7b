# The term project's own studies (docs/studies.md §5), preset block `studies`.
# Policy collapse: every arm (optimizer + hyperparameters) trains the study's seeds on one
# env for a long run; `rlopt collapse-stats` judges each seed with the collapse detector.
# Non-stationary dynamics: every arm trains under each schedule of rlopt.envs.nonstationary
# on each of the study's envs (and, as its control, on that env's stationary task);
# `rlopt nonstationary-stats` summarises.
# Zero-shot transfer: every arm trains on each target env (learned optimizers as they are,
# baselines tuned or fixed); `rlopt collect` and `rlopt stats` give rliable IQMs of the
# final return normalised by the reference arm and probabilities of improvement over it.
# Meta-tuning: a grid of a meta-gradient block's meta-hyperparameters against an equally
# sized grid of a handcrafted optimizer; `rlopt metatuning-stats` scores every cell.

COLLAPSE_ARMS = PLAN.collapse_arms
NONSTATIONARY_RUNS = PLAN.nonstationary_runs
TRANSFER_RUNS = PLAN.transfer_runs
STUDY_DETECTOR = json.dumps(PLAN.studies.get("detector"), sort_keys=True)  # "null": no studies, no job


wildcard_constraints:
    arm="[a-z][a-z0-9_]*",
    schedule="[a-z][a-z0-9_]*",
    target="[a-z][a-z0-9_]*",


rule study_collapse_train:
    input:
        inputs=study_run("collapse", "inputs"),
    output:
        summary="results/studies/collapse/runs/{arm}/summary.json",
        returns="results/studies/collapse/runs/{arm}/returns.parquet",
        updates="results/studies/collapse/runs/{arm}/updates.parquet",
    log:
        "results/logs/study_collapse_train/{arm}.log",
    benchmark:
        "results/benchmarks/study_collapse_train/{arm}.tsv"
    params:
        agent=study_run("collapse", "agent"),
        env=study_run("collapse", "env"),
        optimizer=study_run("collapse", "optimizer"),
        label=lambda w: w.arm,
        hparams=study_run("collapse", "hparams"),
        seeds=study_run("collapse", "seeds"),
        ppo=study_run("collapse", "ppo"),
        env_options=study_run("collapse", "env_options"),
        out=lambda w, output: run_dir(output.summary),
        code=study_run_code("collapse"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=1440,
    conda:
        GPU_ENV
    shell:
        TRAIN_SHELL


rule study_nonstationary_train:
    input:
        inputs=study_run("nonstationary", "inputs"),
    output:
        summary="results/studies/nonstationary/runs/{target}/{schedule}/{arm}/summary.json",
        returns="results/studies/nonstationary/runs/{target}/{schedule}/{arm}/returns.parquet",
        updates="results/studies/nonstationary/runs/{target}/{schedule}/{arm}/updates.parquet",
    log:
        "results/logs/study_nonstationary_train/{target}/{schedule}/{arm}.log",
    benchmark:
        "results/benchmarks/study_nonstationary_train/{target}/{schedule}/{arm}.tsv"
    params:
        agent=study_run("nonstationary", "agent"),
        env=study_run("nonstationary", "env"),
        optimizer=study_run("nonstationary", "optimizer"),
        label=lambda w: w.arm,
        hparams=study_run("nonstationary", "hparams"),
        seeds=study_run("nonstationary", "seeds"),
        ppo=study_run("nonstationary", "ppo"),
        env_options=study_run("nonstationary", "env_options"),
        out=lambda w, output: run_dir(output.summary),
        code=study_run_code("nonstationary"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=1440,
    conda:
        GPU_ENV
    shell:
        TRAIN_SHELL


rule study_transfer_train:
    input:
        inputs=study_run("transfer", "inputs"),
    output:
        summary="results/studies/transfer/runs/{target}/{arm}/summary.json",
        returns="results/studies/transfer/runs/{target}/{arm}/returns.parquet",
        updates="results/studies/transfer/runs/{target}/{arm}/updates.parquet",
    log:
        "results/logs/study_transfer_train/{target}/{arm}.log",
    benchmark:
        "results/benchmarks/study_transfer_train/{target}/{arm}.tsv"
    params:
        agent=study_run("transfer", "agent"),
        env=study_run("transfer", "env"),
        optimizer=study_run("transfer", "optimizer"),
        label=lambda w: w.arm,
        hparams=study_run("transfer", "hparams"),
        seeds=study_run("transfer", "seeds"),
        ppo=study_run("transfer", "ppo"),
        env_options=study_run("transfer", "env_options"),
        out=lambda w, output: run_dir(output.summary),
        code=study_run_code("transfer"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=1440,
    conda:
        GPU_ENV
    shell:
        TRAIN_SHELL


rule study_transfer_collect:
    input:
        [f"results/studies/transfer/runs/{env}/{arm}/summary.json" for env, arm in TRANSFER_RUNS],
    output:
        final_returns="results/studies/transfer/final_returns.parquet",
        curves="results/studies/transfer/curves.parquet",
        runtime="results/studies/transfer/runtime.parquet",
        updates="results/studies/transfer/updates.parquet",
    log:
        "results/logs/study_transfer_collect.log",
    benchmark:
        "results/benchmarks/study_transfer_collect/all.tsv"
    params:
        runs=lambda w, input: [run_dir(p) for p in input],
        out=lambda w, output: run_dir(output.final_returns),
        code=CODE["stats"],
    conda:
        CPU_ENV
    shell:
        COLLECT_SHELL


rule study_transfer_statistics:
    input:
        final_returns="results/studies/transfer/final_returns.parquet",
    output:
        intervals="results/studies/transfer/stats/intervals.parquet",
        poi="results/studies/transfer/stats/probability_of_improvement.parquet",
        profile="results/studies/transfer/stats/performance_profile.parquet",
        provenance="results/studies/transfer/stats/stats.json",
    log:
        "results/logs/study_transfer_statistics.log",
    benchmark:
        "results/benchmarks/study_transfer_statistics/all.tsv"
    params:
        reference=PLAN.studies.get("transfer", {}).get("reference"),
        reps=PLAN.config["stats"]["bootstrap_reps"],
        seed=PLAN.config["stats"]["seed"],
        taus=lambda w: "{start}:{stop}:{num}".format(**PLAN.config["stats"]["taus"]),
        out=lambda w, output: run_dir(output.intervals),
        code=CODE["stats"],
    conda:
        CPU_ENV
    shell:
        STATS_SHELL


rule study_collapse_statistics:
    input:
        [f"results/studies/collapse/runs/{arm}/summary.json" for arm in COLLAPSE_ARMS],
    output:
        **{name: f"results/studies/collapse/stats/{name}.parquet"
           for name in ("seeds", "rates", "intervals", "curves", "iqm_curves", "update_sizes")},
        provenance="results/studies/collapse/stats/stats.json",
    log:
        "results/logs/study_collapse_statistics.log",
    benchmark:
        "results/benchmarks/study_collapse_statistics/all.tsv"
    params:
        runs=lambda w, input: [run_dir(p) for p in input],
        reference=PLAN.studies.get("collapse", {}).get("reference"),
        detector=STUDY_DETECTOR,
        reps=PLAN.config["stats"]["bootstrap_reps"],
        seed=PLAN.config["stats"]["seed"],
        out=lambda w, output: run_dir(output.rates),
        code=CODE["stats"],
    conda:
        CPU_ENV
    shell:
        "rlopt collapse-stats --runs {params.runs} --reference {params.reference} "
        "--detector {params.detector:q} --reps {params.reps} --seed {params.seed} --out-dir {params.out} > {log} 2>&1"


rule study_nonstationary_statistics:
    input:
        [f"results/studies/nonstationary/runs/{env}/{schedule}/{arm}/summary.json" for env, schedule, arm in NONSTATIONARY_RUNS],
    output:
        **{name: f"results/studies/nonstationary/stats/{name}.parquet"
           for name in ("seeds", "segments", "intervals", "curves", "update_sizes")},
        provenance="results/studies/nonstationary/stats/stats.json",
    log:
        "results/logs/study_nonstationary_statistics.log",
    benchmark:
        "results/benchmarks/study_nonstationary_statistics/all.tsv"
    params:
        runs=lambda w, input: [run_dir(p) for p in input],
        window=PLAN.studies.get("nonstationary", {}).get("window"),
        reps=PLAN.config["stats"]["bootstrap_reps"],
        seed=PLAN.config["stats"]["seed"],
        out=lambda w, output: run_dir(output.intervals),
        code=CODE["stats"],
    conda:
        CPU_ENV
    shell:
        "rlopt nonstationary-stats --runs {params.runs} --window {params.window} --reps {params.reps} "
        "--seed {params.seed} --out-dir {params.out} > {log} 2>&1"


# Meta-tuning: every cell of the learned grid is meta-trained by the metatrain rule
# (PLAN.metatrain_jobs); each cell of both grids then trains the selection and report seeds.
rule study_metatuning_train:
    wildcard_constraints:
        cell=one_of(cell.name for cell in PLAN.metatuning_cells),
    input:
        inputs=metatuning_run("inputs"),
    output:
        summary="results/studies/metatuning/runs/{cell}/summary.json",
        returns="results/studies/metatuning/runs/{cell}/returns.parquet",
        updates="results/studies/metatuning/runs/{cell}/updates.parquet",
    log:
        "results/logs/study_metatuning_train/{cell}.log",
    benchmark:
        "results/benchmarks/study_metatuning_train/{cell}.tsv"
    params:
        agent=metatuning_run("agent"),
        env=metatuning_run("env"),
        optimizer=metatuning_run("optimizer"),
        label=lambda w: w.cell,
        hparams=metatuning_run("hparams"),
        seeds=metatuning_run("seeds"),
        ppo=metatuning_run("ppo"),
        env_options=metatuning_run("env_options"),
        out=lambda w, output: run_dir(output.summary),
        code=training_code(metatuning_run("optimizer")),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=1440,
    conda:
        GPU_ENV
    shell:
        TRAIN_SHELL


rule study_metatuning_statistics:
    input:
        runs=[f"results/studies/metatuning/runs/{cell.name}/summary.json" for cell in PLAN.metatuning_cells],
        histories=[f"results/{cell.job}/history.parquet" for cell in PLAN.metatuning_cells if cell.job],
    output:
        **{name: f"results/studies/metatuning/stats/{name}.parquet"
           for name in ("seeds", "cells", "summary", "expected_max", "variance", "histories")},
        provenance="results/studies/metatuning/stats/stats.json",
    log:
        "results/logs/study_metatuning_statistics.log",
    benchmark:
        "results/benchmarks/study_metatuning_statistics/all.tsv"
    params:
        cells=PLAN.metatuning_cells_json(),
        selection=PLAN.metatuning_seeds("selection"),
        report=PLAN.metatuning_seeds("report"),
        reps=PLAN.config["stats"]["bootstrap_reps"],
        seed=PLAN.config["stats"]["seed"],
        out=lambda w, output: run_dir(output.cells),
        code=CODE["stats"],
    conda:
        CPU_ENV
    shell:
        "rlopt metatuning-stats --cells {params.cells:q} --selection-seeds {params.selection} "
        "--report-seeds {params.report} --reps {params.reps} --seed {params.seed} --out-dir {params.out} > {log} 2>&1"


localrules:
    study_metatuning_statistics,
    study_collapse_statistics,
    study_nonstationary_statistics,
    study_transfer_collect,
    study_transfer_statistics,
