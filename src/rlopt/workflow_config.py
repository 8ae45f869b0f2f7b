"""Validates a pipeline preset and resolves it into the jobs the Snakefile declares.

Everything that can be wrong with a preset is caught here, at DAG construction, with a
message naming the offending key: the JSON schema (types, enums, ranges, unknown keys),
then what a schema cannot express (files that must exist, disjoint seed sets, search
spaces whose every point is a valid optimizer configuration, valid PPO settings).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from rlopt.report.contents import FIGURES, FIGURES_BY_STEM, TABLES, Figure, Table

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A preset that cannot run; the message names the key."""


def _key_path(path) -> str:
    parts = []
    for part in path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).lstrip(".") or "<top level>"


def check_schema(config: dict, schema_path: Path = SCHEMA) -> None:
    import jsonschema

    schema = yaml.safe_load(schema_path.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.path), list(map(str, e.path))))
    if errors:
        error = errors[0]
        key = _key_path(error.path)
        if error.validator == "additionalProperties":
            key = f"{key} (unknown key)" if error.path else "<top level> (unknown key)"
        raise ConfigError(f"config key '{key}': {error.message}")


# DeepSea choices the OPEN paper leaves open (block `deepsea`), with this project's defaults.
DEEPSEA_DESIGN_CHOICES = {"pad_to": "largest", "train_mapping": "fresh"}


def _fill_defaults(config: dict) -> dict:
    config = json.loads(json.dumps(config))  # a deep copy that is plain JSON
    config.setdefault("env_options", {})
    config.setdefault("agents", {})
    config["stats"].setdefault("taus", {"start": 0.0, "stop": 2.0, "num": 41})
    for spec in config.get("metatrain", {}).values():
        spec.setdefault("optimizer", "open")
        spec.setdefault("opt_config", {})
        spec.setdefault("method", "es")
    for study in ("ablations", "deepsea"):
        if config.get(study):
            config[study].setdefault("optimizer", "open")
    if config.get("deepsea"):
        for choice, default in DEEPSEA_DESIGN_CHOICES.items():
            config["deepsea"].setdefault(choice, default)
        config["deepsea"].setdefault("designs", {})
    if config.get("studies"):
        config["studies"].setdefault("detector", {})
        if config["studies"].get("nonstationary"):
            config["studies"]["nonstationary"].setdefault("controls", True)
            config["studies"]["nonstationary"].setdefault("window", 5)
        if config["studies"].get("metatuning"):
            repeats = config["studies"]["metatuning"].setdefault("meta_seeds", {})
            repeats.setdefault("count", 1)
            repeats.setdefault("cells", "none")
    return config


def yaml_syntax_error(path: Path | str, err: yaml.YAMLError) -> str:
    """'FILE, line L, column C: what is wrong' for a YAML file that does not parse."""
    mark, context = getattr(err, "problem_mark", None), getattr(err, "context_mark", None)
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
    opened = f" ({err.context} at line {context.line + 1}, column {context.column + 1})" if context else ""
    return f"{where}: {getattr(err, 'problem', None) or err}{opened}"


