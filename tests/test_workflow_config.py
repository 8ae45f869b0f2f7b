"""Presets are validated at DAG construction; every bad one is rejected naming its key."""

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlopt.envs.registry import env_names
from rlopt.optimizers import optimizer_names
from rlopt.workflow_config import ConfigError, load_plan

REPO = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


def with_change(path: str, value):
    """A copy of the smoke preset with the dotted ``path`` set to ``value`` (DELETE removes it)."""
    config = copy.deepcopy(SMOKE)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return config


DELETE = object()

BAD_CONFIGS = [
    ("envs", ["breakout", "pong"], "envs[1]"),
    ("envs", [], "envs"),
    ("envs", "breakout", "envs"),
    ("envs", ["breakout", "breakout"], "envs"),
    ("optimizers", ["adam", "adagrad"], "optimizers[1]"),
    ("optimizers", [], "optimizers"),
    ("reference_optimizer", "sgd", "reference_optimizer"),
    ("reference_optimizer", "velo", "reference_optimizer"),
    ("preset", DELETE, "preset"),
    ("scale", "huge", "scale"),
    ("scale", DELETE, "scale"),
    ("description", "", "description"),
    ("tuning.seeds.count", 0, "tuning.seeds.count"),
    ("tuning.seeds.start", -1, "tuning.seeds.start"),
    ("tuning.seeds", {"start": 0}, "tuning.seeds"),
    ("tuning.search_space", "config/search_spaces/missing.yaml", "tuning.search_space"),
    ("tuning.search_space", "grid.json", "tuning.search_space"),
    ("tuning.extra", 1, "tuning (unknown key)"),
    ("evaluation.seeds.count", "8", "evaluation.seeds.count"),
    ("evaluation.seeds", {"start": 1000, "count": 2}, "evaluation.seeds"),
    ("evaluation.block_size", 0, "evaluation.block_size"),
    ("evaluation", DELETE, "evaluation"),
    ("stats.bootstrap_reps", -5, "stats.bootstrap_reps"),
    ("stats.bootstrap_reps", 2.5, "stats.bootstrap_reps"),
    ("stats.taus", {"start": 1.0, "stop": 0.5, "num": 5}, "stats.taus"),
    ("ppo_settings", "config/ppo/nope.yaml", "ppo_settings"),
    ("env_options.ant", {"backend": "physx"}, "env_options.ant.backend"),
    ("env_options.freeway", {}, "env_options.freeway"),
    ("seeds", [1, 2], "<top level> (unknown key)"),
    ("ablations.env", "freeway", "ablations.env"),
    ("ablations.variants", ["open", "no_momentum"], "ablations.variants[1]"),
    ("ablations.variants", [], "ablations.variants"),
    ("ablations.optimizers_per_variant", 0, "ablations.optimizers_per_variant"),
    ("ablations.es", {"population_size": 3}, "ablations.es"),
    ("ablations.ppo", {"total_steps": -1}, "ablations.ppo"),
    ("ablations.evaluation_seeds", {"start": 2000, "count": 2}, "ablations.evaluation_seeds"),
    ("ablations.extra", 1, "ablations (unknown key)"),
    ("deepsea.variants", {}, "deepsea.variants"),
    ("deepsea.variants.ablated_separated", {"separated": "yes"}, "deepsea.variants.ablated_separated"),
    ("deepsea.variants.ablated_separated", {"weights": "w.npy"}, "deepsea.variants.ablated_separated"),
    ("deepsea.variants.ablated_separated", {"features": "none"}, "deepsea.variants.ablated_separated"),
    ("deepsea.train_sizes", [8, 4], "deepsea.train_sizes"),
    ("deepsea.train_sizes", [0, 4], "deepsea.train_sizes[0]"),
    ("deepsea.evaluation_sizes", [], "deepsea.evaluation_sizes"),
    ("deepsea.es", {"population_size": 3}, "deepsea.es"),
    ("deepsea.ppo", {"num_envs": 0}, "deepsea.ppo"),
    ("deepsea.evaluation_seeds", {"start": 2000, "count": 2}, "deepsea.evaluation_seeds"),
    ("deepsea.pad_to", "evaluation", "deepsea.pad_to"),
    ("deepsea.train_mapping", "fixed", "deepsea.train_mapping"),
    ("deepsea.designs.default_mapping", {"variant": "stochastic_separated"}, "deepsea.designs.default_mapping"),
    (
        "deepsea.designs.default_mapping",
        {"variant": "nowhere", "pad_to": "training"},
        "deepsea.designs.default_mapping.variant",
    ),
    (
        "deepsea.designs.default_mapping",
        {"variant": "stochastic_separated", "train_mapping": "fresh"},
        "deepsea.designs.default_mapping",
    ),
    (
        "deepsea.designs.ablated_separated",
        {"variant": "stochastic_separated", "pad_to": "training"},
        "deepsea.designs.ablated_separated",
    ),
    (
        "deepsea.designs.default_mapping",
        {"variant": "stochastic_separated", "noise": False},
        "deepsea.designs.default_mapping",
    ),
    ("env_options.ant", {"auto_reset": "random"}, "env_options.ant.auto_reset"),
    ("metatrain.open_es.es", {"return_estimator": "median"}, "metatrain.open_es.es"),
    ("metatrain.open_es.es", {"sigma_init": 0.01, "sigma_min": 0.03}, "metatrain.open_es.es"),
]


