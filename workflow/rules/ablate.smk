# OPEN's ablations.
# Design ablations (paper Fig. 5, App. I), preset block `ablations`: each variant is
# meta-trained from scratch several times with the same ES on one (shortened) env, every
# trained optimizer is evaluated on a block of seeds, and rliable summarises return and
# dormancy per variant.
# Exploration in DeepSea (paper Fig. 6 / 17, App. I.2), preset block `deepsea`: each
# variant (shared or separated, with or without learned noise) is meta-trained once on a
# distribution of sizes and evaluated on every evaluation size.

ABLATION_RUNS = PLAN.ablation_runs
DEEPSEA_VARIANTS = PLAN.deepsea_variants
DEEPSEA_EVALUATIONS = PLAN.deepsea_evaluations
# What the report's tables are made from ([] when the preset lacks the study).
ABLATION_INTERVALS = ["results/ablate/stats/intervals.parquet"] if ABLATION_RUNS else []
DEEPSEA_INTERVALS = ["results/deepsea/stats/intervals.parquet"] if DEEPSEA_EVALUATIONS else []


rule ablate_metatrain:
    wildcard_constraints:
        variant="[a-z_]+",
        index="[0-9]+",
    output:
        best="results/ablate/metatrain/{variant}/opt{index}/best.npy",
        final="results/ablate/metatrain/{variant}/opt{index}/final.npy",
        history="results/ablate/metatrain/{variant}/opt{index}/history.parquet",
        summary="results/ablate/metatrain/{variant}/opt{index}/summary.json",
    log:
        "results/logs/ablate_metatrain/{variant}/opt{index}.log",
    benchmark:
        "results/benchmarks/ablate_metatrain/{variant}/opt{index}.tsv"
    params:
        args=lambda w: PLAN.ablation_metatrain_args(w.variant, w.index),
        checkpoints=lambda w: (
            f"results/.checkpoints/ablate/{w.variant}/opt{w.index}/{PLAN.ablation_checkpoint_tag(w.variant, w.index)}"
        ),
        out=lambda w, output: run_dir(output.summary),
        code=[CODE["train"], CODE["open"], CODE["metatrain"]],
    threads: 1
    resources:
        mem_mb=8000,
        runtime=1440,
    conda:
        GPU_ENV
    shell:
        "rlopt metatrain --envs {params.args[envs]} --optimizer open "
        "--opt-config {params.args[opt_config]:q} --es {params.args[es]:q} --ppo {params.args[ppo]:q} "
        "--env-options {params.args[env_options]:q} --seed {params.args[seed]} "
        "--checkpoint-dir {params.checkpoints} --cpu-devices {threads} --out {params.out} > {log} 2>&1"


rule ablate_evaluate:
    wildcard_constraints:
        variant="[a-z_]+",
        index="[0-9]+",
    input:
        weights="results/ablate/metatrain/{variant}/opt{index}/best.npy",
    output:
        summary="results/ablate/eval/{variant}/opt{index}/summary.json",
        returns="results/ablate/eval/{variant}/opt{index}/returns.parquet",
    log:
        "results/logs/ablate_evaluate/{variant}/opt{index}.log",
    benchmark:
        "results/benchmarks/ablate_evaluate/{variant}/opt{index}.tsv"
    params:
        args=lambda w: PLAN.ablation_eval_args(w.variant),
        hparams=lambda w, input: open_hparams(input.weights, PLAN.ablation_eval_args(w.variant)["opt_config"]),
        out=lambda w, output: run_dir(output.summary),
        code=[CODE["train"], CODE["open"]],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    conda:
        GPU_ENV
    shell:
        "rlopt train --env {params.args[env]} --optimizer open --label {wildcards.variant} "
        "--hparams {params.hparams:q} --seeds {params.args[seeds]} --ppo {params.args[ppo]:q} "
        "--env-options {params.args[env_options]:q} --cpu-devices {threads} --out {params.out} > {log} 2>&1"


