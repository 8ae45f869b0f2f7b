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
from pathlib import Path

import yaml

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


def _fill_defaults(config: dict) -> dict:
    config = json.loads(json.dumps(config))  # a deep copy that is plain JSON
    config.setdefault("env_options", {})
    config["stats"].setdefault("taus", {"start": 0.0, "stop": 2.0, "num": 41})
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
        labels.update({label: list(spec["envs"]) for label, spec in self.metatrain.items()})
        return labels

    @property
    def learned_noise_labels(self) -> list[str]:
        """Evaluated learned optimizers with learned noise (they log OPEN's randomness)."""
        from rlopt.optimizers.open import validate_hparams

        noisy = [label for label, spec in self.metatrain.items()
                 if validate_hparams(spec.get("opt_config", {}))["noise"]]
        return list(self.pretrained_labels) + noisy  # the authors' files all have learned noise

    @property
    def eval_runs(self) -> list[tuple[str, str]]:
        """(env, label) of every evaluated configuration: tuned baselines, then learned ones."""
        runs = [(env, optimizer) for env in self.envs for optimizer in self.optimizers]
        return runs + [(env, label) for label, envs in self.learned_labels.items() for env in envs]

    def metatrain_args(self, label: str) -> dict:
        """JSON-ready arguments of ``rlopt metatrain`` for ``label``."""
        spec = self.metatrain[label]
        ppo = {env: {**self.ppo[env], **spec.get("ppo", {}).get(env, {})} for env in spec["envs"]}
        return self._metatrain_args(spec["envs"], spec.get("opt_config", {}), spec["es"], ppo, spec.get("seed", 0))

    def _metatrain_args(self, envs: list[str], opt_config: dict, es: dict, ppo: dict, seed: int,
                        env_options: dict | None = None) -> dict:
        """``ppo``: env -> PPO overrides; ``env_options``: env -> options (default: the preset's)."""
        env_options = env_options or {env: self.env_options.get(env, {}) for env in envs}
        return {
            "envs": " ".join(envs),
            "opt_config": json.dumps(opt_config, sort_keys=True),
            "es": json.dumps(es, sort_keys=True),
            "ppo": json.dumps(ppo, sort_keys=True),
            "env_options": json.dumps(env_options, sort_keys=True),
            "seed": seed,
        }

    def checkpoint_tag(self, label: str) -> str:
        """Checkpoints live under a hash of the settings: a changed run never resumes an old one."""
        return point_id(self.metatrain_args(label))

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
        from rlopt.optimizers.open import ABLATIONS

        spec = self.ablations
        env = spec["env"]
        ppo = {env: {**self.ppo[env], **spec.get("ppo", {})}}
        return self._metatrain_args([env], ABLATIONS[variant], spec["es"], ppo, spec.get("seed", 0) + int(index))

    def ablation_checkpoint_tag(self, variant: str, index: int) -> str:
        return point_id(self.ablation_metatrain_args(variant, index))

    def ablation_eval_args(self, variant: str) -> dict:
        """``rlopt train`` arguments (besides the weights) evaluating a trained ``variant``."""
        from rlopt.optimizers.open import ABLATIONS

        spec = self.ablations
        seeds = spec["evaluation_seeds"]
        return {
            "env": spec["env"],
            "opt_config": ABLATIONS[variant],
            "ppo": json.dumps({**self.ppo[spec["env"]], **spec.get("ppo", {})}, sort_keys=True),
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
    def deepsea_evaluations(self) -> list[tuple[str, int]]:
        """(variant, size) of every DeepSea evaluation job."""
        return [(variant, size) for variant in self.deepsea_variants for size in self.deepsea["evaluation_sizes"]]

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
        return any(filled["noise"] for filled in self._deepsea_filled_variants())

    def _deepsea_filled_variants(self) -> list[dict]:
        from rlopt.optimizers.open import validate_hparams

        return [validate_hparams(opt_config) for opt_config in self.deepsea.get("variants", {}).values()]

    def _deepsea_env_options(self, size: int | None = None) -> dict:
        """Every size runs on one padded board, so one network shape serves all of them."""
        spec = self.deepsea
        low, high = spec["train_sizes"]
        options = {"train_sizes": [low, high], "max_size": max(high, *spec["evaluation_sizes"])}
        return options if size is None else {**options, "size": int(size)}

    def deepsea_metatrain_args(self, variant: str) -> dict:
        """``rlopt metatrain`` arguments of one DeepSea variant; the variants share ES seeds."""
        spec = self.deepsea
        return self._metatrain_args(["deepsea"], spec["variants"][variant], spec["es"],
                                    {"deepsea": spec.get("ppo", {})}, spec.get("seed", 0),
                                    {"deepsea": self._deepsea_env_options()})

    def deepsea_checkpoint_tag(self, variant: str) -> str:
        return point_id(self.deepsea_metatrain_args(variant))

    def deepsea_eval_args(self, variant: str, size: int) -> dict:
        """``rlopt train`` arguments (besides the weights) evaluating ``variant`` at ``size``."""
        spec = self.deepsea
        seeds = spec["evaluation_seeds"]
        return {
            "opt_config": spec["variants"][variant],
            "ppo": json.dumps(spec.get("ppo", {}), sort_keys=True),
            "env_options": json.dumps(self._deepsea_env_options(size), sort_keys=True),
            "seeds": f"{seeds['start']}:{seeds['start'] + seeds['count']}",
        }

    def envs_of_family(self, family: str) -> list[str]:
        from rlopt.envs.registry import ENVIRONMENTS

        return [env for env in self.envs if ENVIRONMENTS[env].ppo_family == family]

    @property
    def baseline_labels(self) -> list[str]:
        return list(self.optimizers)

    def report_meta_json(self) -> str:
        """What the report's first page states about this preset."""
        c = self.config
        meta = {"preset": c["preset"], "description": c["description"], "scale": c["scale"],
                "total_steps": self.total_steps, "num_seeds": c["evaluation"]["seeds"]["count"],
                "bootstrap_reps": c["stats"]["bootstrap_reps"]}
        return json.dumps(meta, sort_keys=True)

    def hparams_json(self, optimizer: str, env: str, point: str) -> str:
        return json.dumps(self.grids[(optimizer, env)][point], sort_keys=True)


def _seed_set(seeds: dict) -> set[int]:
    return set(range(seeds["start"], seeds["start"] + seeds["count"]))


def _check_semantics(config: dict) -> None:
    if config["reference_optimizer"] not in config["optimizers"]:
        raise ConfigError(f"config key 'reference_optimizer': '{config['reference_optimizer']}' must be one of "
                          f"the evaluated optimizers {config['optimizers']}")
    overlap = _seed_set(config["tuning"]["seeds"]) & _seed_set(config["evaluation"]["seeds"])
    if overlap:
        raise ConfigError(f"config key 'evaluation.seeds': evaluation seeds must differ from tuning seeds; "
                          f"both contain {sorted(overlap)[:5]}")
    for env in config["env_options"]:
        if env not in config["envs"]:
            raise ConfigError(f"config key 'env_options.{env}': '{env}' is not in envs {config['envs']}")
    for label, runs in config.get("open_pretrained", {}).get("labels", {}).items():
        for env in runs:
            if env not in config["envs"]:
                raise ConfigError(f"config key 'open_pretrained.labels.{label}.{env}': '{env}' is not in envs "
                                  f"{config['envs']}")
    taus = config["stats"]["taus"]
    if taus["stop"] <= taus["start"]:
        raise ConfigError("config key 'stats.taus': stop must be greater than start")


def _resolve_ppo(config: dict, root: Path) -> dict:
    from rlopt.agents.ppo import PPOConfig, PPOConfigError
    from rlopt.envs.registry import default_ppo_settings

    overrides = _load_yaml(config["ppo_settings"], "ppo_settings", root)
    unknown = sorted(set(overrides) - set(config["envs"]))
    if unknown:
        raise ConfigError(f"config key 'ppo_settings': {config['ppo_settings']} sets envs {unknown} "
                          f"that are not in envs {config['envs']}")
    resolved = {}
    for env in config["envs"]:
        env_overrides = overrides.get(env) or {}
        try:
            ppo = PPOConfig.from_dict({**default_ppo_settings(env), **env_overrides})
        except (PPOConfigError, TypeError) as err:
            raise ConfigError(f"config key 'ppo_settings' ({config['ppo_settings']}, env '{env}'): {err}")
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
    from rlopt.meta.es import ESConfig, ESConfigError

    try:
        return ESConfig.from_dict(settings)
    except (ESConfigError, TypeError) as err:
        raise ConfigError(f"config key '{key}': {err}")


def _check_ppo_overrides(env: str, ppo: dict, overrides: dict, key: str) -> None:
    """``overrides`` on top of the preset's settings for ``env`` must make a valid PPOConfig."""
    from rlopt.agents.ppo import PPOConfig, PPOConfigError
    from rlopt.envs.registry import default_ppo_settings

    try:
        PPOConfig.from_dict({**default_ppo_settings(env), **ppo[env][0], **overrides})
    except (PPOConfigError, TypeError) as err:
        raise ConfigError(f"config key '{key}': {err}")


def _check_metatrain(config: dict, ppo: dict) -> None:
    from rlopt.optimizers import OptimizerConfigError
    from rlopt.optimizers.open import OpenConfig

    for label, spec in config.get("metatrain", {}).items():
        key = f"metatrain.{label}"
        for env in spec["envs"]:
            if env not in config["envs"]:
                raise ConfigError(f"config key '{key}.envs': '{env}' is not in envs {config['envs']}")
        if label in config.get("open_pretrained", {}).get("labels", {}):
            raise ConfigError(f"config key '{key}': label '{label}' is also a pretrained label")
        _checked_es(spec["es"], f"{key}.es")
        try:
            OpenConfig(**spec.get("opt_config", {}))
        except (OptimizerConfigError, TypeError) as err:
            raise ConfigError(f"config key '{key}.opt_config': {err}")
        for env, overrides in spec.get("ppo", {}).items():
            if env not in spec["envs"]:
                raise ConfigError(f"config key '{key}.ppo.{env}': '{env}' is not one of its envs")
            _check_ppo_overrides(env, ppo, overrides, f"{key}.ppo.{env}")


def _check_ablations(config: dict, ppo: dict) -> None:
    spec = config.get("ablations")
    if not spec:
        return
    env = spec["env"]
    if env not in config["envs"]:
        raise ConfigError(f"config key 'ablations.env': '{env}' is not in envs {config['envs']}")
    es = _checked_es(spec["es"], "ablations.es")
    _check_ppo_overrides(env, ppo, spec.get("ppo", {}), "ablations.ppo")
    overlap = _seed_set(spec["evaluation_seeds"]) & set(es.validation_seeds)
    if overlap:
        raise ConfigError(f"config key 'ablations.evaluation_seeds': must differ from the ES validation seeds; "
                          f"both contain {sorted(overlap)[:5]}")


def _check_deepsea(config: dict) -> None:
    from rlopt.agents.ppo import PPOConfig, PPOConfigError
    from rlopt.envs.registry import default_ppo_settings
    from rlopt.optimizers import OptimizerConfigError
    from rlopt.optimizers.open import validate_hparams

    spec = config.get("deepsea")
    if not spec:
        return
    for variant, opt_config in spec["variants"].items():
        if "weights" in opt_config:
            raise ConfigError(f"config key 'deepsea.variants.{variant}': 'weights' is what meta-training "
                              "produces, not a setting")
        try:
            validate_hparams(opt_config)
        except (OptimizerConfigError, TypeError) as err:
            raise ConfigError(f"config key 'deepsea.variants.{variant}': {err}")
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
        raise ConfigError(f"config key 'deepsea.evaluation_seeds': must differ from the ES validation seeds; "
                          f"both contain {sorted(overlap)[:5]}")


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
    return Plan(
        config=config,
        ppo={env: overrides for env, (overrides, _) in ppo.items()},
        total_steps={env: steps for env, (_, steps) in ppo.items()},
        env_options=config["env_options"],
        grids=_resolve_grids(config, root),
        eval_blocks=_eval_blocks(config),
    )