@pytest.mark.parametrize("path, value, key", BAD_CONFIGS, ids=[f"{p}={v!r}" for p, v, _ in BAD_CONFIGS])
def test_malformed_preset_is_rejected_naming_the_key(path, value, key):
    with pytest.raises(ConfigError) as err:
        load_plan(with_change(path, value), root=REPO)
    assert f"'{key}" in str(err.value)


def write_preset(tmp_path, config, **files):
    for name, content in files.items():
        (tmp_path / name).write_text(yaml.safe_dump(content))
    return config


def test_search_space_with_unknown_hyperparameter_is_rejected(tmp_path):
    space = yaml.safe_load((REPO / "config/search_spaces/smoke.yaml").read_text())
    space["adam"]["minatar"]["beta1"] = [0.9]
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    config = with_change("tuning.search_space", "space.yaml")
    config["ppo_settings"] = str(REPO / "config/ppo/smoke.yaml")
    with pytest.raises(ConfigError, match=r"tuning.search_space.*unknown hyperparameter\(s\) \['beta1'\]"):
        load_plan(config, root=tmp_path)


def test_search_space_missing_an_optimizer_is_rejected(tmp_path):
    space = yaml.safe_load((REPO / "config/search_spaces/smoke.yaml").read_text())
    del space["lion"]
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    config = with_change("tuning.search_space", "space.yaml")
    config["ppo_settings"] = str(REPO / "config/ppo/smoke.yaml")
    with pytest.raises(ConfigError, match="tuning.search_space.*no grid for optimizer 'lion'"):
        load_plan(config, root=tmp_path)


def test_invalid_ppo_settings_are_rejected(tmp_path):
    (tmp_path / "ppo.yaml").write_text(yaml.safe_dump({"breakout": {"total_steps": -3}}))
    config = with_change("ppo_settings", "ppo.yaml")
    config["tuning"]["search_space"] = str(REPO / "config/search_spaces/smoke.yaml")
    with pytest.raises(ConfigError, match="ppo_settings.*'total_steps' must be a positive integer"):
        load_plan(config, root=tmp_path)


def test_every_shipped_preset_is_valid():
    for name in ("smoke", "config", "paper"):
        plan = load_plan(yaml.safe_load((REPO / f"config/{name}.yaml").read_text()), root=REPO)
        assert plan.grids and plan.eval_blocks


def test_schema_enums_match_the_registries():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert all(re.fullmatch(schema["$defs"]["env_name"]["pattern"], env) for env in env_names())
    assert set(schema["$defs"]["tuned_optimizer"]["enum"]) <= set(optimizer_names())


