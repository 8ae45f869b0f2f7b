# Evaluation: each (optimizer, env) with its tuned settings on the evaluation seeds, in
# vmapped seed blocks; then the collected tables and rliable statistics.


rule evaluate_block:
    wildcard_constraints:
        optimizer=one_of(PLAN.optimizers),
    input:
        hparams="results/tune/{env}/{optimizer}/best_hparams.json",
    output:
        summary="results/eval/{env}/{optimizer}/seeds{block}/summary.json",
        returns="results/eval/{env}/{optimizer}/seeds{block}/returns.parquet",
        updates="results/eval/{env}/{optimizer}/seeds{block}/updates.parquet",
    log:
        "results/logs/evaluate_block/{env}/{optimizer}/seeds{block}.log",
    benchmark:
        "results/benchmarks/evaluate_block/{env}/{optimizer}/seeds{block}.tsv"
    params:
        agent=lambda w: PLAN.agent(w.env),
        env=lambda w: w.env,
        optimizer=lambda w: w.optimizer,
        label=lambda w: w.optimizer,
        hparams=lambda w, input: f"@{input.hparams}",
        ppo=lambda w: PLAN.ppo_json(w.env),
        env_options=lambda w: PLAN.env_options_json(w.env),
        seeds=lambda w: w.block.replace("-", ":"),
        out=lambda w, output: run_dir(output.summary),
        code=lambda w: [CODE["train"], OPTIMIZER_CODE[w.optimizer]],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    conda:
        GPU_ENV
    shell:
        TRAIN_SHELL


# Downloads (unless RLOPT_OPEN_PRETRAINED_DIR names a local copy): runs where Snakemake
# runs, since cluster nodes often have no internet access.
localrules:
    open_weights,


rule open_weights:
    output:
        "resources/open_pretrained/{name}_OPEN.npy",
    log:
        "results/logs/open_weights/{name}.log",
    benchmark:
        "results/benchmarks/open_weights/{name}.tsv"
    params:
        code=CODE["weights"],
    conda:
        CPU_ENV
    shell:
        "rlopt weights --names {wildcards.name} --dest resources/open_pretrained > {log} 2>&1"


rule evaluate_learned:
    wildcard_constraints:
        label=one_of(PLAN.learned_labels),
    input:
        weights=learned_weights,
    output:
        summary="results/eval/{env}/{label}/seeds{block}/summary.json",
        returns="results/eval/{env}/{label}/seeds{block}/returns.parquet",
        updates="results/eval/{env}/{label}/seeds{block}/updates.parquet",
    log:
        "results/logs/evaluate_learned/{env}/{label}/seeds{block}.log",
    benchmark:
        "results/benchmarks/evaluate_learned/{env}/{label}/seeds{block}.tsv"
    params:
        agent=lambda w: PLAN.agent(w.env),
        env=lambda w: w.env,
        optimizer=lambda w: PLAN.learned_spec(w.label)["optimizer"],
        label=lambda w: w.label,
        hparams=learned_hparams,
        ppo=lambda w: PLAN.ppo_json(w.env),
        env_options=lambda w: PLAN.env_options_json(w.env),
        seeds=lambda w: w.block.replace("-", ":"),
        out=lambda w, output: run_dir(output.summary),
        code=lambda w: [CODE["train"], OPTIMIZER_CODE[PLAN.learned_spec(w.label)["optimizer"]]],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    conda:
        GPU_ENV
    shell:
        TRAIN_SHELL


rule collect_evaluation:
    input:
        eval_summaries,
    output:
        final_returns="results/eval/final_returns.parquet",
        curves="results/eval/curves.parquet",
        runtime="results/eval/runtime.parquet",
        updates="results/eval/updates.parquet",
    log:
        "results/logs/collect_evaluation.log",
    benchmark:
        "results/benchmarks/collect_evaluation/all.tsv"
    params:
        runs=lambda w, input: [run_dir(p) for p in input],
        out=lambda w, output: run_dir(output.final_returns),
        code=CODE["stats"],
    conda:
        CPU_ENV
    shell:
        COLLECT_SHELL


rule statistics:
    input:
        final_returns="results/eval/final_returns.parquet",
    output:
        intervals="results/stats/intervals.parquet",
        poi="results/stats/probability_of_improvement.parquet",
        profile="results/stats/performance_profile.parquet",
        provenance="results/stats/stats.json",
    log:
        "results/logs/statistics.log",
    benchmark:
        "results/benchmarks/statistics/all.tsv"
    params:
        reference=PLAN.config["reference_optimizer"],
        reps=PLAN.config["stats"]["bootstrap_reps"],
        seed=PLAN.config["stats"]["seed"],
        taus=lambda w: "{start}:{stop}:{num}".format(**PLAN.config["stats"]["taus"]),
        out=lambda w, output: run_dir(output.intervals),
        code=CODE["stats"],
    conda:
        CPU_ENV
    shell:
        STATS_SHELL
