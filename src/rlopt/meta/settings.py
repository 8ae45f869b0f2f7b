"""The meta-training methods' settings: OpenAI-ES's (rlopt.meta.es) and meta-gradient
training's (rlopt.meta.metagrad).

Kept apart from the methods so that what validates a preset (rlopt.workflow_config, run by
Snakemake while it parses the workflow) imports neither JAX nor evosax.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rlopt.agents.settings import FINAL_RETURN_ESTIMATORS
from rlopt.settings_checks import (
    SettingsError,
    check_choice,
    check_positive_ints,
    check_seeds,
    fail,
    from_mapping,
    is_positive_int,
    is_real,
)


class ESConfigError(SettingsError):
    kind = "ES"


@dataclass(frozen=True)
class ESConfig:
    """OpenAI-ES settings; defaults are the OPEN paper's MinAtar column of Table 7."""

    population_size: int = 64
    generations: int = 512
    sigma_init: float = 0.03
    sigma_decay: float = 0.999
    lr: float = 0.03
    lr_decay: float = 0.999
    # Floors of the decaying schedules (None: none); the OPEN authors' evosax 0.1 had 0.01 and 0.001.
    sigma_min: float | None = None
    lr_min: float | None = None
    rollouts: int = 1  # training seeds per member and task
    eval_every: int = 24
    # Held-out seeds for choosing the generation used at test time; the workflow's
    # tuning (1000+) and evaluation (0-15) seeds must not be among them.
    validation_seeds: tuple[int, ...] = tuple(range(2000, 2008))
    checkpoint_every: int = 24
    member_block: int | None = None  # members per vmapped block (bounds memory); None = all
    # How a lifetime's final return is scored, for fitness and validation alike
    # (rlopt.agents.settings.FINAL_RETURN_ESTIMATORS; the OPEN authors' is "last_episode").
    return_estimator: str = "window"

    @classmethod
    def from_dict(cls, settings: dict) -> ESConfig:
        return from_mapping(cls, settings, ESConfigError)

    def validate(self) -> None:
        check_positive_ints(
            self, ("population_size", "generations", "rollouts", "eval_every", "checkpoint_every"), ESConfigError
        )
        if self.population_size % 2:
            fail(ESConfigError, "population_size", "even (antithetic pairs)", self.population_size)
        for name in ("sigma_init", "lr"):
            value = getattr(self, name)
            if not is_real(value) or value <= 0:
                fail(ESConfigError, name, "a positive number", value)
        for name in ("sigma_decay", "lr_decay"):
            value = getattr(self, name)
            if not is_real(value) or not 0 < value <= 1:
                fail(ESConfigError, name, "in (0, 1]", value)
        for name, start in (("sigma_min", "sigma_init"), ("lr_min", "lr")):
            value = getattr(self, name)
            if value is not None and (not is_real(value) or not 0 < value <= getattr(self, start)):
                fail(ESConfigError, name, f"a positive number at most {start} = {getattr(self, start)}", value)
        check_choice(self, "return_estimator", FINAL_RETURN_ESTIMATORS, ESConfigError)
        check_seeds(self, "validation_seeds", ESConfigError)
        check_positive_ints(self, ("member_block",), ESConfigError, optional=True)
        if self.member_block is not None and self.population_size % self.member_block:
            raise ESConfigError(
                f"ES setting 'member_block' = {self.member_block} must divide "
                f"population_size = {self.population_size} (one compile per task)"
            )

    @property
    def block_size(self) -> int:
        return self.member_block or self.population_size

    def to_dict(self) -> dict:
        settings = asdict(self)
        settings["validation_seeds"] = list(self.validation_seeds)
        return settings


METAGRAD_AGENTS = ("a2c", "ppo")


class MetaGradConfigError(SettingsError):
    kind = "metagrad"


