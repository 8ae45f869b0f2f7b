# OPEN's design ablations (paper Fig. 5, App. I): each variant is meta-trained from scratch
# several times with the same ES on one (shortened) env, every trained optimizer is
# evaluated on a block of seeds, and rliable summarises return and dormancy per variant.
# Counts and budgets come from the preset's `ablations` block.

ABLATION_RUNS = PLAN.ablation_runs
# What the report's ablation table is made from ([] when the preset has no ablations).
ABLATION_INTERVALS = ["results/ablate/stats/intervals.parquet"] if ABLATION_RUNS else []


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
    shell:
        "{RLOPT} metatrain --envs {params.args[envs]} --optimizer open "
        "--opt-config {params.args[opt_config]:q} --es {params.args[es]:q} --ppo {params.args[ppo]:q} "
        "--env-options {params.args[env_options]:q} --seed {params.args[seed]} "
        "--checkpoint-dir {params.checkpoints} --out {params.out} > {log} 2>&1"


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
    shell:
        "{RLOPT} train --env {params.args[env]} --optimizer open --label {wildcards.variant} "
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
    shell:
        "{RLOPT} ablation-stats --runs {params.runs} --reps {params.reps} --seed {params.seed} "
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
    shell:
        "{RLOPT} plot ablations --intervals {input} --out results/figures/ablations_intervals > {log} 2>&1"


localrules:
    ablate_statistics,
    figure_ablations,


if ABLATION_RUNS:
    REPORT_FIGURES.append("ablations_intervals")
