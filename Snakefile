# Evaluation of meta-learned RL optimizers: the whole study, from tuning to the report.
#   snakemake --cores all                              default preset (config/config.yaml)
#   snakemake --cores all --configfile config/smoke.yaml
#   snakemake --workflow-profile profiles/slurm --configfile config/paper.yaml
import os

from snakemake.utils import min_version

min_version("9.0")


# The default preset unless one is given with --configfile: presets are complete on
# their own and must not be merged into the default one.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/metatrain.smk"
include: "workflow/rules/ablate.smk"
include: "workflow/rules/deepsea.smk"
include: "workflow/rules/studies.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "results/report.pdf",