@dataclass(frozen=True)
class MetaGradConfig:
    """Defaults: the official meta_rl_catch (78 iterations of 4 inner updates, R = 32, Adam
    lr 1e-3 after a global-norm clip of 0.5; 64 units, one per env, from A2C's num_envs)."""

    iterations: int = 78
    # The agent whose updates are unrolled: "a2c" (MetaA2C) or "ppo" (MetaPPO); a preset
    # sets it from its agents map.
    agent: str = "a2c"
    inner_updates: int = 4
    reset_interval: int = 32  # R, in meta-iterations
    pipeline: bool = True
    num_units: int | None = None  # per task; None = one per env (the A2C setting num_envs)
    # Units per vmapped block; the blocks run one after another (lax.map). None = all units in
    # one block (best on a GPU); on a CPU small blocks keep the backward pass in cache.
    unit_block: int | None = None
    lr: float | dict = 1.0  # update multiplier, one for all tasks or {env: lr}
    meta_lr: float = 1e-3
    grad_clip: float | None = None  # elementwise clip of the meta-gradient
    grad_norm: float | None = 0.5  # global-norm clip of the meta-gradient
    max_norm: float | None = None  # each task's meta-gradient rescaled to exactly this norm
    first_order: bool = True
    eval_every: int = 10
    validation_seeds: tuple[int, ...] = tuple(range(2000, 2008))
    validation_steps: int | None = None  # env steps per validation run; None = the task's A2C total_steps
    # How a validation run's final return is scored (rlopt.agents.settings.FINAL_RETURN_ESTIMATORS, as ES)
    return_estimator: str = "window"
    checkpoint_seconds: float = 300.0

    @classmethod
    def from_dict(cls, settings: dict) -> MetaGradConfig:
        return from_mapping(cls, settings, MetaGradConfigError)

    def validate(self) -> None:
        error = MetaGradConfigError
        check_choice(self, "agent", METAGRAD_AGENTS, error)
        check_positive_ints(self, ("iterations", "inner_updates", "eval_every"), error)
        if not is_positive_int(self.reset_interval):
            fail(error, "reset_interval", "an integer >= 1 (meta-iterations)", self.reset_interval)
        check_positive_ints(self, ("num_units", "unit_block", "validation_steps"), error, optional=True)
        for name in ("pipeline", "first_order"):
            if not isinstance(getattr(self, name), bool):
                fail(error, name, "true or false", getattr(self, name))
        lrs = self.lr.values() if isinstance(self.lr, dict) else [self.lr]
        if not all(is_real(v) and v > 0 for v in lrs):
            fail(error, "lr", "a positive number or an object {env: positive number}", self.lr)
        if not (is_real(self.meta_lr) and self.meta_lr > 0):
            fail(error, "meta_lr", "a positive number", self.meta_lr)
        for name in ("grad_clip", "grad_norm", "max_norm"):
            value = getattr(self, name)
            if value is not None and not (is_real(value) and value > 0):
                fail(error, name, "a positive number or null", value)
        if self.grad_clip is not None and self.grad_norm is not None:
            raise error("metagrad settings 'grad_clip' and 'grad_norm' are alternatives; set one of them to null")
        check_choice(self, "return_estimator", FINAL_RETURN_ESTIMATORS, error)
        if not (is_real(self.checkpoint_seconds) and self.checkpoint_seconds >= 0):
            fail(error, "checkpoint_seconds", ">= 0", self.checkpoint_seconds)
        check_seeds(self, "validation_seeds", error)

    def check_tasks(self, envs: list[str]) -> None:
        """The per-task settings name exactly the tasks trained on."""
        if isinstance(self.lr, dict):
            extra, missing = sorted(set(self.lr) - set(envs)), sorted(set(envs) - set(self.lr))
            if extra:
                raise MetaGradConfigError(f"metagrad setting 'lr' names task(s) {extra} that are not trained on {envs}")
            if missing:
                raise MetaGradConfigError(f"metagrad setting 'lr' has no learning rate for task(s) {missing}")

    def task_lr(self, env: str) -> float:
        return float(self.lr[env] if isinstance(self.lr, dict) else self.lr)

    def units_for(self, env: str, num_envs: int) -> int:
        """Units of a task whose agent setting num_envs is the batch they share."""
        units = self.num_units or num_envs
        if num_envs % units:
            raise MetaGradConfigError(
                f"metagrad setting 'num_units' = {units} does not divide task '{env}''s "
                f"batch of num_envs = {num_envs} envs (each unit gets the same number)"
            )
        if self.unit_block is not None and units % self.unit_block:
            raise MetaGradConfigError(
                f"metagrad setting 'unit_block' = {self.unit_block} does not divide task '{env}''s {units} units"
            )
        return units

    def check_task(self, env: str, agent_config) -> None:
        """MetaGradConfigError where task ``env`` with these agent settings cannot be trained:
        its envs do not split into the units, a PPO unit's batch not into its minibatches, or
        the validation runs' settings are invalid. Runs before any compile (the preset check
        and the command)."""
        units = self.units_for(env, agent_config.num_envs)
        if self.agent == "ppo":
            ppo_unit_config(agent_config, units)
        self.validation_config(agent_config)

    def validation_config(self, agent_config):
        """The agent settings (A2C or PPO) of a task's validation runs (``validation_steps`` long)."""
        if self.validation_steps is None:
            return agent_config
        try:
            return type(agent_config).from_dict({**agent_config.to_dict(), "total_steps": self.validation_steps})
        except ValueError as err:  # the agent's config error
            raise MetaGradConfigError(f"metagrad setting 'validation_steps' = {self.validation_steps}: {err}") from None

    def lifetime(self) -> int:
        """Updates in a unit's life: what the optimizer's num_updates says."""
        return self.inner_updates * (self.reset_interval if self.pipeline else self.iterations)

    def to_dict(self) -> dict:
        settings = asdict(self)
        settings["validation_seeds"] = list(self.validation_seeds)
        return settings


def ppo_unit_config(ppo_config, num_units: int):
    """The PPO settings of one unit: its share of the envs, the rest as ``ppo_config``
    (MetaGradConfigError where its batch does not split into the minibatches)."""
    from rlopt.agents.settings import PPOConfig, PPOConfigError

    try:
        return PPOConfig.from_dict(
            {
                **ppo_config.to_dict(),
                "num_envs": ppo_config.num_envs // num_units,
                "total_steps": ppo_config.total_steps,
            }
        )
    except PPOConfigError as err:
        raise MetaGradConfigError(
            f"a unit of {ppo_config.num_envs // num_units} envs ({num_units} units): {err}"
        ) from None
