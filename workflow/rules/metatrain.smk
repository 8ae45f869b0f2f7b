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


rule figure_metatrain:
    input:
        [f"results/metatrain/{label}/history.parquet" for label in PLAN.metatrain_labels("es")],
    output:
        pdf=report(
            "results/figures/open_metatrain_fitness.pdf",
            caption="../report/metatrain.rst",
            category="OPEN",
        ),
        png="results/figures/open_metatrain_fitness.png",
        table="results/metatrain/histories.parquet",
    log:
        "results/logs/figures/open_metatrain_fitness.log",
    params:
        figure=lambda w, output: output.png.removesuffix(".png"),
        metric="fitness_mean",
        code=[CODE["plots"], CODE["metatrain"]],
    conda:
        CPU_ENV
    shell:
        HISTORY_FIGURE_SHELL


rule figure_metagrad:
    wildcard_constraints:
        metric="validation_return|meta_loss",
    input:
        [f"results/metatrain/{label}/history.parquet" for label in PLAN.metatrain_labels("metagrad")],
    output:
        pdf=report(
            "results/figures/metagrad_{metric}.pdf",
            caption="../report/metagrad.rst",
            category="Optim4RL",
        ),
        png="results/figures/metagrad_{metric}.png",
        table="results/metatrain/metagrad_{metric}.parquet",
    log:
        "results/logs/figures/metagrad_{metric}.log",
    params:
        figure=lambda w: f"results/figures/metagrad_{w.metric}",
        metric=lambda w: w.metric,
        code=[CODE["plots"], CODE["metatrain"]],
    conda:
        CPU_ENV
    shell:
        HISTORY_FIGURE_SHELL


localrules:
    figure_metatrain,
    figure_metagrad,


if PLAN.metatrain_labels("es"):
    REPORT_FIGURES.append("open_metatrain_fitness")
if PLAN.metatrain_labels("metagrad"):
    REPORT_FIGURES.extend(["metagrad_validation_return", "metagrad_meta_loss"])
