# OPEN's design ablations (paper Fig. 5, App. I), preset block `ablations`: each variant
# is meta-trained from scratch several times with the same ES on one (shortened) env (the
# `metatrain` rule, jobs ablate/metatrain/<variant>/opt<index>), every trained optimizer is
# evaluated on a block of seeds, and rliable summarises return and dormancy per variant.

ABLATION_RUNS = PLAN.ablation_runs


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
        agent=PLAN.agent(PLAN.ablations.get("env")),
        env=PLAN.ablations.get("env"),
        optimizer=PLAN.ablations.get("optimizer"),
        label=lambda w: w.variant,
        hparams=lambda w, input: weights_hparams_json(input.weights, PLAN.ablation_eval_args(w.variant)["opt_config"]),
        ppo=lambda w: PLAN.ablation_eval_args(w.variant)["ppo"],
        env_options=lambda w: PLAN.ablation_eval_args(w.variant)["env_options"],
        seeds=lambda w: PLAN.ablation_eval_args(w.variant)["seeds"],
        out=lambda w, output: run_dir(output.summary),
        code=[CODE["train"], OPTIMIZER_CODE.get(PLAN.ablations.get("optimizer"))],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    conda:
        GPU_ENV
    shell:
        TRAIN_SHELL


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
        reps=PLAN.config["stats"]["bootstrap_reps"],
        seed=PLAN.config["stats"]["seed"],
        out=lambda w, output: run_dir(output.intervals),
        code=CODE["stats"],
    conda:
        CPU_ENV
    shell:
        "rlopt ablation-stats --runs {params.runs} --reps {params.reps} --seed {params.seed} "
        "--out-dir {params.out} > {log} 2>&1"


localrules:
    ablate_statistics,