def _load_yaml(path: str, key: str, root: Path) -> dict:
    full = root / path
    if not full.is_file():
        raise ConfigError(f"config key '{key}': file {path} does not exist")
    try:
        data = yaml.safe_load(full.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config key '{key}': not valid YAML: {yaml_syntax_error(path, err)}")
    if not isinstance(data, dict):
        raise ConfigError(f"config key '{key}': {path} must hold a mapping")
    return data


def load_preset(path: Path | str) -> dict:
    """A preset file as a dict; a syntax error is reported with its file and line (Snakemake's
    own --configfile reader names neither)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"preset {path} does not exist")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"preset is not valid YAML: {yaml_syntax_error(path, err)}")
    if not isinstance(config, dict):
        raise ConfigError(f"preset {path} must hold a mapping of config keys")
    return config


def point_id(hparams: dict) -> str:
    """A stable name for a grid point: editing a grid renames only the points that changed."""
    canonical = json.dumps(hparams, sort_keys=True)
    return "h" + hashlib.sha256(canonical.encode()).hexdigest()[:10]


def expand_grid(grid: dict) -> list[dict]:
    names = sorted(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


@dataclass(frozen=True)
class MetaTuningCell:
    """One configuration of the meta-tuning study (Plan.metatuning_cells)."""

    name: str  # its folder under results/studies/metatuning/runs/
    kind: str  # "learned" (meta-trained here) or "baseline" (a handcrafted optimizer's grid point)
    variant: str  # the learned grid's variant, or the baseline's optimizer
    settings: dict  # the axes' values (learned) or the hyperparameters (baseline)
    meta_seed: int | None  # learned cells: offset of the base block's meta-training seed
    job: str | None = None  # learned cells: their meta-training job (a folder under results/)


def _same_metatraining(first: dict, second: dict) -> bool:
    """Whether two ``rlopt metatrain`` argument sets run the same meta-gradient training
    (their metagrad settings compared after the defaults are filled in)."""
    from rlopt.meta.settings import MetaGradConfig, MetaGradConfigError

    def settings(args: dict) -> dict:
        return MetaGradConfig.from_dict(json.loads(args["metagrad"])).to_dict()

    others = set(first) - {"metagrad"}
    try:
        return all(first[k] == second.get(k) for k in others) and settings(first) == settings(second)
    except (MetaGradConfigError, TypeError):
        return False  # an invalid cell: _check_metatuning names it


def _repeated_cells(which: str, rows: int, columns: int) -> set[tuple[int, int]]:
    """(row, column) indices of the cells meta-trained on several meta-seeds."""
    centre = {(rows // 2, columns // 2)}
    corners = {(i, j) for i in {0, rows - 1} for j in {0, columns - 1}}
    every = set(itertools.product(range(rows), range(columns)))
    return {"none": set(), "centre": centre, "corners_and_centre": corners | centre, "all": every}[which]


def weights_hparams_json(weights: str, opt_config: dict) -> str:
    """`rlopt train --hparams` of a trained learned optimizer: its weights file plus its architecture."""
    return json.dumps({"weights": str(weights), **opt_config}, sort_keys=True)


@dataclass
class Plan:
    """A validated preset, resolved into concrete jobs."""

    config: dict
    ppo: dict  # env -> PPO overrides (JSON-ready)
    total_steps: dict  # env -> environment steps per run
    env_options: dict  # env -> constructor options
    grids: dict  # (optimizer, env) -> {point_id: hparams}
    eval_blocks: list[str] = field(default_factory=list)  # "START-STOP" (half-open)

    @property
    def envs(self) -> list[str]:
        return self.config["envs"]

    @property
    def optimizers(self) -> list[str]:
        return self.config["optimizers"]

    @property
    def tune_seeds(self) -> str:
        seeds = self.config["tuning"]["seeds"]
        return f"{seeds['start']}:{seeds['start'] + seeds['count']}"

    def agent(self, env: str) -> str:
        """The RL algorithm ``env`` is trained with (``rlopt train --agent``)."""
        return self.config["agents"].get(env, "ppo")

    def ppo_settings(self, env: str, overrides: dict | None = None) -> dict:
        """The agent overrides of a job on ``env``: the preset's for ``env``, then a stage's
        ``overrides`` (the agent's defaults fill the rest in ``rlopt.agents.settings``)."""
        return {**self.ppo[env], **(overrides or {})}

    def ppo_json(self, env: str) -> str:
        return json.dumps(self.ppo[env], sort_keys=True)

    def env_options_json(self, env: str) -> str:
        return json.dumps(self.env_options.get(env, {}), sort_keys=True)

    @property
    def pretrained_labels(self) -> dict:
        """label -> {env: pretrained file name} of the OPEN authors' optimizers to evaluate."""
        return self.config.get("open_pretrained", {}).get("labels", {})

    @property
    def pretrained_files(self) -> list[str]:
        return sorted({name for runs in self.pretrained_labels.values() for name in runs.values()})

    @property
    def metatrain(self) -> dict:
        """label -> meta-training settings of the learned optimizers trained here."""
        return self.config.get("metatrain", {})

    @property
    def learned_labels(self) -> dict:
        """label -> envs it is evaluated on, for pretrained and meta-trained optimizers."""
        labels = {label: list(envs) for label, envs in self.pretrained_labels.items()}
        labels.update(
            {label: list(spec.get("evaluation_envs", spec["envs"])) for label, spec in self.metatrain.items()}
        )
        return labels

    def learned_spec(self, label: str) -> dict:
        """{"optimizer", "opt_config"} of an evaluated learned label (the authors' files are
        OPEN's full small or larger optimizers; their size comes from the file)."""
        if label in self.metatrain:
            return {"optimizer": self.metatrain[label]["optimizer"], "opt_config": self.metatrain[label]["opt_config"]}
        return {"optimizer": "open", "opt_config": {}}

    @property
    def learned_noise_labels(self) -> list[str]:
        """Evaluated learned optimizers with learned noise (they log the randomness they apply)."""
        return [label for label in self.learned_labels if _has_noise(**self.learned_spec(label))]

    @property
    def eval_runs(self) -> list[tuple[str, str]]:
        """(env, label) of every evaluated configuration: tuned baselines, then learned ones."""
        runs = [(env, optimizer) for env in self.envs for optimizer in self.optimizers]
        return runs + [(env, label) for label, envs in self.learned_labels.items() for env in envs]

    def metatrain_labels(self, method: str) -> list[str]:
        """The ``metatrain`` labels trained by ``method`` (es or metagrad)."""
        return [label for label, spec in self.metatrain.items() if spec["method"] == method]

    @cached_property  # read by every meta-training job's rule: built once
    def metatrain_jobs(self) -> dict[str, dict]:
        """Every meta-training job of every study: its folder under results/ -> its
        ``rlopt metatrain`` arguments (one description, whichever block it comes from)."""
        jobs = {f"metatrain/{label}": self.metatrain_args(label) for label in self.metatrain}
        jobs.update(
            {
                f"ablate/metatrain/{variant}/opt{index}": self.ablation_metatrain_args(variant, index)
                for variant, index in self.ablation_runs
            }
        )
        jobs.update({f"deepsea/metatrain/{run}": self.deepsea_metatrain_args(run) for run in self.deepsea_runs})
        jobs.update(
            {
                cell.job: self.metatuning_metatrain_args(cell.variant, cell.settings, cell.meta_seed)
                for cell in self.metatuning_cells
                if cell.job and cell.job not in jobs
            }
        )
        return jobs

    def metatrain_args(self, label: str) -> dict:
        """JSON-ready arguments of ``rlopt metatrain`` for ``label``."""
        return self.metatrain_args_of(self.metatrain[label])

    def metatrain_args_of(self, spec: dict) -> dict:
        """JSON-ready arguments of ``rlopt metatrain`` for a block of ``metatrain``'s form."""
        ppo = {env: self.ppo_settings(env, spec.get("ppo", {}).get(env)) for env in spec["envs"]}
        metagrad = dict(spec.get("metagrad", {}))
        if spec["method"] == "metagrad" and self.agent(spec["envs"][0]) == "ppo":
            metagrad["agent"] = "ppo"  # from the agents map (A2C, the default, is left implicit)
        return self._metatrain_args(
            spec["optimizer"],
            spec["envs"],
            spec["opt_config"],
            spec.get("es", {}),
            ppo,
            spec.get("seed", 0),
            method=spec["method"],
            metagrad=metagrad,
        )

    def _metatrain_args(
        self,
        optimizer: str,
        envs: list[str],
        opt_config: dict,
        es: dict,
        ppo: dict,
        seed: int,
        env_options: dict | None = None,
        method: str = "es",
        metagrad: dict | None = None,
    ) -> dict:
        """``ppo``: env -> agent overrides; ``env_options``: env -> options (default: the preset's)."""
        env_options = env_options or {env: self.env_options.get(env, {}) for env in envs}
        return {
            "method": method,
            "metagrad": json.dumps(metagrad or {}, sort_keys=True),
            "optimizer": optimizer,
            "envs": " ".join(envs),
            "opt_config": json.dumps(opt_config, sort_keys=True),
            "es": json.dumps(es, sort_keys=True),
            "ppo": json.dumps(ppo, sort_keys=True),
            "env_options": json.dumps(env_options, sort_keys=True),
            "seed": seed,
        }

    def metatrain_estimator(self, job: str) -> str:
        """The final-return estimator of meta-training ``job``'s fitness and validation (and of
        its normalisers), from its method's settings."""
        from rlopt.meta.settings import ESConfig, MetaGradConfig

        args = self.metatrain_jobs[job]
        settings = ESConfig if args["method"] == "es" else MetaGradConfig
        return settings.from_dict(json.loads(args[args["method"]])).return_estimator

    def checkpoint_tag(self, job: str) -> str:
        """Checkpoints live under a hash of the settings: a changed run never resumes an old one."""
        return point_id(self.metatrain_jobs[job])

    @property
    def ablations(self) -> dict:
        return self.config.get("ablations", {})

    @property
    def ablation_runs(self) -> list[tuple[str, int]]:
        """(variant, index) of every optimizer the ablation study meta-trains."""
        if not self.ablations:
            return []
        count = self.ablations["optimizers_per_variant"]
        return [(variant, index) for variant in self.ablations["variants"] for index in range(count)]

    def ablation_metatrain_args(self, variant: str, index: int) -> dict:
        """``rlopt metatrain`` arguments of trained optimizer ``index`` of ``variant``; the
        variants share ES seeds, so they differ only in what they ablate."""
        spec = self.ablations
        env = spec["env"]
        ppo = {env: self.ppo_settings(env, spec.get("ppo"))}
        return self._metatrain_args(
            spec["optimizer"],
            [env],
            _ablation_settings(spec["optimizer"], variant),
            spec["es"],
            ppo,
            spec.get("seed", 0) + int(index),
        )

    def ablation_eval_args(self, variant: str) -> dict:
        """``rlopt train`` arguments (besides the weights) evaluating a trained ``variant``."""
        spec = self.ablations
        seeds = spec["evaluation_seeds"]
        return {
            "env": spec["env"],
            "optimizer": spec["optimizer"],
            "opt_config": _ablation_settings(spec["optimizer"], variant),
            "ppo": json.dumps(self.ppo_settings(spec["env"], spec.get("ppo")), sort_keys=True),
            "env_options": self.env_options_json(spec["env"]),
            "seeds": f"{seeds['start']}:{seeds['start'] + seeds['count']}",
        }

    @property
    def deepsea(self) -> dict:
        return self.config.get("deepsea", {})

    @property
    def deepsea_variants(self) -> list[str]:
        return sorted(self.deepsea.get("variants", {}))

    @property
    def deepsea_designs(self) -> dict[str, dict]:
        """design name -> {variant, and the design choices it changes} (the sensitivity runs)."""
        return self.deepsea.get("designs", {})

    @property
    def deepsea_runs(self) -> list[str]:
        """Every meta-trained DeepSea optimizer: the variants, then the design runs."""
        return self.deepsea_variants + sorted(self.deepsea_designs)

    @property
    def deepsea_evaluations(self) -> list[tuple[str, int]]:
        """(variant or design, size) of every DeepSea evaluation job."""
        return [(run, size) for run in self.deepsea_runs for size in self.deepsea["evaluation_sizes"]]

    def deepsea_design_pairs(self) -> str:
        """``DESIGN=VARIANT`` words of ``rlopt deepsea-stats --designs``."""
        return " ".join(f"{name}={design['variant']}" for name, design in sorted(self.deepsea_designs.items()))

    def _deepsea_run(self, run: str) -> tuple[dict, dict]:
        """(opt_config, design choices) of a variant or design run."""
        spec = self.deepsea
        design = self.deepsea_designs.get(run)
        if design is None:
            return spec["variants"][run], {choice: spec[choice] for choice in DEEPSEA_DESIGN_CHOICES}
        choices = {choice: design.get(choice, spec[choice]) for choice in DEEPSEA_DESIGN_CHOICES}
        return spec["variants"][design["variant"]], choices

    @property
    def deepsea_has_noise_pairs(self) -> bool:
        """Whether some architecture has a variant with and one without learned noise (Fig. 6)."""
        kinds = {}
        for filled in self._deepsea_filled_variants():
            kinds.setdefault(filled["separated"], set()).add(filled["noise"])
        return any(len(noise) == 2 for noise in kinds.values())

    @property
    def deepsea_has_noise(self) -> bool:
        """Whether some variant has learned noise (Fig. 14: the randomness it applies)."""
        optimizer = self.deepsea.get("optimizer")
        return any(_has_noise(optimizer, opt_config) for opt_config in self.deepsea.get("variants", {}).values())

    def _deepsea_filled_variants(self) -> list[dict]:
        from rlopt.optimizers import validate_hparams

        optimizer = self.deepsea.get("optimizer")
        return [validate_hparams(optimizer, opt_config) for opt_config in self.deepsea.get("variants", {}).values()]

    def _deepsea_env_options(self, choices: dict, size: int | None = None) -> dict:
        """Env options of meta-training (``size`` None) or of the evaluation at ``size``.

        ``pad_to`` "largest": every job shares one board that fits every training and
        evaluation size (one network shape for all). "training": meta-training pads to the
        largest training size, and an evaluation to the larger of that and its own size, so
        in-support sizes see the board they were trained on and few always-zero inputs.
        """
        spec = self.deepsea
        low, high = spec["train_sizes"]
        if choices["pad_to"] == "largest":
            board = max(high, *spec["evaluation_sizes"])
        else:
            board = high if size is None else max(high, int(size))
        options = {"train_sizes": [low, high], "max_size": board, "train_mapping": choices["train_mapping"]}
        return options if size is None else {**options, "size": int(size)}

    def deepsea_metatrain_args(self, run: str) -> dict:
        """``rlopt metatrain`` arguments of one DeepSea variant or design run; all share ES seeds."""
        spec = self.deepsea
        opt_config, choices = self._deepsea_run(run)
        return self._metatrain_args(
            spec["optimizer"],
            ["deepsea"],
            opt_config,
            spec["es"],
            {"deepsea": spec.get("ppo", {})},
            spec.get("seed", 0),
            {"deepsea": self._deepsea_env_options(choices)},
        )

    def deepsea_eval_args(self, run: str, size: int) -> dict:
        """``rlopt train`` arguments (besides the weights) evaluating ``run`` at ``size``."""
        spec = self.deepsea
        seeds = spec["evaluation_seeds"]
        opt_config, choices = self._deepsea_run(run)
        return {
            "optimizer": spec["optimizer"],
            "opt_config": opt_config,
            "ppo": json.dumps(spec.get("ppo", {}), sort_keys=True),
            "env_options": json.dumps(self._deepsea_env_options(choices, size), sort_keys=True),
            "seeds": f"{seeds['start']}:{seeds['start'] + seeds['count']}",
        }

    @property
    def studies(self) -> dict:
        return self.config.get("studies", {})

    @property
    def collapse_arms(self) -> list[str]:
        return list(self.studies.get("collapse", {}).get("arms", {}))

    @property
    def nonstationary_runs(self) -> list[tuple[str, str, str]]:
        """(env, schedule, arm) of every non-stationary run; schedule 'stationary' is an arm's
        control on that env. An arm resetting at changes has none: with nothing changing it is
        its optimizer without resets."""
        spec = self.studies.get("nonstationary", {})
        arms = spec.get("arms", {})
        runs = []
        for env, site in spec.get("envs", {}).items():
            runs += [(env, schedule, arm) for schedule in site["schedules"] for arm in arms]
            if spec.get("controls", True):
                runs += [(env, "stationary", arm) for arm, entry in arms.items() if not entry.get("reset_at_changes")]
        return runs

    @property
    def transfer_runs(self) -> list[tuple[str, str]]:
        """(target env, arm) of every zero-shot transfer run."""
        spec = self.studies.get("transfer", {})
        return [(env, arm) for env in spec.get("envs", {}) for arm in spec.get("arms", {})]

    def study_env(self, study: str, env: str | None = None) -> tuple[str, dict]:
        """The env of a study run and the study's settings for it (``ppo``, ``env_options``,
        ``schedules``): the study's one env, or ``env`` among its envs."""
        spec = self.studies[study]
        if "envs" in spec:
            return env, spec["envs"][env]
        return spec["env"], spec

    def tuned_hparams_path(self, optimizer: str, env: str) -> str | None:
        """Where the tuning stage writes ``optimizer``'s best settings on ``env`` (None if it does not tune them)."""
        if env in self.envs and optimizer in self.optimizers:
            return f"results/tune/{env}/{optimizer}/best_hparams.json"
        return None

    def study_train_args(self, study: str, arm: str, schedule: str = "stationary", env: str | None = None) -> dict:
        """``rlopt train`` arguments of one study run (``inputs``: the files it reads, i.e. a
        learned arm's weights or a tuned arm's hyperparameters)."""
        spec = self.studies[study]
        env, site = self.study_env(study, env)
        entry = spec["arms"][arm]
        weights = entry.get("weights")
        tuned = self.tuned_hparams_path(entry["optimizer"], env) if entry.get("tuned") else None
        if tuned:
            hparams, inputs = f"@{tuned}", [tuned]
        else:
            settings = {**self.metatrained_settings(weights), **entry.get("hparams", {})}
            hparams = json.dumps({**settings, **({"weights": weights} if weights else {})}, sort_keys=True)
            inputs = [weights] if weights else []
        env_options = {**self.env_options.get(env, {}), **site.get("env_options", {})}
        if schedule != "stationary":
            env_options["schedule"] = site["schedules"][schedule]
            if entry.get("reset_at_changes"):
                hparams = json.dumps({**json.loads(hparams), **_resets_of(site["schedules"][schedule])}, sort_keys=True)
        seeds = self.studies["seeds"]
        return {
            "agent": self.agent(env),
            "env": env,
            "optimizer": entry["optimizer"],
            "hparams": hparams,
            "seeds": f"{seeds['start']}:{seeds['start'] + seeds['count']}",
            "ppo": json.dumps({**self.ppo.get(env, {}), **site.get("ppo", {})}, sort_keys=True),
            "env_options": json.dumps(env_options, sort_keys=True),
            "inputs": inputs,
        }

    @property
    def metatuning(self) -> dict:
        return self.studies.get("metatuning", {})

    @cached_property
    def metatuning_cells(self) -> list[MetaTuningCell]:
        """Every cell of the meta-tuning study: the learned grid (variant x row x column x
        meta-seed) in order, then the baseline's grid points."""
        spec = self.metatuning
        if not spec:
            return []
        (row_key, rows), (column_key, columns) = spec["axes"].items()
        repeated = _repeated_cells(spec["meta_seeds"]["cells"], len(rows), len(columns))
        base_args = self.metatrain_args(spec["base"])
        cells = []
        for variant in spec["variants"]:
            for (i, row), (j, column) in itertools.product(enumerate(rows), enumerate(columns)):
                seeds = spec["meta_seeds"]["count"] if (i, j) in repeated else 1
                for meta_seed in range(seeds):
                    name = f"{variant}/{row_key}{row:g}-{column_key}{column:g}/meta_seed{meta_seed}"
                    settings = {row_key: row, column_key: column}
                    args = self.metatuning_metatrain_args(variant, settings, meta_seed)
                    # The cell that is the base block itself reuses its meta-training.
                    job = f"studies/metatuning/metatrain/{name}"
                    if _same_metatraining(args, base_args):
                        job = f"metatrain/{spec['base']}"
                    cells.append(MetaTuningCell(name, "learned", variant, settings, meta_seed, job))
        baseline = spec["baseline"]
        for hparams in expand_grid(baseline["grid"]):
            name = f"{baseline['optimizer']}/{point_id(hparams)}"
            cells.append(MetaTuningCell(name, "baseline", baseline["optimizer"], hparams, None))
        return cells

    def metatuning_cell(self, name: str) -> MetaTuningCell:
        return next(cell for cell in self.metatuning_cells if cell.name == name)

    def metatuning_metatrain_args(self, variant: str, settings: dict, meta_seed: int) -> dict:
        """``rlopt metatrain`` arguments of a learned cell: the base block with the cell's
        variant and axis settings, its seed offset by the cell's meta-seed."""
        spec = self.metatuning
        base = self.metatrain[spec["base"]]
        metagrad = {**base.get("metagrad", {}), **spec["variants"][variant], **settings}
        cell_spec = {**base, "metagrad": metagrad, "seed": base.get("seed", 0) + meta_seed}
        return self.metatrain_args_of(cell_spec)

    def metatuning_train_args(self, name: str) -> dict:
        """``rlopt train`` arguments evaluating one cell on the selection and report seeds,
        with the preset's agent settings for the base block's env."""
        spec = self.metatuning
        cell = self.metatuning_cell(name)
        env = self.metatrain[spec["base"]]["envs"][0]
        if cell.job:
            base = self.metatrain[spec["base"]]
            weights = f"results/{cell.job}/best.npy"
            optimizer, inputs = base["optimizer"], [weights]
            hparams = weights_hparams_json(weights, base["opt_config"])
        else:
            optimizer, inputs = cell.variant, []
            hparams = json.dumps(cell.settings, sort_keys=True)
        return {
            "agent": self.agent(env),
            "env": env,
            "optimizer": optimizer,
            "hparams": hparams,
            "seeds": f"{self.metatuning_seeds('selection')},{self.metatuning_seeds('report')}",
            "ppo": self.ppo_json(env),
            "env_options": self.env_options_json(env),
            "inputs": inputs,
        }

    def metatuning_seeds(self, role: str) -> str:
        """The study's ``selection`` or ``report`` seeds, as ``--seeds`` takes them ("" if no study)."""
        seeds = self.metatuning.get(f"{role}_seeds")
        return ",".join(map(str, range(seeds["start"], seeds["start"] + seeds["count"]))) if seeds else ""

    def metatuning_cells_json(self) -> str:
        """What `rlopt metatuning-stats --cells` reads: each cell's grid position and its files."""
        axes = list(self.metatuning.get("axes", {}))
        cells = [
            {
                "cell": cell.name,
                "kind": cell.kind,
                "variant": cell.variant,
                "settings": cell.settings,
                "meta_seed": cell.meta_seed,
                "run": f"results/studies/metatuning/runs/{cell.name}",
                "history": f"results/{cell.job}/history.parquet" if cell.job else None,
            }
            for cell in self.metatuning_cells
        ]
        return json.dumps({"axes": axes, "cells": cells}, sort_keys=True)

    def metatrained_settings(self, weights: str | None) -> dict:
        """The architecture settings of the meta-training job whose ``best.npy`` is ``weights``
        ({} for any other file)."""
        job = _metatrain_job_of(weights)
        return json.loads(self.metatrain_jobs[job]["opt_config"]) if job in self.metatrain_jobs else {}

    def envs_of_family(self, family: str) -> list[str]:
        from rlopt.envs.registry import ENVIRONMENTS

        return [env for env in self.envs if ENVIRONMENTS[env].ppo_family == family]

    @property
    def baseline_labels(self) -> list[str]:
        return list(self.optimizers)

    @property
    def es_labels(self) -> list[str]:
        return self.metatrain_labels("es")

    @property
    def metagrad_labels(self) -> list[str]:
        return self.metatrain_labels("metagrad")

    @property
    def minatar_envs(self) -> list[str]:
        return self.envs_of_family("minatar")

    @property
    def es_single_task_minatar_labels(self) -> list[str]:
        """ES-trained optimizers meta-trained on one MinAtar game: the learned baselines of the
        OPEN paper's single-task comparison (its Fig. 2), shown beside the authors' files."""
        trained_on = {label: self.metatrain[label]["envs"] for label in self.es_labels}
        return [label for label, envs in trained_on.items() if len(envs) == 1 and envs[0] in self.minatar_envs]

    @property
    def es_multitask_minatar_labels(self) -> list[str]:
        """ES-trained optimizers meta-trained on several MinAtar games and evaluated on all of
        them: the learned baselines of the multi-task comparison (the OPEN paper's Fig. 3)."""
        minatar = set(self.minatar_envs)
        return [
            label
            for label in self.es_labels
            if len(self.metatrain[label]["envs"]) > 1
            and set(self.metatrain[label]["envs"]) <= minatar
            and minatar <= set(self.learned_labels[label])
        ]

    @property
    def multitask_compared(self) -> list[str]:
        """The labels of the multi-task MinAtar statistics: the tuned baselines, the authors'
        multi-task file and the multi-task optimizers meta-trained here."""
        return self.baseline_labels + ["open_multi"] + self.es_multitask_minatar_labels

    def _pretrained_on(self, label: str, envs: list[str]) -> bool:
        return bool(envs) and all(env in self.pretrained_labels.get(label, {}) for env in envs)

    @property
    def open_pretrained_on_minatar(self) -> bool:
        """The OPEN authors' single-task optimizers run on every MinAtar game (OPEN's Fig. 2)."""
        return self._pretrained_on("open", self.minatar_envs)

    @property
    def open_multitask_on_minatar(self) -> bool:
        """Their multi-task optimizer runs on every MinAtar game (OPEN's Fig. 3)."""
        return self._pretrained_on("open_multi", self.minatar_envs)

    @property
    def open_multitask_on_ant(self) -> bool:
        """Their multi-task optimizer runs zero-shot on Ant (the slides' transfer result)."""
        return self._pretrained_on("open_multi", ["ant"])

    @property
    def report_figures(self) -> list[Figure]:
        """Every figure the report includes for this preset (rlopt.report.contents)."""
        return [figure for figure in FIGURES if all(getattr(self, name) for name in figure.requires)]

    @property
    def report_tables(self) -> list[Table]:
        """Every table the report includes for this preset (rlopt.report.contents)."""
        return [table for table in TABLES if all(getattr(self, name) for name in table.requires)]

    @property
    def report_values(self) -> dict[str, str]:
        """The values of this preset that figure options name (``{name}``), as command-line text."""
        baselines = self.baseline_labels
        metagrad = self.metagrad_labels
        zeroshot = [label for label in ("open", "open_multi") if "ant" in self.pretrained_labels.get(label, {})]
        compared = baselines + ["open"] * bool(self.pretrained_labels.get("open")) + metagrad
        return {
            "reference": self.config["reference_optimizer"],
            "minatar": " ".join(self.minatar_envs),
            "open_compared": " ".join(baselines + ["open"] + self.es_single_task_minatar_labels),
            "zeroshot_compared": " ".join(baselines + zeroshot),
            "metagrad_compared": " ".join(compared),
            "metagrad_envs": " ".join(sorted({env for label in metagrad for env in self.learned_labels[label]})),
            "deepsea_train_sizes": " ".join(map(str, self.deepsea.get("train_sizes", []))),
        }

    def report_tables_options(self) -> str:
        """``rlopt report tables`` options naming the input tables of this preset's report tables
        (the benchmark files of ``--benchmarks`` aside)."""
        return " ".join(f"--{table.option} {' '.join(table.inputs)}" for table in self.report_tables if table.inputs)

    def figure_options(self, stem: str) -> str:
        """``rlopt plot`` options of figure ``stem`` besides its table and --out, for this preset."""
        return FIGURES_BY_STEM[stem].options.format(**self.report_values)

    @property
    def history_groups(self) -> dict[str, list[str]]:
        """Each group of meta-training jobs whose histories a figure plots (the table
        rlopt.report.contents.HISTORIES) -> its jobs' history files."""
        groups = {
            "es": [f"metatrain/{label}" for label in self.es_labels],
            "metagrad": [f"metatrain/{label}" for label in self.metagrad_labels],
            "deepsea": [f"deepsea/metatrain/{variant}" for variant in self.deepsea_variants],
        }
        return {group: [f"results/{job}/history.parquet" for job in jobs] for group, jobs in groups.items() if jobs}

    def report_meta_json(self) -> str:
        """What the report's first page states about this preset."""
        c = self.config
        meta = {
            "preset": c["preset"],
            "description": c["description"],
            "scale": c["scale"],
            "total_steps": self.total_steps,
            "num_seeds": c["evaluation"]["seeds"]["count"],
            "bootstrap_reps": c["stats"]["bootstrap_reps"],
        }
        return json.dumps(meta, sort_keys=True)

    def hparams_json(self, optimizer: str, env: str, point: str) -> str:
        return json.dumps(self.grids[(optimizer, env)][point], sort_keys=True)


def _has_noise(optimizer: str, opt_config: dict) -> bool:
    from rlopt.optimizers import learned_optimizer, validate_hparams

    learned = learned_optimizer(optimizer)
    return learned.has_noise(learned.config(validate_hparams(optimizer, opt_config)))


def _ablation_settings(optimizer: str, variant: str) -> dict:
    from rlopt.optimizers import learned_optimizer

    return learned_optimizer(optimizer).ablations[variant]


def _seed_set(seeds: dict) -> set[int]:
    return set(range(seeds["start"], seeds["start"] + seeds["count"]))


def _check_semantics(config: dict) -> None:
    from rlopt.envs.registry import env_names

    for index, env in enumerate(config["envs"]):
        if env not in env_names():
            raise ConfigError(
                f"config key 'envs[{index}]': unknown environment '{env}'; valid environments are {env_names()}"
            )
    if config["reference_optimizer"] not in config["optimizers"]:
        raise ConfigError(
            f"config key 'reference_optimizer': '{config['reference_optimizer']}' must be one of "
            f"the evaluated optimizers {config['optimizers']}"
        )
    overlap = _seed_set(config["tuning"]["seeds"]) & _seed_set(config["evaluation"]["seeds"])
    if overlap:
        raise ConfigError(
            f"config key 'evaluation.seeds': evaluation seeds must differ from tuning seeds; "
            f"both contain {sorted(overlap)[:5]}"
        )
    for env in config["env_options"]:
        if env not in config["envs"]:
            raise ConfigError(f"config key 'env_options.{env}': '{env}' is not in envs {config['envs']}")
    for label, runs in config.get("open_pretrained", {}).get("labels", {}).items():
        for env in runs:
            if env not in config["envs"]:
                raise ConfigError(
                    f"config key 'open_pretrained.labels.{label}.{env}': '{env}' is not in envs {config['envs']}"
                )
    taus = config["stats"]["taus"]
    if taus["stop"] <= taus["start"]:
        raise ConfigError("config key 'stats.taus': stop must be greater than start")


def _agent_config(agent: str, env: str, overrides: dict):
    """The agent's settings for ``env`` with ``overrides``, or the agent's error."""
    from rlopt.agents.settings import A2CConfigError, PPOConfigError, agent_config_for

    try:
        return agent_config_for(agent, env, overrides)
    except (PPOConfigError, A2CConfigError, TypeError) as err:
        raise ValueError(str(err)) from err


def _resolve_ppo(config: dict, root: Path) -> dict:
    overrides = _load_yaml(config["ppo_settings"], "ppo_settings", root)
    unknown = sorted(set(overrides) - set(config["envs"]))
    if unknown:
        raise ConfigError(
            f"config key 'ppo_settings': {config['ppo_settings']} sets envs {unknown} "
            f"that are not in envs {config['envs']}"
        )
    resolved = {}
    for env in config["envs"]:
        env_overrides = overrides.get(env) or {}
        agent = config["agents"].get(env, "ppo")
        try:
            ppo = _agent_config(agent, env, env_overrides)
        except ValueError as err:
            raise ConfigError(
                f"config key 'ppo_settings' ({config['ppo_settings']}, env '{env}', agent {agent}): {err}"
            )
        resolved[env] = (env_overrides, ppo.num_updates * ppo.batch_size)
    return resolved


def _resolve_grids(config: dict, root: Path) -> dict:
    from rlopt.envs.registry import ENVIRONMENTS
    from rlopt.optimizers import OptimizerConfigError, validate_hparams

    path = config["tuning"]["search_space"]
    space = _load_yaml(path, "tuning.search_space", root)
    grids = {}
    for optimizer in config["optimizers"]:
        if optimizer not in space:
            raise ConfigError(f"config key 'tuning.search_space': {path} has no grid for optimizer '{optimizer}'")
        for env in config["envs"]:
            family = ENVIRONMENTS[env].ppo_family
            grid = space[optimizer].get(env, space[optimizer].get(family))
            where = f"config key 'tuning.search_space' ({path}, {optimizer}.{family})"
            if not isinstance(grid, dict) or not grid:
                raise ConfigError(f"{where}: no grid for env '{env}' (give '{env}' or '{family}')")
            for name, values in grid.items():
                if not isinstance(values, list) or not values:
                    raise ConfigError(f"{where}: '{name}' must be a non-empty list of values")
            points = {}
            for hparams in expand_grid(grid):
                try:
                    validate_hparams(optimizer, hparams)
                except OptimizerConfigError as err:
                    raise ConfigError(f"{where}: {err}")
                points[point_id(hparams)] = hparams
            grids[(optimizer, env)] = points
    return grids


def _checked_es(settings: dict, key: str):
    from rlopt.meta.settings import ESConfig, ESConfigError

    try:
        return ESConfig.from_dict(settings)
    except (ESConfigError, TypeError) as err:
        raise ConfigError(f"config key '{key}': {err}")


def _check_ppo_overrides(env: str, ppo: dict, overrides: dict, key: str, agent: str = "ppo") -> None:
    """``overrides`` on top of the preset's settings for ``env`` must make valid settings of ``agent``."""
    try:
        _agent_config(agent, env, {**ppo[env][0], **overrides})
    except ValueError as err:
        raise ConfigError(f"config key '{key}': {err}")


def _check_learned_settings(optimizer: str, opt_config: dict, key: str) -> None:
    """``optimizer`` is a learned optimizer and ``opt_config`` valid architecture settings of it."""
    from rlopt.optimizers import OptimizerConfigError, learned_optimizer, validate_hparams

    try:
        learned = learned_optimizer(optimizer)
    except OptimizerConfigError as err:
        raise ConfigError(f"config key '{key}.optimizer': {err}")
    if "weights" in opt_config:
        raise ConfigError(f"config key '{key}': 'weights' is what meta-training produces, not a setting")
    try:
        learned.config(validate_hparams(optimizer, opt_config))
    except (OptimizerConfigError, TypeError) as err:
        raise ConfigError(f"config key '{key}': {err}")


def _check_metatrain(config: dict, ppo: dict) -> None:
    for label, spec in config.get("metatrain", {}).items():
        key = f"metatrain.{label}"
        for env_list in ("envs", "evaluation_envs"):
            for env in spec.get(env_list, []):
                if env not in config["envs"]:
                    raise ConfigError(f"config key '{key}.{env_list}': '{env}' is not in envs {config['envs']}")
        if label in config.get("open_pretrained", {}).get("labels", {}):
            raise ConfigError(f"config key '{key}': label '{label}' is also a pretrained label")
        if label in config["optimizers"]:
            raise ConfigError(f"config key '{key}': label '{label}' is also a tuned optimizer")
        _check_method(spec, key, config["agents"], ppo)
        _check_learned_settings(spec["optimizer"], spec["opt_config"], f"{key}.opt_config")
        for env, overrides in spec.get("ppo", {}).items():
            if env not in spec["envs"]:
                raise ConfigError(f"config key '{key}.ppo.{env}': '{env}' is not one of its envs")
            _check_ppo_overrides(env, ppo, overrides, f"{key}.ppo.{env}", config["agents"].get(env, "ppo"))


def _check_method(spec: dict, key: str, agents: dict, ppo: dict) -> None:
    """ES runs PPO lifetimes and needs ``es`` settings; meta-gradients run the envs' agent (A2C or
    PPO, one for all the block's envs) and need ``metagrad``'s, which must fit each env's agent
    settings (the preset's with the block's overrides)."""
    unused = "metagrad" if spec["method"] == "es" else "es"
    if unused in spec:
        raise ConfigError(f"config key '{key}.{unused}': settings of the other method (method is {spec['method']})")
    if spec["method"] == "es":
        if "es" not in spec:
            raise ConfigError(f"config key '{key}': method es needs its 'es' settings")
        _checked_es(spec["es"], f"{key}.es")
        return
    from rlopt.meta.settings import MetaGradConfig, MetaGradConfigError

    used = {env: agents.get(env, "ppo") for env in spec["envs"]}
    if len(set(used.values())) > 1:
        raise ConfigError(
            f"config key '{key}.envs': meta-gradient training runs one agent for all its envs; "
            f"the agents map gives {used}"
        )
    if "agent" in spec.get("metagrad", {}):
        raise ConfigError(f"config key '{key}.metagrad.agent': the agent comes from the preset's agents map")
    agent = next(iter(used.values()))
    try:
        settings = MetaGradConfig.from_dict({**spec.get("metagrad", {}), "agent": agent})
        settings.check_tasks(spec["envs"])
        for env in spec["envs"]:
            settings.check_task(env, _agent_config(agent, env, {**ppo[env][0], **spec.get("ppo", {}).get(env, {})}))
    except (MetaGradConfigError, TypeError) as err:
        raise ConfigError(f"config key '{key}.metagrad': {err}")


def _check_ablations(config: dict, ppo: dict) -> None:
    spec = config.get("ablations")
    if not spec:
        return
    env = spec["env"]
    if env not in config["envs"]:
        raise ConfigError(f"config key 'ablations.env': '{env}' is not in envs {config['envs']}")
    _check_learned_settings(spec["optimizer"], {}, "ablations")
    from rlopt.optimizers import learned_optimizer

    known = learned_optimizer(spec["optimizer"]).ablations
    for index, variant in enumerate(spec["variants"]):
        if variant not in known:
            raise ConfigError(
                f"config key 'ablations.variants[{index}]': '{variant}' is not an ablation of "
                f"'{spec['optimizer']}'; its ablations are {sorted(known)}"
            )
    es = _checked_es(spec["es"], "ablations.es")
    _check_ppo_overrides(env, ppo, spec.get("ppo", {}), "ablations.ppo")
    overlap = _seed_set(spec["evaluation_seeds"]) & set(es.validation_seeds)
    if overlap:
        raise ConfigError(
            f"config key 'ablations.evaluation_seeds': must differ from the ES validation seeds; "
            f"both contain {sorted(overlap)[:5]}"
        )


def _check_deepsea(config: dict) -> None:
    from rlopt.agents.settings import PPOConfig, PPOConfigError
    from rlopt.envs.registry import default_ppo_settings

    spec = config.get("deepsea")
    if not spec:
        return
    for variant, opt_config in spec["variants"].items():
        _check_learned_settings(spec["optimizer"], opt_config, f"deepsea.variants.{variant}")
    low, high = spec["train_sizes"]
    if low > high:
        raise ConfigError(f"config key 'deepsea.train_sizes': needs low <= high, got {[low, high]}")
    es = _checked_es(spec["es"], "deepsea.es")
    try:
        PPOConfig.from_dict({**default_ppo_settings("deepsea"), **spec.get("ppo", {})})
    except (PPOConfigError, TypeError) as err:
        raise ConfigError(f"config key 'deepsea.ppo': {err}")
    overlap = _seed_set(spec["evaluation_seeds"]) & set(es.validation_seeds)
    if overlap:
        raise ConfigError(
            f"config key 'deepsea.evaluation_seeds': must differ from the ES validation seeds; "
            f"both contain {sorted(overlap)[:5]}"
        )
    for name, design in spec.get("designs", {}).items():
        key = f"deepsea.designs.{name}"
        if name in spec["variants"]:
            raise ConfigError(f"config key '{key}': the name is a variant's; give the design its own")
        if design["variant"] not in spec["variants"]:
            raise ConfigError(
                f"config key '{key}.variant': '{design['variant']}' is not a variant ({sorted(spec['variants'])})"
            )
        if all(design.get(choice, spec[choice]) == spec[choice] for choice in DEEPSEA_DESIGN_CHOICES):
            raise ConfigError(
                f"config key '{key}': changes neither {' nor '.join(DEEPSEA_DESIGN_CHOICES)} of the block"
            )


def _check_schedule_env(kind: str, env: str, key: str) -> None:
    """The physical kinds change Brax Ant's or Humanoid's System; action_permutation needs discrete actions."""
    from rlopt.envs.registry import ENVIRONMENTS
    from rlopt.envs.schedules import PHYSICAL_KINDS

    family = ENVIRONMENTS[env].ppo_family
    if kind in PHYSICAL_KINDS and env not in ("ant", "humanoid"):
        raise ConfigError(f"config key '{key}': schedule kind '{kind}' changes Brax ant or humanoid, not '{env}'")
    if kind not in PHYSICAL_KINDS and family == "brax":
        raise ConfigError(f"config key '{key}': schedule kind '{kind}' needs discrete actions; '{env}' has none")
    for legged, leg_kind in (("ant", "leg_wear"), ("humanoid", "leg_fatigue")):
        if kind == leg_kind and env != legged:
            raise ConfigError(f"config key '{key}': schedule kind '{kind}' is defined for {legged}, not '{env}'")


def _resets_of(schedule: dict) -> dict:
    """Handcrafted optimizers' hyperparameters resetting their state at each change of ``schedule``."""
    return {"reset_every": schedule["segment_updates"], "reset_segments": schedule["num_segments"]}


def _metatrain_job_of(weights: str | None) -> str | None:
    """``JOB`` for a weights path ``results/JOB/best.npy`` (a meta-training job's output), else None."""
    if weights and weights.startswith("results/") and weights.endswith("/best.npy"):
        return weights[len("results/") : -len("/best.npy")]
    return None


def _check_study_arm(config: dict, envs: list[str], metatrain_jobs: dict, entry: dict, key: str) -> None:
    """An arm's optimizer and settings, where its weights come from, and whether it can be tuned."""
    from rlopt.optimizers import OptimizerConfigError, validate_hparams

    hparams = entry.get("hparams", {})
    weights = entry.get("weights")
    if weights and weights.startswith("results/"):
        job = _metatrain_job_of(weights)
        if job not in metatrain_jobs:
            raise ConfigError(
                f"config key '{key}.weights': {weights} is no meta-training output of this preset; "
                f"those are {sorted(f'results/{j}/best.npy' for j in metatrain_jobs)}"
            )
        trained = metatrain_jobs[job]
        if trained["optimizer"] != entry["optimizer"]:
            raise ConfigError(
                f"config key '{key}.optimizer': {weights} holds a '{trained['optimizer']}' "
                f"optimizer, not '{entry['optimizer']}'"
            )
        hparams = {**json.loads(trained["opt_config"]), **hparams}
    if entry.get("reset_at_changes"):
        if not key.startswith("studies.nonstationary."):
            raise ConfigError(f"config key '{key}.reset_at_changes': only the non-stationary study has changes")
        if entry.get("tuned") or weights or "reset_every" in hparams or "reset_segments" in hparams:
            raise ConfigError(
                f"config key '{key}.reset_at_changes': needs a handcrafted optimizer with fixed "
                f"hparams and no reset_every / reset_segments of its own"
            )
        hparams = {**hparams, **_resets_of({"segment_updates": 1, "num_segments": 1})}
    untuned = [env for env in envs if not (env in config["envs"] and entry["optimizer"] in config["optimizers"])]
    if entry.get("tuned"):
        if weights:
            raise ConfigError(f"config key '{key}.tuned': a learned optimizer's weights are not tuned")
        if entry["optimizer"] not in config["optimizers"]:
            raise ConfigError(
                f"config key '{key}.tuned': the preset does not tune '{entry['optimizer']}'; "
                f"it tunes {config['optimizers']}"
            )
        if not untuned:
            return
        if "hparams" not in entry:
            raise ConfigError(
                f"config key '{key}.hparams': needed on {untuned}, where the preset does not tune "
                f"'{entry['optimizer']}'"
            )
    try:  # the weights file may not exist yet (a rule makes it): checked when the run starts
        validate_hparams(entry["optimizer"], hparams)
    except (OptimizerConfigError, TypeError) as err:
        raise ConfigError(f"config key '{key}': {err}")


def _check_study_env(config: dict, ppo: dict, env: str, overrides: dict, key: str) -> None:
    """``env`` is registered and ``overrides`` valid agent settings for it (over the preset's own
    when the preset evaluates it, else over the registry's defaults)."""
    from rlopt.envs.registry import env_names

    if env not in env_names():
        raise ConfigError(f"config key '{key}': unknown environment '{env}'; valid environments are {env_names()}")
    agent = config["agents"].get(env, "ppo")
    if env in ppo:
        _check_ppo_overrides(env, ppo, overrides, f"{key}.ppo", agent)
        return
    try:
        _agent_config(agent, env, overrides)
    except ValueError as err:
        raise ConfigError(f"config key '{key}.ppo': {err}")


def _check_studies(config: dict, ppo: dict, metatrain_jobs: dict) -> None:
    """``metatrain_jobs``: the preset's meta-training jobs (folder under results/ -> arguments)."""
    from rlopt.envs.schedules import Schedule, ScheduleError

    studies = config.get("studies", {})
    for study in ("collapse", "nonstationary", "transfer"):
        spec = studies.get(study)
        if not spec:
            continue
        key = f"studies.{study}"
        if "envs" in spec:
            envs = list(spec["envs"])
            for env, site in spec["envs"].items():
                _check_study_env(config, ppo, env, site.get("ppo", {}), f"{key}.envs.{env}")
        else:
            envs = [spec["env"]]
            if spec["env"] not in config["envs"]:
                raise ConfigError(f"config key '{key}.env': '{spec['env']}' is not in envs {config['envs']}")
            _check_ppo_overrides(spec["env"], ppo, spec.get("ppo", {}), f"{key}.ppo")
        for arm, entry in spec["arms"].items():
            _check_study_arm(config, envs, metatrain_jobs, entry, f"{key}.arms.{arm}")
        for env, site in spec.get("envs", {}).items():
            for name, schedule in site.get("schedules", {}).items():
                try:
                    kind = Schedule.from_dict(schedule).kind
                except (ScheduleError, TypeError) as err:
                    raise ConfigError(f"config key '{key}.envs.{env}.schedules.{name}': {err}")
                _check_schedule_env(kind, env, f"{key}.envs.{env}")
    for study in ("collapse", "transfer"):
        spec = studies.get(study)
        if spec and spec["reference"] not in spec["arms"]:
            raise ConfigError(
                f"config key 'studies.{study}.reference': '{spec['reference']}' is not one of its "
                f"arms {list(spec['arms'])}"
            )


def _check_metatuning(config: dict, ppo: dict, plan: Plan) -> None:
    """The base is a single-env metagrad block; every cell's meta-gradient settings are valid
    for it; the seed sets are disjoint; the baseline is a handcrafted optimizer's valid grid."""
    from rlopt.optimizers import OptimizerConfigError, learned_optimizer_names, optimizer_names, validate_hparams

    spec = plan.metatuning
    if not spec:
        return
    key = "studies.metatuning"
    base = config.get("metatrain", {}).get(spec["base"])
    if base is None or base["method"] != "metagrad" or len(base["envs"]) != 1:
        raise ConfigError(
            f"config key '{key}.base': '{spec['base']}' is not a single-env metagrad block of metatrain; "
            f"the metagrad blocks are {plan.metagrad_labels}"
        )
    for cell in plan.metatuning_cells:
        if cell.job and cell.meta_seed == 0:
            where = f"{key} (variant {cell.variant}, {json.dumps(cell.settings)})"
            cell_spec = {**base, "metagrad": json.loads(plan.metatrain_jobs[cell.job]["metagrad"])}
            cell_spec["metagrad"].pop("agent", None)
            _check_method(cell_spec, where, config["agents"], ppo)
    roles = {role: _seed_set(spec[f"{role}_seeds"]) for role in ("selection", "report")}
    roles["validation"] = set(json.loads(plan.metatrain_args(spec["base"])["metagrad"]).get("validation_seeds", []))
    for (first, a), (second, b) in itertools.combinations(roles.items(), 2):
        if a & b:
            raise ConfigError(
                f"config key '{key}.{first}_seeds': {first} and {second} seeds must differ; "
                f"both hold {sorted(a & b)[:5]}"
            )
    optimizer = spec["baseline"]["optimizer"]
    handcrafted = sorted(set(optimizer_names()) - set(learned_optimizer_names()))
    if optimizer not in handcrafted:
        raise ConfigError(f"config key '{key}.baseline.optimizer': '{optimizer}' is not one of {handcrafted}")
    for hparams in expand_grid(spec["baseline"]["grid"]):
        try:
            validate_hparams(optimizer, hparams)
        except (OptimizerConfigError, TypeError) as err:
            raise ConfigError(f"config key '{key}.baseline.grid': {err}")


def _eval_blocks(config: dict) -> list[str]:
    seeds = config["evaluation"]["seeds"]
    size = config["evaluation"]["block_size"]
    stop = seeds["start"] + seeds["count"]
    return [f"{s}-{min(s + size, stop)}" for s in range(seeds["start"], stop, size)]


def load_plan(config: dict, root: Path | str = ".") -> Plan:
    """Validates ``config`` (a loaded preset) and resolves it; raises ConfigError."""
    root = Path(root)
    check_schema(config)
    config = _fill_defaults(config)
    _check_semantics(config)
    ppo = _resolve_ppo(config, root)
    _check_metatrain(config, ppo)
    _check_ablations(config, ppo)
    _check_deepsea(config)
    plan = Plan(
        config=config,
        ppo={env: overrides for env, (overrides, _) in ppo.items()},
        total_steps={env: steps for env, (_, steps) in ppo.items()},
        env_options=config["env_options"],
        grids=_resolve_grids(config, root),
        eval_blocks=_eval_blocks(config),
    )
    _check_metatuning(config, ppo, plan)
    _check_studies(config, ppo, plan.metatrain_jobs)
    return plan
