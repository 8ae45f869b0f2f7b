# Exploration in DeepSea (OPEN paper Fig. 6 / 17, App. I.2), preset block `deepsea`: each
# variant (shared or separated, with or without learned noise) is meta-trained once on a
# distribution of sizes (the `metatrain` rule, jobs deepsea/metatrain/<variant>) and
# evaluated on every evaluation size; so is each design run (`deepsea.designs`: a variant
# with one of this project's DeepSea choices changed).

DEEPSEA_EVALUATIONS = PLAN.deepsea_evaluations


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
        agent=PLAN.agent("deepsea"),
        env="deepsea",
        optimizer=PLAN.deepsea.get("optimizer"),
        label=lambda w: w.variant,
        hparams=lambda w, input: weights_hparams_json(
            input.weights, PLAN.deepsea_eval_args(w.variant, int(w.size))["opt_config"]
        ),
        ppo=lambda w: PLAN.deepsea_eval_args(w.variant, int(w.size))["ppo"],
        env_options=lambda w: PLAN.deepsea_eval_args(w.variant, int(w.size))["env_options"],
        seeds=lambda w: PLAN.deepsea_eval_args(w.variant, int(w.size))["seeds"],
        out=lambda w, output: run_dir(output.summary),
        code=[CODE["train"], OPTIMIZER_CODE.get(PLAN.deepsea.get("optimizer"))],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    conda:
        GPU_ENV
    shell:
        TRAIN_SHELL


rule deepsea_statistics:
    input:
        [f"results/deepsea/eval/{variant}/size{size}/{name}" for variant, size in DEEPSEA_EVALUATIONS
         for name in ("summary.json", "updates.parquet")],
    output:
        runs="results/deepsea/stats/runs.parquet",
        intervals="results/deepsea/stats/intervals.parquet",
        gains="results/deepsea/stats/gains.parquet",
        randomness="results/deepsea/stats/randomness.parquet",
        designs="results/deepsea/stats/designs.parquet",
        provenance="results/deepsea/stats/stats.json",
    log:
        "results/logs/deepsea_statistics.log",
    benchmark:
        "results/benchmarks/deepsea_statistics/all.tsv"
    params:
        runs=lambda w, input: list(dict.fromkeys(run_dir(p) for p in input)),
        designs=PLAN.deepsea_design_pairs(),
        reps=PLAN.config["stats"]["bootstrap_reps"],
        seed=PLAN.config["stats"]["seed"],
        out=lambda w, output: run_dir(output.intervals),
        code=CODE["stats"],
    conda:
        CPU_ENV
    shell:
        "rlopt deepsea-stats --runs {params.runs} --designs {params.designs} --reps {params.reps} "
        "--seed {params.seed} --out-dir {params.out} > {log} 2>&1"


localrules:
    deepsea_statistics,