def test_an_env_outside_the_registry_is_named():
    with pytest.raises(ConfigError, match=r"config key 'envs\[1\]': unknown environment 'pong'"):
        load_plan(with_change("envs", ["breakout", "pong"]), root=REPO)


def test_a_metatrain_label_names_a_learned_optimizer_and_valid_settings():
    with pytest.raises(ConfigError, match=r"metatrain.open_es.opt_config.optimizer.*not a learned optimizer"):
        load_plan(with_change("metatrain.open_es.optimizer", "adam"), root=REPO)
    with pytest.raises(ConfigError, match=r"metatrain.open_es.opt_config.*size"):
        load_plan(with_change("metatrain.open_es.opt_config", {"size": "huge"}), root=REPO)
    with pytest.raises(ConfigError, match=r"ablations.variants\[0\].*not an ablation"):
        load_plan(with_change("ablations.variants", ["no_such_variant"]), root=REPO)


def test_snakemake_rejects_a_bad_preset_before_any_job(tmp_path):
    bad = with_change("envs", ["breakout", "pong"])
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--cores",
            "1",
            "--configfile",
            str(tmp_path / "bad.yaml"),
            "--directory",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "config key 'envs[1]'" in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()


def test_paper_dag_builds_with_every_study(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--quiet",
            "rules",
            "all",
            "--cores",
            "1",
            "--configfile",
            "config/paper.yaml",
            "--directory",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out.stdout, re.MULTILINE))
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    # One rule for every study's jobs: 7 x 17 ablations, 4 DeepSea variants and the meta-tuning
    # grid of 2 variants x 25 cells, 5 of them on two more meta-seeds (its cell that is the
    # optim4rl_ant block itself reuses that block's job).
    metatuning = 2 * (25 + 5 * 2)
    assert counts["metatrain"] == str(len(paper["metatrain"]) + 7 * 17 + 4 + metatuning - 1)
    assert counts["ablate_evaluate"] == str(7 * 17) and counts["deepsea_evaluate"] == str(4 * 24)
    assert counts["study_metatuning_train"] == str(metatuning + 5 * 2 * 2 * 2)  # and Adam's 40-point grid


def test_ablation_variants_share_es_seeds_and_differ_only_in_what_they_ablate():
    config = with_change("ablations.variants", ["open", "no_dormancy", "no_stochasticity", "no_features"])
    plan = load_plan(config, root=REPO)
    assert len(plan.ablation_runs) == 4 * config["ablations"]["optimizers_per_variant"]
    runs = {
        variant: plan.ablation_metatrain_args(variant, 1)
        for variant in ("open", "no_dormancy", "no_stochasticity", "no_features")
    }
    assert {args["seed"] for args in runs.values()} == {config["ablations"].get("seed", 0) + 1}
    assert {args["es"] for args in runs.values()} == {runs["open"]["es"]}
    assert json.loads(runs["open"]["opt_config"]) == {}
    assert json.loads(runs["no_dormancy"]["opt_config"]) == {"features": "no_dormancy"}
    assert json.loads(runs["no_features"]["opt_config"]) == {"features": "no_features", "noise": False}
    ppo = json.loads(runs["open"]["ppo"])["breakout"]
    assert ppo["total_steps"] == config["ablations"]["ppo"]["total_steps"]
    assert len({plan.checkpoint_tag(f"ablate/metatrain/{v}/opt1") for v in runs}) == 4
    assert all(plan.metatrain_jobs[f"ablate/metatrain/{v}/opt1"] == args for v, args in runs.items())
    evaluation = plan.ablation_eval_args("no_stochasticity")
    assert evaluation["opt_config"] == {"noise": False} and evaluation["seeds"] == "3000:3002"