rule ablate_statistics:
    input:
        [f"results/ablate/eval/{variant}/opt{index}/summary.json" for variant, index in ABLATION_RUNS],
    output:
        runs="results/ablate/stats/runs.parquet",
        intervals="results/ablate/stats/intervals.parquet",
        provenance="results/ablate/stats/stats.json",
    log:
        "results/logs/ablate_statistics.log",
    benchmark:
        "results/benchmarks/ablate_statistics/all.tsv"
    params:
        runs=lambda w, input: [run_dir(p) for p in input],
        reps=config["stats"]["bootstrap_reps"],
        seed=config["stats"]["seed"],
        out=lambda w, output: run_dir(output.intervals),
        code=CODE["stats"],
    conda:
        CPU_ENV
    shell:
        "rlopt ablation-stats --runs {params.runs} --reps {params.reps} --seed {params.seed} "
        "--out-dir {params.out} > {log} 2>&1"


rule figure_ablations:
    input:
        "results/ablate/stats/intervals.parquet",
    output:
        pdf=report("results/figures/ablations_intervals.pdf", caption="../report/ablations.rst", category="OPEN"),
        png="results/figures/ablations_intervals.png",
    log:
        "results/logs/figures/ablations_intervals.log",
    params:
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot ablations --intervals {input} --out results/figures/ablations_intervals > {log} 2>&1"


rule deepsea_metatrain:
    wildcard_constraints:
        variant="[a-z][a-z0-9_]*",
    output:
        best="results/deepsea/metatrain/{variant}/best.npy",
        final="results/deepsea/metatrain/{variant}/final.npy",
        history="results/deepsea/metatrain/{variant}/history.parquet",
        summary="results/deepsea/metatrain/{variant}/summary.json",
    log:
        "results/logs/deepsea_metatrain/{variant}.log",
    benchmark:
        "results/benchmarks/deepsea_metatrain/{variant}.tsv"
    params:
        args=lambda w: PLAN.deepsea_metatrain_args(w.variant),
        checkpoints=lambda w: f"results/.checkpoints/deepsea/{w.variant}/{PLAN.deepsea_checkpoint_tag(w.variant)}",
        out=lambda w, output: run_dir(output.summary),
        code=[CODE["train"], CODE["open"], CODE["metatrain"]],
    threads: 1
    resources:
        mem_mb=8000,
        runtime=2880,
    conda:
        GPU_ENV
    shell:
        "rlopt metatrain --envs {params.args[envs]} --optimizer open "
        "--opt-config {params.args[opt_config]:q} --es {params.args[es]:q} --ppo {params.args[ppo]:q} "
        "--env-options {params.args[env_options]:q} --seed {params.args[seed]} "
        "--checkpoint-dir {params.checkpoints} --cpu-devices {threads} --out {params.out} > {log} 2>&1"


rule deepsea_evaluate:
    wildcard_constraints:
        variant="[a-z][a-z0-9_]*",
        size="[0-9]+",
    input:
        weights="results/deepsea/metatrain/{variant}/best.npy",
    output:
        summary="results/deepsea/eval/{variant}/size{size}/summary.json",
        returns="results/deepsea/eval/{variant}/size{size}/returns.parquet",
        updates="results/deepsea/eval/{variant}/size{size}/updates.parquet",
    log:
        "results/logs/deepsea_evaluate/{variant}/size{size}.log",
    benchmark:
        "results/benchmarks/deepsea_evaluate/{variant}/size{size}.tsv"
    params:
        args=lambda w: PLAN.deepsea_eval_args(w.variant, int(w.size)),
        hparams=lambda w, input: open_hparams(input.weights, PLAN.deepsea_eval_args(w.variant, int(w.size))["opt_config"]),
        out=lambda w, output: run_dir(output.summary),
        code=[CODE["train"], CODE["open"]],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    conda:
        GPU_ENV
    shell:
        "rlopt train --env deepsea --optimizer open --label {wildcards.variant} "
        "--hparams {params.hparams:q} --seeds {params.args[seeds]} --ppo {params.args[ppo]:q} "
        "--env-options {params.args[env_options]:q} --cpu-devices {threads} --out {params.out} > {log} 2>&1"


