# Figures (seaborn), LaTeX fragments and the PDF report.  Figure rules only read tables;
# they and the LaTeX build are cheap, so they run locally even on a cluster.


localrules:
    combine_sweeps,
    figure,
    report_tables,
    report_pdf,


rule combine_sweeps:
    input:
        [
            f"results/tune/{env}/{optimizer}/sweep.parquet"
            for env in PLAN.envs
            for optimizer in PLAN.optimizers
        ],
    output:
        "results/tune/sweeps.parquet",
    log:
        "results/logs/combine_sweeps.log",
    benchmark:
        "results/benchmarks/combine_sweeps/all.tsv"
    params:
        code=CODE["select"],
    conda:
        CPU_ENV
    shell:
        "rlopt sweeps --tables {input} --out {output} > {log} 2>&1"


# Every figure of the report (rlopt.report.contents; PLAN.report_figures: those of this preset).
rule figure:
    wildcard_constraints:
        stem=one_of(REPORT_FIGURES),
    input:
        lambda w: REPORT_FIGURES[w.stem].table,
    output:
        pdf=report(
            f"{FIGURES_DIR}/{{stem}}.pdf",
            caption="../report/figure.rst",
            category=lambda w: REPORT_FIGURES[w.stem].category,
        ),
        png=f"{FIGURES_DIR}/{{stem}}.png",
    log:
        f"{FIGURE_LOGS_DIR}/{{stem}}.log",
    params:
        kind=lambda w: REPORT_FIGURES[w.stem].kind,
        table_flag=lambda w: REPORT_FIGURES[w.stem].table_flag,
        options=lambda w: PLAN.figure_options(w.stem),
        out=lambda w: REPORT_FIGURES[w.stem].out,
        summary=lambda w: REPORT_FIGURES[w.stem].summary,
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        PLOT_SHELL


rule report_tables:
    input:
        tables=[path for table in PLAN.report_tables for path in table.inputs],
        benchmarks=train_benchmarks,
    output:
        preset=f"{REPORT_BUILD_DIR}/preset.tex",
        paths=f"{REPORT_BUILD_DIR}/paths.tex",
        contents=f"{REPORT_BUILD_DIR}/contents.tex",
        tables=[table.path for table in PLAN.report_tables],
    log:
        "results/logs/report_tables.log",
    params:
        meta=PLAN.report_meta_json(),
        tables=PLAN.report_tables_options(),
        code=CODE["report"],
    conda:
        CPU_ENV
    shell:
        f"rlopt report tables --meta {{params.meta:q}} --figures-dir {FIGURES_DIR} --out-dir {REPORT_BUILD_DIR} "
        "{params.tables} --benchmarks {input.benchmarks} > {log} 2>&1"


rule report_pdf:
    input:
        tex=REPO / "report" / "main.tex",
        fragments=rules.report_tables.output,
        figures=[f"{FIGURES_DIR}/{stem}.pdf" for stem in REPORT_FIGURES],
    output:
        "results/report.pdf",
    log:
        "results/logs/report_pdf.log",
    params:
        code=CODE["report"],
    conda:
        CPU_ENV
    shell:
        f"rlopt report build --tex {{input.tex}} --workdir {REPORT_BUILD_DIR} --out {{output}} > {{log}} 2>&1"


# --------------------------------------------------------------------- OPEN (pretrained)
# The multi-task OPEN optimizer and those meta-trained here by ES on several games (e.g. No
# Features) against the tuned baselines on MinAtar (OPEN's Fig. 3).


rule statistics_open_multitask:
    input:
        final_returns="results/eval/final_returns.parquet",
    output:
        intervals="results/stats/open_multitask/intervals.parquet",
        poi="results/stats/open_multitask/probability_of_improvement.parquet",
        profile="results/stats/open_multitask/performance_profile.parquet",
        provenance="results/stats/open_multitask/stats.json",
    log:
        "results/logs/statistics_open_multitask.log",
    benchmark:
        "results/benchmarks/statistics_open_multitask/all.tsv"
    params:
        labels=PLAN.multitask_compared,
        envs=PLAN.minatar_envs,
        reference=PLAN.config["reference_optimizer"],
        reps=PLAN.config["stats"]["bootstrap_reps"],
        seed=PLAN.config["stats"]["seed"],
        out=lambda w, output: run_dir(output.intervals),
        code=CODE["stats"],
    conda:
        CPU_ENV
    shell:
        "rlopt stats --final-returns {input.final_returns} --reference {params.reference} "
        "--labels {params.labels} --envs {params.envs} --reps {params.reps} --seed {params.seed} "
        "--out-dir {params.out} > {log} 2>&1"