def test_deepsea_variants_share_es_seeds_and_one_padded_board():
    plan = load_plan(SMOKE, root=REPO)
    spec = SMOKE["deepsea"]
    runs = sorted(spec["variants"]) + sorted(spec["designs"])
    assert plan.deepsea_evaluations == [(run, size) for run in runs for size in spec["evaluation_sizes"]]
    assert plan.deepsea_has_noise_pairs
    runs = {variant: plan.deepsea_metatrain_args(variant) for variant in spec["variants"]}
    assert len({(args["es"], args["seed"], args["env_options"]) for args in runs.values()}) == 1
    max_size = max(spec["train_sizes"][1], *spec["evaluation_sizes"])
    assert json.loads(runs["ablated_separated"]["env_options"]) == {
        "deepsea": {"train_sizes": spec["train_sizes"], "max_size": max_size, "train_mapping": "fresh"}
    }
    assert json.loads(runs["ablated_separated"]["opt_config"]) == spec["variants"]["ablated_separated"]
    assert len({plan.checkpoint_tag(f"deepsea/metatrain/{v}") for v in runs}) == len(runs)
    evaluation = plan.deepsea_eval_args("stochastic_separated", 8)
    assert json.loads(evaluation["env_options"]) == {
        "train_sizes": spec["train_sizes"],
        "max_size": max_size,
        "train_mapping": "fresh",
        "size": 8,
    }
    start, count = spec["evaluation_seeds"]["start"], spec["evaluation_seeds"]["count"]
    assert evaluation["seeds"] == f"{start}:{start + count}"


def test_a_deepsea_design_run_is_its_variant_with_one_choice_changed():
    config = copy.deepcopy(SMOKE)
    config["deepsea"]["designs"] = {
        "default_mapping": {"variant": "stochastic_separated", "train_mapping": "default"},
        "pad_to_training": {"variant": "stochastic_separated", "pad_to": "training"},
    }
    plan = load_plan(config, root=REPO)
    assert plan.deepsea_runs == ["ablated_separated", "stochastic_separated", "default_mapping", "pad_to_training"]
    assert plan.deepsea_design_pairs() == "default_mapping=stochastic_separated pad_to_training=stochastic_separated"
    variant = plan.deepsea_metatrain_args("stochastic_separated")
    for design, changed in (("default_mapping", {"train_mapping": "default"}), ("pad_to_training", {"max_size": 6})):
        args = plan.deepsea_metatrain_args(design)
        assert {key: value for key, value in args.items() if key != "env_options"} == {
            key: value for key, value in variant.items() if key != "env_options"
        }  # same optimizer, ES settings and seed
        options = json.loads(variant["env_options"])["deepsea"]
        assert json.loads(args["env_options"])["deepsea"] == {**options, **changed}
        assert f"deepsea/metatrain/{design}" in plan.metatrain_jobs
    assert json.loads(plan.deepsea_eval_args("pad_to_training", 8)["env_options"])["max_size"] == 8
    assert (
        plan.deepsea_eval_args("default_mapping", 8)["opt_config"]
        == config["deepsea"]["variants"]["stochastic_separated"]
    )
    assert plan.history_groups["deepsea"] == [
        f"results/deepsea/metatrain/{variant}/history.parquet" for variant in plan.deepsea_variants
    ]


def test_deepsea_padded_to_the_training_sizes_grows_the_board_only_beyond_them():
    config = with_change("deepsea.pad_to", "training")
    config["deepsea"].update(train_sizes=[4, 8], evaluation_sizes=[4, 8, 12], train_mapping="default", designs={})
    plan = load_plan(config, root=REPO)
    trained = json.loads(plan.deepsea_metatrain_args("ablated_separated")["env_options"])["deepsea"]
    assert trained == {"train_sizes": [4, 8], "max_size": 8, "train_mapping": "default"}
    boards = {
        size: json.loads(plan.deepsea_eval_args("ablated_separated", size)["env_options"])["max_size"]
        for size in (4, 8, 12)
    }
    assert boards == {4: 8, 8: 8, 12: 12}


