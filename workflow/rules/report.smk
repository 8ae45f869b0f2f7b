# Figures (seaborn), LaTeX fragments and the PDF report.  Figure rules only read tables;
# they and the LaTeX build are cheap, so they run locally even on a cluster.


localrules:
    combine_sweeps,
    figure_sweep,
    figure_curves,
    figure_dynamics,
    figure_intervals,
    figure_intervals_per_env,
    figure_normalised,
    figure_poi,
    figure_profile,
    figure_runtime,
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


rule figure_sweep:
    input:
        "results/tune/sweeps.parquet",
    output:
        pdf=report("results/figures/tuning.pdf", caption="../report/tuning.rst", category="Tuning"),
        png="results/figures/tuning.png",
    log:
        "results/logs/figures/tuning.log",
    params:
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot sweep --sweeps {input} --out results/figures/tuning > {log} 2>&1"


rule figure_curves:
    input:
        "results/eval/curves.parquet",
    output:
        pdf=report("results/figures/eval_curves.pdf", caption="../report/curves.rst", category="Evaluation"),
        png="results/figures/eval_curves.png",
    log:
        "results/logs/figures/eval_curves.log",
    params:
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot curves --curves {input} --out results/figures/eval_curves > {log} 2>&1"


rule figure_dynamics:
    wildcard_constraints:
        metric="dormancy|update_size|randomness",
    input:
        "results/eval/updates.parquet",
    output:
        pdf=report("results/figures/dynamics_{metric}.pdf", caption="../report/dynamics.rst", category="Evaluation"),
        png="results/figures/dynamics_{metric}.png",
    log:
        "results/logs/figures/dynamics_{metric}.log",
    params:
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot dynamics --updates {input} --metric {wildcards.metric} "
        "--out results/figures/dynamics_{wildcards.metric} > {log} 2>&1"


rule figure_intervals:
    input:
        "results/stats/intervals.parquet",
    output:
        pdf=report("results/figures/eval_intervals.pdf", caption="../report/intervals.rst", category="Evaluation"),
        png="results/figures/eval_intervals.png",
    log:
        "results/logs/figures/eval_intervals.log",
    params:
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot intervals --intervals {input} --normalization reference --scope all "
        "--out results/figures/eval_intervals > {log} 2>&1"


rule figure_intervals_per_env:
    input:
        "results/stats/intervals.parquet",
    output:
        pdf=report(
            "results/figures/eval_intervals_per_env.pdf",
            caption="../report/intervals_per_env.rst",
            category="Evaluation",
        ),
        png="results/figures/eval_intervals_per_env.png",
    log:
        "results/logs/figures/eval_intervals_per_env.log",
    params:
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot intervals --intervals {input} --per-env --metric iqm --normalization reference "
        "--out results/figures/eval_intervals_per_env > {log} 2>&1"


rule figure_normalised:
    input:
        "results/eval/final_returns.parquet",
    output:
        pdf=report("results/figures/eval_normalised.pdf", caption="../report/normalised.rst", category="Evaluation"),
        png="results/figures/eval_normalised.png",
    log:
        "results/logs/figures/eval_normalised.log",
    params:
        reference=config["reference_optimizer"],
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot normalised --final-returns {input} --reference {params.reference} "
        "--out results/figures/eval_normalised > {log} 2>&1"


rule figure_poi:
    input:
        "results/stats/probability_of_improvement.parquet",
    output:
        pdf=report("results/figures/eval_poi.pdf", caption="../report/poi.rst", category="Evaluation"),
        png="results/figures/eval_poi.png",
    log:
        "results/logs/figures/eval_poi.log",
    params:
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot poi --poi {input} --out results/figures/eval_poi > {log} 2>&1"


rule figure_profile:
    input:
        "results/stats/performance_profile.parquet",
    output:
        pdf=report("results/figures/eval_profile.pdf", caption="../report/profile.rst", category="Evaluation"),
        png="results/figures/eval_profile.png",
    log:
        "results/logs/figures/eval_profile.log",
    params:
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot profile --profile {input} --out results/figures/eval_profile > {log} 2>&1"


