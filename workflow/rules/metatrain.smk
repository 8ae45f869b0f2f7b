# Meta-training of learned optimizers with OpenAI-ES (evosax).  Checkpoints live outside
# the declared outputs, under a hash of the settings, so a killed job resumes and a
# changed one starts afresh.


rule reference_returns:
    input:
        reference_summaries,
    output:
        "results/eval/reference_returns.json",
    log:
        "results/logs/reference_returns.log",
    benchmark:
        "results/benchmarks/reference_returns/all.tsv"
    params:
        runs=lambda w, input: [run_dir(p) for p in input],
        code=CODE["stats"],
    conda:
        CPU_ENV
    shell:
        "rlopt reference-returns --runs {params.runs} --out {output} > {log} 2>&1"


rule metatrain:
    input:
        normalizers=normalizers_input,
    output:
        best="results/metatrain/{label}/best.npy",
        final="results/metatrain/{label}/final.npy",
        history="results/metatrain/{label}/history.parquet",
        summary="results/metatrain/{label}/summary.json",
    log:
        "results/logs/metatrain/{label}.log",
    benchmark:
        "results/benchmarks/metatrain/{label}.tsv"
    params:
        args=lambda w: PLAN.metatrain_args(w.label),
        normalizers=lambda w, input: f"--normalizers @{input.normalizers}" if input.normalizers else "",
        checkpoints=lambda w: f"results/.checkpoints/metatrain/{w.label}/{PLAN.checkpoint_tag(w.label)}",
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
        "--env-options {params.args[env_options]:q} {params.normalizers} --seed {params.args[seed]} "
        "--checkpoint-dir {params.checkpoints} --cpu-devices {threads} --out {params.out} > {log} 2>&1"


rule figure_metatrain:
    input:
        [f"results/metatrain/{label}/history.parquet" for label in PLAN.metatrain],
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
        code=[CODE["plots"], CODE["metatrain"]],
    conda:
        CPU_ENV
    shell:
        FITNESS_FIGURE_SHELL


localrules:
    figure_metatrain,


if PLAN.metatrain:
    REPORT_FIGURES.append("open_metatrain_fitness")