def test_metatrain_normalisers_follow_the_es_estimator():
    plan = load_plan(with_change("metatrain.open_es_multi.es.return_estimator", "last_episode"), root=REPO)
    assert plan.metatrain_estimator("metatrain/open_es_multi") == "last_episode"
    assert load_plan(SMOKE, root=REPO).metatrain_estimator("metatrain/open_es_multi") == "window"
    paper = load_plan(yaml.safe_load((REPO / "config/paper.yaml").read_text()), root=REPO)
    assert {paper.metatrain_estimator(job) for job in paper.metatrain_jobs} == {"last_episode"}


def test_deepsea_gain_figure_needs_a_variant_with_and_one_without_noise():
    config = with_change("deepsea.variants", {"stochastic_separated": {"separated": True}})
    assert not load_plan(config, root=REPO).deepsea_has_noise_pairs


def test_randomness_figure_only_for_learned_optimizers_with_noise():
    plan = load_plan(SMOKE, root=REPO)
    assert set(plan.learned_noise_labels) == set(plan.pretrained_labels) | {"open_es", "open_es_multi"}
    config = with_change("metatrain.open_es.opt_config", {"features": "no_features", "noise": False})
    del config["open_pretrained"]  # hypothetical preset: only a No-Features optimizer is evaluated
    config["metatrain"].pop("open_es_multi")
    plan = load_plan(config, root=REPO)
    assert plan.learned_labels and not plan.learned_noise_labels


def test_a_trained_optimizer_is_evaluated_on_its_evaluation_envs():
    config = with_change("metatrain.open_es.evaluation_envs", ["breakout", "ant"])
    plan = load_plan(config, root=REPO)
    assert plan.learned_labels["open_es"] == ["breakout", "ant"]
    assert {("breakout", "open_es"), ("ant", "open_es")} <= set(plan.eval_runs)
    with pytest.raises(ConfigError, match=r"metatrain.open_es.evaluation_envs': 'freeway' is not in envs"):
        load_plan(with_change("metatrain.open_es.evaluation_envs", ["freeway"]), root=REPO)


def test_agents_per_env_choose_the_agent_settings_and_the_train_command():
    plan = load_plan(SMOKE, root=REPO)
    assert plan.agent("catch") == "a2c" and plan.agent("breakout") == "ppo"
    with pytest.raises(ConfigError, match=r"ppo_settings.*env 'breakout', agent a2c.*unknown A2C setting"):
        load_plan(with_change("agents", {"catch": "a2c", "breakout": "a2c", "asterix": "a2c"}), root=REPO)


def test_a_metagrad_label_runs_its_envs_agent_and_needs_its_own_settings():
    plan = load_plan(SMOKE, root=REPO)
    job = plan.metatrain_jobs["metatrain/optim4rl_catch"]
    assert job["method"] == "metagrad" and json.loads(job["es"]) == {}
    assert json.loads(job["metagrad"])["iterations"] == SMOKE["metatrain"]["optim4rl_catch"]["metagrad"]["iterations"]
    assert plan.metatrain_labels("metagrad") == ["optim4rl_catch"]
    assert "agent" not in json.loads(job["metagrad"])  # A2C, the default, stays implicit
    ppo_plan = load_plan(with_change("metatrain.optim4rl_catch.envs", ["breakout"]), root=REPO)
    assert json.loads(ppo_plan.metatrain_jobs["metatrain/optim4rl_catch"]["metagrad"])["agent"] == "ppo"
    with pytest.raises(
        ConfigError,
        match=r"runs one agent for all its envs; the agents map gives "
        r"\{'catch': 'a2c', 'breakout': 'ppo'\}",
    ):
        load_plan(with_change("metatrain.optim4rl_catch.envs", ["catch", "breakout"]), root=REPO)
    with pytest.raises(ConfigError, match=r"optim4rl_catch.metagrad.agent': the agent comes from the preset's agents"):
        load_plan(with_change("metatrain.optim4rl_catch.metagrad", {"agent": "ppo"}), root=REPO)
    with pytest.raises(ConfigError, match=r"metatrain.optim4rl_catch.metagrad': unknown metagrad setting"):
        load_plan(with_change("metatrain.optim4rl_catch.metagrad", {"iteration": 3}), root=REPO)
    with pytest.raises(ConfigError, match=r"metatrain.open_es': method es needs its 'es' settings"):
        config = copy.deepcopy(SMOKE)
        del config["metatrain"]["open_es"]["es"]
        load_plan(config, root=REPO)