rule deepsea_statistics:
    input:
        [f"results/deepsea/eval/{variant}/size{size}/{name}" for variant, size in DEEPSEA_EVALUATIONS
         for name in ("summary.json", "updates.parquet")],
    output:
        runs="results/deepsea/stats/runs.parquet",
        intervals="results/deepsea/stats/intervals.parquet",
        gains="results/deepsea/stats/gains.parquet",
        randomness="results/deepsea/stats/randomness.parquet",
        provenance="results/deepsea/stats/stats.json",
    log:
        "results/logs/deepsea_statistics.log",
    benchmark:
        "results/benchmarks/deepsea_statistics/all.tsv"
    params:
        runs=lambda w, input: list(dict.fromkeys(run_dir(p) for p in input)),
        reps=config["stats"]["bootstrap_reps"],
        seed=config["stats"]["seed"],
        out=lambda w, output: run_dir(output.intervals),
        code=CODE["stats"],
    conda:
        CPU_ENV
    shell:
        "rlopt deepsea-stats --runs {params.runs} --reps {params.reps} --seed {params.seed} "
        "--out-dir {params.out} > {log} 2>&1"


rule figure_deepsea:
    wildcard_constraints:
        kind="returns|gains",
    input:
        lambda w: "results/deepsea/stats/{}.parquet".format("intervals" if w.kind == "returns" else "gains"),
    output:
        pdf=report("results/figures/deepsea_{kind}.pdf", caption="../report/deepsea.rst", category="OPEN"),
        png="results/figures/deepsea_{kind}.png",
    log:
        "results/logs/figures/deepsea_{kind}.log",
    params:
        plot=lambda w: "deepsea --intervals" if w.kind == "returns" else "deepsea-gains --gains",
        train_sizes=" ".join(map(str, PLAN.deepsea.get("train_sizes", []))),
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot {params.plot} {input} --train-sizes {params.train_sizes} "
        "--out results/figures/deepsea_{wildcards.kind} > {log} 2>&1"


rule figure_deepsea_randomness:
    input:
        "results/deepsea/stats/randomness.parquet",
    output:
        pdf=report("results/figures/deepsea_randomness.pdf", caption="../report/deepsea.rst", category="OPEN"),
        png="results/figures/deepsea_randomness.png",
    log:
        "results/logs/figures/deepsea_randomness.log",
    params:
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot deepsea-randomness --randomness {input} --out results/figures/deepsea_randomness > {log} 2>&1"


rule figure_deepsea_metatrain:
    input:
        [f"results/deepsea/metatrain/{variant}/history.parquet" for variant in DEEPSEA_VARIANTS],
    output:
        pdf=report(
            "results/figures/deepsea_metatrain_fitness.pdf",
            caption="../report/metatrain.rst",
            category="OPEN",
        ),
        png="results/figures/deepsea_metatrain_fitness.png",
        table="results/deepsea/metatrain/histories.parquet",
    log:
        "results/logs/figures/deepsea_metatrain_fitness.log",
    params:
        figure=lambda w, output: output.png.removesuffix(".png"),
        code=[CODE["plots"], CODE["metatrain"]],
    conda:
        CPU_ENV
    shell:
        FITNESS_FIGURE_SHELL


localrules:
    ablate_statistics,
    figure_ablations,
    deepsea_statistics,
    figure_deepsea,
    figure_deepsea_metatrain,
    figure_deepsea_randomness,


if ABLATION_RUNS:
    REPORT_FIGURES.append("ablations_intervals")
if DEEPSEA_EVALUATIONS:
    REPORT_FIGURES.extend(["deepsea_returns", "deepsea_metatrain_fitness"])
    if PLAN.deepsea_has_noise_pairs:
        REPORT_FIGURES.append("deepsea_gains")
    if PLAN.deepsea_has_noise:
        REPORT_FIGURES.append("deepsea_randomness")