rule figure_runtime:
    input:
        "results/eval/runtime.parquet",
    output:
        pdf=report("results/figures/runtime.pdf", caption="../report/runtime.rst", category="Compute cost"),
        png="results/figures/runtime.png",
    log:
        "results/logs/figures/runtime.log",
    params:
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot runtime --runtime {input} --out results/figures/runtime > {log} 2>&1"


REPORT_FIGURES.extend(
    [
        "tuning",
        "eval_curves",
        "eval_intervals",
        "eval_intervals_per_env",
        "eval_normalised",
        "eval_poi",
        "eval_profile",
        "runtime",
        "dynamics_dormancy",
    ]
)
if PLAN.learned_labels:  # learned optimizers log their update size
    REPORT_FIGURES.append("dynamics_update_size")
if PLAN.learned_noise_labels:
    REPORT_FIGURES.append("dynamics_randomness")


rule report_tables:
    input:
        intervals="results/stats/intervals.parquet",
        poi="results/stats/probability_of_improvement.parquet",
        runtime="results/eval/runtime.parquet",
        sweeps="results/tune/sweeps.parquet",
        ablations=ABLATION_INTERVALS,
        deepsea=DEEPSEA_INTERVALS,
        collapse=list(COLLAPSE_TABLES.values()),
        nonstationary=list(NONSTATIONARY_TABLES.values()),
        transfer=list(TRANSFER_TABLES.values()),
        benchmarks=train_benchmarks,
    output:
        preset="results/report_build/preset.tex",
        paths="results/report_build/paths.tex",
        tables=expand(
            "results/report_build/table_{name}.tex",
            name=["intervals", "poi", "runtime", "cost", "tuning"]
            + ["ablations"] * bool(ABLATION_INTERVALS)
            + ["deepsea"] * bool(DEEPSEA_INTERVALS)
            + ["collapse"] * bool(COLLAPSE_TABLES)
            + ["nonstationary"] * bool(NONSTATIONARY_TABLES)
            + ["transfer"] * bool(TRANSFER_TABLES),
        ),
    log:
        "results/logs/report_tables.log",
    params:
        meta=PLAN.report_meta_json(),
        ablations=lambda w, input: f"--ablations {input.ablations}" if input.ablations else "",
        deepsea=lambda w, input: f"--deepsea {input.deepsea}" if input.deepsea else "",
        collapse=lambda w, input: f"--collapse {input.collapse}" if input.collapse else "",
        nonstationary=lambda w, input: f"--nonstationary {input.nonstationary}" if input.nonstationary else "",
        transfer=lambda w, input: f"--transfer {input.transfer}" if input.transfer else "",
        code=CODE["report"],
    conda:
        CPU_ENV
    shell:
        "rlopt report tables --meta {params.meta:q} --figures-dir results/figures "
        "--out-dir results/report_build --intervals {input.intervals} --poi {input.poi} "
        "--runtime {input.runtime} --sweeps {input.sweeps} {params.ablations} {params.deepsea} "
        "{params.collapse} {params.nonstationary} {params.transfer} "
        "--benchmarks {input.benchmarks} > {log} 2>&1"


rule report_pdf:
    input:
        tex=REPO / "report" / "main.tex",
        fragments=rules.report_tables.output,
        # A function, so figures that later rule files register are included.
        figures=lambda w: expand("results/figures/{name}.pdf", name=REPORT_FIGURES),
    output:
        "results/report.pdf",
    log:
        "results/logs/report_pdf.log",
    params:
        code=CODE["report"],
    conda:
        CPU_ENV
    shell:
        "rlopt report build --tex {input.tex} --workdir results/report_build --out {output} > {log} 2>&1"


# --------------------------------------------------------------------- OPEN (pretrained)
# Figures 2-3 of the OPEN paper and the slides' zero-shot Ant result, from the same
# evaluation tables as the baselines.

MINATAR = PLAN.envs_of_family("minatar")
PRETRAINED = PLAN.pretrained_labels


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
        labels=PLAN.baseline_labels + ["open_multi"],
        envs=MINATAR,
        reference=config["reference_optimizer"],
        reps=config["stats"]["bootstrap_reps"],
        seed=config["stats"]["seed"],
        out=lambda w, output: run_dir(output.intervals),
        code=CODE["stats"],
    conda:
        CPU_ENV
    shell:
        "rlopt stats --final-returns {input.final_returns} --reference {params.reference} "
        "--labels {params.labels} --envs {params.envs} --reps {params.reps} --seed {params.seed} "
        "--out-dir {params.out} > {log} 2>&1"