def test_metagrad_units_must_fit_each_tasks_agent_settings_in_the_preset():
    """Caught when the preset loads, not when the job starts: the units must split the task's
    envs evenly, and a PPO unit's batch its minibatches (the block's overrides included)."""
    metagrad = SMOKE["metatrain"]["optim4rl_catch"]["metagrad"]
    with pytest.raises(ConfigError, match=r"optim4rl_catch.metagrad': .*'num_units' = 3 does not divide task 'catch'"):
        load_plan(with_change("metatrain.optim4rl_catch.metagrad", {**metagrad, "num_units": 3}), root=REPO)
    ppo_block = with_change("metatrain.optim4rl_catch.envs", ["breakout"])
    ppo_block["metatrain"]["optim4rl_catch"]["metagrad"] = {**metagrad, "num_units": 2, "unit_block": 1}
    ppo_block["metatrain"]["optim4rl_catch"]["ppo"] = {
        "breakout": {"num_envs": 8, "num_steps": 6, "num_minibatches": 16}
    }
    with pytest.raises(ConfigError, match=r"a unit of 4 envs \(2 units\): num_envs\*num_steps = 24 is not divisible"):
        load_plan(ppo_block, root=REPO)
    ppo_block["metatrain"]["optim4rl_catch"]["ppo"]["breakout"]["num_minibatches"] = 4
    load_plan(ppo_block, root=REPO)


# The report's figures: every stage of the smoke preset, then a preset with only the
# handcrafted baselines (hand-written lists, the figures main.tex shows per stage).
CORE_FIGURES = {
    "tuning",
    "eval_curves",
    "eval_intervals",
    "eval_intervals_per_env",
    "eval_normalized",
    "eval_poi",
    "eval_profile",
    "runtime",
    "dynamics_dormancy",
}
CORE_TABLES = {"table_tuning", "table_intervals", "table_poi", "table_runtime", "table_cost"}


def test_the_report_lists_a_figure_and_table_per_stage_of_the_preset():
    plan = load_plan(SMOKE, root=REPO)
    assert {figure.stem for figure in plan.report_figures} == CORE_FIGURES | {
        "dynamics_update_size",
        "dynamics_randomness",
        "open_pretrained_intervals",
        "open_multitask_intervals",
        "open_zeroshot_curves",
        "open_metatrain_fitness",
        "metagrad_validation_return",
        "metagrad_meta_loss",
        "optim4rl_curves",
        "optim4rl_intervals",
        "ablations_intervals",
        "deepsea_metatrain_fitness",
        "deepsea_returns",
        "deepsea_gains",
        "deepsea_designs",
        "deepsea_randomness",
        "collapse_curves",
        "collapse_seeds",
        "collapse_update_sizes",
        "nonstationary_curves",
        "nonstationary_update_sizes",
        "transfer_intervals",
        "transfer_poi",
        "transfer_curves",
        "metatuning_heatmap",
        "metatuning_distribution",
        "metatuning_expected_max",
        "metatuning_histories",
    }
    assert {table.stem for table in plan.report_tables} == CORE_TABLES | {
        "table_ablations",
        "table_deepsea",
        "table_collapse",
        "table_nonstationary",
        "table_transfer",
        "table_metatuning",
    }

    config = copy.deepcopy(SMOKE)
    for block in ("open_pretrained", "metatrain", "ablations", "deepsea", "studies"):
        config.pop(block, None)
    baselines_only = load_plan(config, root=REPO)
    assert {figure.stem for figure in baselines_only.report_figures} == CORE_FIGURES
    assert {table.stem for table in baselines_only.report_tables} == CORE_TABLES
    assert "--ablations" not in baselines_only.report_tables_options()


