# Meta-training of learned optimizers with OpenAI-ES (evosax): one rule for every
# meta-training job of every study (PLAN.metatrain_jobs: preset blocks metatrain,
# ablations, deepsea).  Checkpoints live outside the declared outputs, under a hash of the
# settings, so a killed job resumes and a changed one starts afresh.


rule reference_returns:
    input:
        reference_summaries,
    output:
        "results/eval/reference_returns_{estimator}.json",
    log:
        "results/logs/reference_returns_{estimator}.log",
    benchmark:
        "results/benchmarks/reference_returns/{estimator}.tsv"
    params:
        runs=lambda w, input: [run_dir(p) for p in input],
        code=CODE["stats"],
    conda:
        CPU_ENV
    shell:
        "rlopt reference-returns --runs {params.runs} --estimator {wildcards.estimator} --out {output} "
        "> {log} 2>&1"


rule metatrain:
    wildcard_constraints:
        job=one_of(PLAN.metatrain_jobs),
    input:
        normalizers=normalizers_input,
    output:
        best="results/{job}/best.npy",
        final="results/{job}/final.npy",
        history="results/{job}/history.parquet",
        summary="results/{job}/summary.json",
    log:
        "results/logs/metatrain/{job}.log",
    benchmark:
        "results/benchmarks/metatrain/{job}.tsv"
    params:
        args=lambda w: PLAN.metatrain_jobs[w.job],
        normalizers=lambda w, input: f"--normalizers @{input.normalizers}" if input.normalizers else "",
        checkpoints=lambda w: f"results/.checkpoints/{w.job}/{PLAN.checkpoint_tag(w.job)}",
        out=lambda w, output: run_dir(output.summary),
        code=lambda w: [
            CODE["metatrain"],
            OPTIMIZER_CODE[PLAN.metatrain_jobs[w.job]["optimizer"]],
        ],
    threads: 1
    resources:
        mem_mb=8000,
        runtime=2880,
    conda:
        GPU_ENV
    shell:
        METATRAIN_SHELL


# A metric per generation of several meta-training runs (each labelled by its folder): the
# table a figure of the report plots.
rule metatrain_histories:
    wildcard_constraints:
        group=one_of(PLAN.history_groups),
    input:
        lambda w: PLAN.history_groups[w.group],
    output:
        HISTORIES,
    log:
        "results/logs/metatrain_histories/{group}.log",
    params:
        code=CODE["metatrain"],
    conda:
        CPU_ENV
    shell:
        "rlopt metatrain-histories --histories {input} --out {output} > {log} 2>&1"


localrules:
    metatrain_histories,