rule figure_open_pretrained:
    input:
        "results/stats/intervals.parquet",
    output:
        pdf=report(
            "results/figures/open_pretrained_intervals.pdf",
            caption="../report/open_pretrained.rst",
            category="OPEN",
        ),
        png="results/figures/open_pretrained_intervals.png",
    log:
        "results/logs/figures/open_pretrained_intervals.log",
    params:
        labels=PLAN.baseline_labels + ["open"],
        envs=MINATAR,
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot intervals --intervals {input} --per-env --metric iqm --normalization reference "
        "--labels {params.labels} --envs {params.envs} --out results/figures/open_pretrained_intervals > {log} 2>&1"


rule figure_open_multitask:
    input:
        "results/stats/open_multitask/intervals.parquet",
    output:
        pdf=report(
            "results/figures/open_multitask_intervals.pdf",
            caption="../report/open_multitask.rst",
            category="OPEN",
        ),
        png="results/figures/open_multitask_intervals.png",
    log:
        "results/logs/figures/open_multitask_intervals.log",
    params:
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot intervals --intervals {input} --normalization reference --scope all "
        "--out results/figures/open_multitask_intervals > {log} 2>&1"


rule figure_open_zeroshot:
    input:
        "results/eval/curves.parquet",
    output:
        pdf=report(
            "results/figures/open_zeroshot_curves.pdf", caption="../report/open_zeroshot.rst", category="OPEN"
        ),
        png="results/figures/open_zeroshot_curves.png",
    log:
        "results/logs/figures/open_zeroshot_curves.log",
    params:
        labels=PLAN.baseline_labels + [label for label in ("open", "open_multi") if "ant" in PRETRAINED.get(label, {})],
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot curves --curves {input} --envs ant --labels {params.labels} "
        "--out results/figures/open_zeroshot_curves > {log} 2>&1"


localrules:
    figure_open_pretrained,
    figure_open_multitask,
    figure_open_zeroshot,


if MINATAR and all(env in PRETRAINED.get("open", {}) for env in MINATAR):
    REPORT_FIGURES.append("open_pretrained_intervals")
if MINATAR and all(env in PRETRAINED.get("open_multi", {}) for env in MINATAR):
    REPORT_FIGURES.append("open_multitask_intervals")
if "ant" in PRETRAINED.get("open_multi", {}):
    REPORT_FIGURES.append("open_zeroshot_curves")


# --------------------------------------------------------------------- Optim4RL
# Optimizers meta-trained by meta-gradients (Optim4RL's method) against the tuned
# baselines and OPEN, on every env they are evaluated on, from the evaluation tables.

METAGRAD_LABELS = PLAN.metatrain_labels("metagrad")
METAGRAD_ENVS = sorted({env for label in METAGRAD_LABELS for env in PLAN.learned_labels[label]})
METAGRAD_COMPARED = PLAN.baseline_labels + ["open"] * bool(PRETRAINED.get("open")) + METAGRAD_LABELS


rule figure_optim4rl:
    wildcard_constraints:
        kind="curves|intervals",
    input:
        lambda w: "results/eval/curves.parquet" if w.kind == "curves" else "results/stats/intervals.parquet",
    output:
        pdf=report("results/figures/optim4rl_{kind}.pdf", caption="../report/optim4rl.rst", category="Optim4RL"),
        png="results/figures/optim4rl_{kind}.png",
    log:
        "results/logs/figures/optim4rl_{kind}.log",
    params:
        plot=lambda w: "curves --curves" if w.kind == "curves" else
            "intervals --per-env --metric iqm --normalization reference --intervals",
        labels=METAGRAD_COMPARED,
        envs=METAGRAD_ENVS,
        code=CODE["plots"],
    conda:
        CPU_ENV
    shell:
        "rlopt plot {params.plot} {input} --labels {params.labels} --envs {params.envs} "
        "--out results/figures/optim4rl_{wildcards.kind} > {log} 2>&1"


localrules:
    figure_optim4rl,


if METAGRAD_LABELS:
    REPORT_FIGURES.extend(["optim4rl_curves", "optim4rl_intervals"])
