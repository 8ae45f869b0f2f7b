# Exploration in DeepSea (OPEN paper Fig. 6 / 17, App. I.2), preset block `deepsea`: each
# variant (shared or separated, with or without learned noise) is meta-trained once on a
# distribution of sizes (the `metatrain` rule, jobs deepsea/metatrain/<variant>) and
# evaluated on every evaluation size.

DEEPSEA_VARIANTS = PLAN.deepsea_variants
DEEPSEA_EVALUATIONS = PLAN.deepsea_evaluations
DEEPSEA_INTERVALS = ["results/deepsea/stats/intervals.parquet"] if DEEPSEA_EVALUATIONS else []


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
        hparams=lambda w, input: weights_hparams(
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
        metric="fitness_mean",
        code=[CODE["plots"], CODE["metatrain"]],
    conda:
        CPU_ENV
    shell:
        HISTORY_FIGURE_SHELL


localrules:
    deepsea_statistics,
    figure_deepsea,
    figure_deepsea_metatrain,
    figure_deepsea_randomness,


if DEEPSEA_EVALUATIONS:
    REPORT_FIGURES.extend(["deepsea_returns", "deepsea_metatrain_fitness"])
    if PLAN.deepsea_has_noise_pairs:
        REPORT_FIGURES.append("deepsea_gains")
    if PLAN.deepsea_has_noise:
        REPORT_FIGURES.append("deepsea_randomness")
