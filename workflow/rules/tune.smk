# Tuning sweeps: every grid point of every (optimizer, env) on the tuning seeds, then the
# best configuration by mean final return (the OPEN paper's App. C.2 protocol).


rule tune_point:
    wildcard_constraints:
        optimizer=one_of(PLAN.optimizers),
    output:
        summary="results/tune/{env}/{optimizer}/{point}/summary.json",
        returns="results/tune/{env}/{optimizer}/{point}/returns.parquet",
    log:
        "results/logs/tune_point/{env}/{optimizer}/{point}.log",
    benchmark:
        "results/benchmarks/tune_point/{env}/{optimizer}/{point}.tsv"
    params:
        agent=lambda w: PLAN.agent(w.env),
        env=lambda w: w.env,
        optimizer=lambda w: w.optimizer,
        label=lambda w: w.optimizer,
        hparams=lambda w: PLAN.hparams_json(w.optimizer, w.env, w.point),
        ppo=lambda w: PLAN.ppo_json(w.env),
        env_options=lambda w: PLAN.env_options_json(w.env),
        seeds=PLAN.tune_seeds,
        out=lambda w, output: run_dir(output.summary),
        code=lambda w: [CODE["train"], OPTIMIZER_CODE[w.optimizer]],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        GPU_ENV
    shell:
        TRAIN_SHELL


rule select_best:
    input:
        sweep_summaries,
    output:
        best="results/tune/{env}/{optimizer}/best_hparams.json",
        table="results/tune/{env}/{optimizer}/sweep.parquet",
    log:
        "results/logs/select_best/{env}/{optimizer}.log",
    benchmark:
        "results/benchmarks/select_best/{env}/{optimizer}.tsv"
    params:
        runs=lambda w, input: [run_dir(p) for p in input],
        code=CODE["select"],
    conda:
        CPU_ENV
    shell:
        "rlopt select --runs {params.runs} --out {output.best} --table {output.table} > {log} 2>&1"