def test_pretrained_open_figures_need_the_authors_optimizers_on_every_minatar_game():
    config = copy.deepcopy(SMOKE)
    config["open_pretrained"]["labels"]["open"].pop("asterix")
    stems = {figure.stem for figure in load_plan(config, root=REPO).report_figures}
    assert "open_pretrained_intervals" not in stems and "open_multitask_intervals" in stems


def test_figure_options_name_the_presets_labels_and_envs():
    plan = load_plan(SMOKE, root=REPO)
    assert plan.figure_options("optim4rl_intervals") == (
        "--per-env --metric iqm --normalization reference --labels adam rmsprop lion open optim4rl_catch "
        "--envs breakout catch"
    )
    assert plan.figure_options("eval_normalized") == "--reference adam"
    assert plan.figure_options("deepsea_returns") == "--train-sizes 4 6"
    assert plan.report_tables_options().split("--collapse ")[1].split(" --")[0] == (
        "results/studies/collapse/stats/rates.parquet results/studies/collapse/stats/intervals.parquet"
    )


def test_the_papers_learned_baselines_stand_beside_open_in_its_comparisons():
    """OPEN's Figs. 2-3: No Features (and Optim4RL by ES) meta-trained per game join the
    single-task comparison, the multi-task ones the multi-task statistics; a meta-gradient
    run on Catch or a multi-task one is in neither single-task list."""
    paper = load_plan(yaml.safe_load((REPO / "config/paper.yaml").read_text()), root=REPO)
    single = paper.figure_options("open_pretrained_intervals").split("--labels ")[1].split(" --")[0].split()
    assert single == ["adam", "rmsprop", "lion", "open", "open_es_breakout", "no_features_es_breakout",
                      "no_features_es_asterix", "no_features_es_freeway", "no_features_es_spaceinvaders",
                      "optim4rl_es_breakout"]  # fmt: skip
    assert paper.multitask_compared == [
        "adam",
        "rmsprop",
        "lion",
        "open_multi",
        "open_es_multi",
        "no_features_es_multi",
    ]
    assert json.loads(paper.metatrain_args("no_features_es_asterix")["opt_config"]) == {"features": "no_features"}
    assert paper.metatrain_args("no_features_es_multi")["es"] == paper.metatrain_args("open_es_multi")["es"]

    default = load_plan(yaml.safe_load((REPO / "config/config.yaml").read_text()), root=REPO)
    assert default.es_single_task_minatar_labels == ["open_es", "no_features_es"]
    assert default.metatrain_args("no_features_es")["es"] == default.metatrain_args("open_es")["es"]
    assert default.es_multitask_minatar_labels == []


def test_main_tex_shows_every_declared_figure_and_table_once():
    from rlopt.report.contents import FIGURES, TABLES

    text = "\n".join(
        line for line in (REPO / "report" / "main.tex").read_text().splitlines() if not line.lstrip().startswith("%")
    )
    shown = re.findall(r"\\reportitem\{([a-z0-9_]+)\}", text)
    assert sorted(shown) == sorted([figure.stem for figure in FIGURES] + [table.stem for table in TABLES])


def test_validating_the_paper_preset_starts_neither_jax_nor_evosax():
    """Snakemake validates the preset while it parses the workflow: the configuration classes
    and the optimizer registry must not import JAX (it would add seconds to every dry run)."""
    script = (
        "import sys, yaml\n"
        "from rlopt.workflow_config import load_plan\n"
        f"plan = load_plan(yaml.safe_load(open({str(REPO / 'config' / 'paper.yaml')!r})), root={str(REPO)!r})\n"
        "assert plan.metatrain_jobs and plan.report_figures\n"
        "print(sorted(name for name in ('jax', 'jaxlib', 'evosax', 'optax', 'flax', 'brax') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_every_figure_caption_of_the_html_report_is_valid_restructuredtext():
    from docutils.core import publish_parts

    from rlopt.report.contents import FIGURES

    for figure in FIGURES:  # halt on any warning, e.g. "|p|" read as a substitution
        publish_parts(figure.summary, writer="html", settings_overrides={"halt_level": 2, "report_level": 5})
