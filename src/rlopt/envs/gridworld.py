"""One gridworld whose layout, objects, horizon and action set are traced parameters.

Both papers under study train on object-collection gridworlds after Oh et al. (2020,
LPG): Optim4RL (Lan et al.) on six fixed grids (sail-sg/optim4rl ``envs/gridworld.py``),
OPEN (Goldie et al.) on a distribution of random grids and six test grids from Jackson et
al.'s groove library (EmptyJackson/groove ``environments/gridworld``). Here every one of
them is a setting of :class:`GridworldParams` for a single environment, so one compiled PPO
or A2C lifetime serves a whole task distribution (as :mod:`rlopt.envs.deepsea` does for
DeepSea's size) and several tasks can be meta-trained in one program.

Dynamics (the rules of the Optim4RL authors' envs/gridworld.py), per env and step:

1. Move: target = clip(cell + moves[action], board); the agent stays if the target is a
   wall. An action the task does not have (``action_valid`` false, padding) stays put.
2. Objects, rows [reward, terminate_prob, respawn_prob]: object i is collected iff it is
   present on the agent's new cell; then the reward gains reward_i, the object becomes
   absent, and the episode terminates with probability terminate_prob_i. An absent object
   of the task (just collected or absent before) respawns with probability respawn_prob_i
   on a cell drawn uniformly from the empty cells: it may land on the agent or on another
   object, and it may respawn in the step it was collected. Unused rows (``object_used``
   false) never appear. Optim4RL processes the objects one after another; each draws its
   own randomness and only the "terminated" flag is shared, so they are processed
   together here, which has the same distribution.
3. time += 1; done = terminated or time >= max_steps (the time limit counts as
   termination, as in the official code; ``Transition`` has only ``done``).
4. Auto-reset where done: the agent and every object of the task on distinct cells drawn
   uniformly from the empty cells, all objects present, time 0.

A probability p fires when a uniform draw u in [0, 1) has u < p, so p = 0 never fires and
p = 1 always does (the official ``u <= p`` lets p = 0 fire with probability about 2^-24).

Observation (Optim4RL's, official ``render_obs``): float32 (K + 1, H, W), channels first,
over the whole board: channel i is the one-hot cell of object i while present, the last
channel the agent's cell; walls are not encoded. It is flattened (C order) and
``EnvSpec.obs_shape`` = (K + 1, H, W) gives the layout back to a conv net.

Padding: the board is a static H x W array; a smaller map fills its top-left corner and
everything outside it is wall, so the agent never leaves the map (the official code's
clipping to the map edge is the same thing as walls beyond it). Objects are K static rows
with a ``object_used`` mask, actions an (A, 2) table of (row, col) deltas with an
``action_valid`` mask. The env options ``max_height``, ``max_width``, ``max_objects`` and
``max_actions`` enlarge these shapes (defaults: the setting's own), e.g. so that all of
Optim4RL's grids share one program (15 x 15, 4 objects). Reset draws K + 1 distinct cells
(the task's objects take the first draws after the agent's), so a task needs at least
1 + (number of its objects) empty cells.

Settings (registry names; "sparse"/"dense" objects as in the authors' envs/gridworld.py):

* Optim4RL (paper App. B Table 2), 9 actions (stay, up, right, down, left, then the
  diagonals (+1,-1), (+1,+1), (-1,+1), (-1,-1), the official order), maps = an open room
  inside a one-cell wall border, objects placed on the 24/117/120 interior cells:
  ``small_sparse_short`` 5x10, ``small_sparse_long`` 10x5 (both unused by the paper),
  ``small_dense_short`` 6x8, ``small_dense_long`` 8x6, ``big_sparse_short`` 12x14,
  ``big_sparse_long`` 14x12, ``big_dense_short`` 11x15, ``big_dense_long`` 15x11; short =
  50 steps, long = 500. The observation covers the border, as the official one does.
* OPEN (paper App. D), 5 actions in groove's order (up, down, left, right, stay), groove's
  maps have no border (the map edge blocks):
  - ``gridworld_all``: groove's ``all`` distribution (the OPEN code trains on its
    ``rand_all`` twin, which has the same parameter distribution), one task per lifetime
    from ``sample_params``: grid size uniform in 4..10, 1..5 objects, max_steps =
    round(exp(U[log 20, log 750])), object 0's reward U[0, 1] and the others' U[-1, 1],
    terminate_prob log-uniform in [0.01, 1], respawn_prob log-uniform in [0.001, 0.1],
    walls = 15 distinct indices drawn from 0..99, where index i is cell (i // size,
    i % size) of the size x size grid if i < size^2 and nothing otherwise (groove's
    indexing; the paper's Table 8 writes the half-open ranges as [1, 6] and [4, 11]).
    Board 10 x 10, 5 objects.
  - ``rand_dense`` (11x11, 500 steps; objects (1, 0, .05), (1, 0, .05), (-1, .5, .1),
    (-1, 0, .5)), ``rand_long`` (11x11, 1000 steps; (1, 0, .01) x2, (-1, .5, 1) x2) and
    ``rand_sparse`` (7x7, 50 steps; (1, 1, 1), (-1, 1, 1) x2): groove's configs, i.e. what
    the OPEN code ran. The paper's Table 9 gives rand_sparse differently (13x13, 2 objects
    (-1, 1, 0) and (1, 1, 0)): that is groove's tabular ``sparse`` config, not the one the
    code evaluates, so it is not used here.
  - ``standard_maze``, ``sixteen_rooms``, ``labyrinth``: groove's 13x13 maze layouts (from
    minimax), 3 objects; per lifetime ``sample_params`` draws max_steps =
    round(exp(U[log 25, log 50])), rewards U[0, 1], terminate_prob log-uniform in
    [0.01, 1], respawn_prob log-uniform in [0.001, 0.1] (paper Table 10, groove's
    ``get_maze_params``).
  A distribution's ``default_params()`` is its draw with ``jax.random.PRNGKey(0)``, a fixed
  task for single-task training; its ``spec.max_episode_steps`` is the longest horizon it
  draws (750, 50).

What of OPEN's groove environment is NOT reproduced (the dynamics above are Optim4RL's):
groove starts the agent on a fixed cell per task (drawn once with the task), and in the
mazes (groove's tabular mode) the objects also sit on fixed per-task cells and respawn
there; here every episode starts from fresh uniform cells. groove's random respawn avoids
the agent and all objects' cells, cannot happen in the step of collection, and (a bug in
``_get_valid_obj_idxs``, which tests cells against the boolean wall mask instead of wall
indices) may place objects on walls but never on cells 0 and 1; groove draws one
termination coin with the summed probability of the collected objects. Its observation
differs: rand_* see the agent's one-hot, one map per object *type* and time * 0.001; the
mazes see a one-hot of (cell, set of present objects). Random walls may cut the grid into
parts, in groove and here. One guard is this module's: a ``gridworld_all`` draw keeps at
most size^2 - (1 + objects) of its in-grid walls (in draw order), so reset always finds
room (it acts on about 1e-9 of the draws; groove then places the agent or objects on
walls, about 5e-9 of its draws).

Reward: ``Transition.reward`` = ``reward_scale`` (option, default 1; Optim4RL's
multi-task meta-training scales each grid's rewards) times the raw reward;
``completed_return`` is always the raw return.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rlopt.envs.base import EnvSpec, Transition

WALL, EMPTY = "#", "."
# Optim4RL's actions in its order: stay, up, right, down, left, then the four diagonals.
OPTIM4RL_MOVES = ((0, 0), (-1, 0), (0, 1), (1, 0), (0, -1), (1, -1), (1, 1), (-1, 1), (-1, -1))
# groove's actions in its order: up, down, left, right, stay.
GROOVE_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1), (0, 0))
OPTIONS = ("max_height", "max_width", "max_objects", "max_actions", "reward_scale")


class GridworldParams(NamedTuple):
    """One task on a static board; every field may be traced (and vmapped over tasks)."""

    walls: jax.Array  # bool (H, W): True = wall; the board around a smaller map is wall
    objects: jax.Array  # float32 (K, 3): rows [reward, terminate_prob, respawn_prob]
    object_used: jax.Array  # bool (K,): the task's objects; other rows are padding
    max_steps: jax.Array  # int32 (): the time limit
    moves: jax.Array  # int32 (A, 2): (row, col) delta of each action
    action_valid: jax.Array  # bool (A,): the task's actions; any other one stays put
    reward_scale: jax.Array  # float32 (): the learner's reward = reward_scale * raw reward


class GridworldState(NamedTuple):
    agent: jax.Array  # int32 (E,): the agent's cell, row * W + col
    object_cells: jax.Array  # int32 (E, K): each object's cell (stale while absent)
    object_present: jax.Array  # bool (E, K)
    time: jax.Array  # int32 (E,): steps taken in the episode
    episode_return: jax.Array  # float32 (E,): running raw return


class TaskDraw(NamedTuple):
    """A task on its own extent (h, w, k), before the board's padding."""

    walls: jax.Array  # bool (h, w)
    objects: jax.Array  # float32 (k, 3)
    object_used: jax.Array  # bool (k,)
    max_steps: jax.Array  # int32 ()


def wall_mask(layout: tuple[str, ...]) -> np.ndarray:
    return np.array([[char == WALL for char in row] for row in layout], bool)


@dataclass(frozen=True)
class GridTask:
    """One fixed task: an ASCII map ('#' wall, '.' empty), object rows, horizon, moves."""

    layout: tuple[str, ...]
    objects: tuple[tuple[float, float, float], ...]
    max_steps: int
    moves: tuple[tuple[int, int], ...]

    @property
    def height(self) -> int:
        return len(self.layout)

    @property
    def width(self) -> int:
        return len(self.layout[0]) if self.layout else 0

    @property
    def num_objects(self) -> int:
        return len(self.objects)

    def validate(self, name: str) -> None:
        """Bad tasks fail here, on the host, naming the problem."""
        if not self.layout or any(len(row) != self.width for row in self.layout) or self.width == 0:
            raise ValueError(f"gridworld task '{name}': the layout must be non-empty rows of equal length")
        if any(char not in WALL + EMPTY for row in self.layout for char in row):
            raise ValueError(f"gridworld task '{name}': layout characters must be '{WALL}' (wall) or '{EMPTY}' (empty)")
        if not self.objects or any(len(row) != 3 for row in self.objects):
            raise ValueError(
                f"gridworld task '{name}': objects must be one or more rows [reward, terminate_prob, respawn_prob]"
            )
        for reward, *probabilities in self.objects:
            if not math.isfinite(reward) or not all(0.0 <= p <= 1.0 for p in probabilities):
                raise ValueError(
                    f"gridworld task '{name}': object {[reward, *probabilities]} needs a finite "
                    "reward and probabilities in [0, 1]"
                )
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"gridworld task '{name}': max_steps must be a positive integer, got {self.max_steps!r}")
        if not self.moves or any(len(move) != 2 for move in self.moves):
            raise ValueError(f"gridworld task '{name}': moves must be one or more (row, col) deltas")
        empty = int((~wall_mask(self.layout)).sum())
        if empty < 1 + self.num_objects:
            raise ValueError(
                f"gridworld task '{name}': {empty} empty cells cannot hold the agent and {self.num_objects} objects"
            )

    def draw(self) -> TaskDraw:
        return TaskDraw(
            jnp.asarray(wall_mask(self.layout)),
            jnp.asarray(self.objects, jnp.float32),
            jnp.ones(self.num_objects, bool),
            jnp.int32(self.max_steps),
        )


@dataclass(frozen=True)
class GridDistribution:
    """Tasks drawn per lifetime: the largest extents they take and a traceable sampler."""

    height: int
    width: int
    num_objects: int
    max_steps: int  # the longest horizon drawn
    moves: tuple[tuple[int, int], ...]
    sample: Callable[[jax.Array], TaskDraw]


Setting = GridTask | GridDistribution


# ---------------------------------------------------------------------------------------
# Optim4RL's grids


def walled_room(height: int, width: int) -> tuple[str, ...]:
    """An open room inside a one-cell wall border (every Optim4RL map)."""
    border = WALL * width
    return (border, *([WALL + EMPTY * (width - 2) + WALL] * (height - 2)), border)


_SPARSE_SMALL = ((1.0, 0.0, 0.05), (-1.0, 0.5, 0.05))
_DENSE_SMALL = ((1.0, 0.0, 0.5), (-1.0, 0.5, 0.5))
_SPARSE_BIG = (_SPARSE_SMALL[0],) * 2 + (_SPARSE_SMALL[1],) * 2
_DENSE_BIG = (_DENSE_SMALL[0],) * 2 + (_DENSE_SMALL[1],) * 2


def _optim4rl(height: int, width: int, objects, max_steps: int) -> GridTask:
    return GridTask(walled_room(height, width), objects, max_steps, OPTIM4RL_MOVES)


OPTIM4RL_TASKS = {
    "small_sparse_short": _optim4rl(5, 10, _SPARSE_SMALL, 50),
    "small_sparse_long": _optim4rl(10, 5, _SPARSE_SMALL, 500),
    "small_dense_short": _optim4rl(6, 8, _DENSE_SMALL, 50),
    "small_dense_long": _optim4rl(8, 6, _DENSE_SMALL, 500),
    "big_sparse_short": _optim4rl(12, 14, _SPARSE_BIG, 50),
    "big_sparse_long": _optim4rl(14, 12, _SPARSE_BIG, 500),
    "big_dense_short": _optim4rl(11, 15, _DENSE_BIG, 50),
    "big_dense_long": _optim4rl(15, 11, _DENSE_BIG, 500),
}


# ---------------------------------------------------------------------------------------
# OPEN's grids (groove)


def _open_room(size: int) -> tuple[str, ...]:
    return (EMPTY * size,) * size


GROOVE_TASKS = {
    "rand_dense": GridTask(
        _open_room(11), ((1.0, 0.0, 0.05), (1.0, 0.0, 0.05), (-1.0, 0.5, 0.1), (-1.0, 0.0, 0.5)), 500, GROOVE_MOVES
    ),
    "rand_sparse": GridTask(_open_room(7), ((1.0, 1.0, 1.0), (-1.0, 1.0, 1.0), (-1.0, 1.0, 1.0)), 50, GROOVE_MOVES),
    "rand_long": GridTask(
        _open_room(11), ((1.0, 0.0, 0.01), (1.0, 0.0, 0.01), (-1.0, 0.5, 1.0), (-1.0, 0.5, 1.0)), 1000, GROOVE_MOVES
    ),
}

# groove's maze designs (custom_mazes.py, after minimax), rewritten as ASCII maps.
MAZE_LAYOUTS = {
    "standard_maze": (
        ".....#....#..",
        ".###.####.##.",
        ".#...........",
        ".########.###",
        "........#....",
        "######.#####.",
        "....#..#.....",
        ".##...##.####",
        "..#.#..#...#.",
        "#.#.##.###.#.",
        "#.#..#...#...",
        "#.##.###.###.",
        "...#...#.#...",
    ),
    "sixteen_rooms": (
        "...#..#..#...",
        ".........#...",
        "...#..#......",
        "#.###.##.###.",
        "...#.........",
        "......#..#...",
        "##.#.##.###.#",
        "...#.....#...",
        "...#..#......",
        ".####.##.#.##",
        "...#..#..#...",
        "......#......",
        "...#.....#...",
    ),
    "labyrinth": (
        ".............",
        ".###########.",
        ".#.........#.",
        ".#.#######.#.",
        ".#.#.....#.#.",
        ".#.#.###.#.#.",
        ".#.#.#.#.#.#.",
        ".#.#.#.#.#.#.",
        ".#...#...#.#.",
        ".#########.#.",
        ".....#.....#.",
        "####.#.#####.",
        ".....#.......",
    ),
}

ALL_MAX_GRID = 10  # groove's `all`: grid sizes 4..10 on a 10 x 10 index space
ALL_NUM_WALLS = 15
ALL_MAX_OBJECTS = 5
ALL_MAX_STEPS = (20, 750)
MAZE_NUM_OBJECTS = 3
MAZE_MAX_STEPS = (25, 50)


def _log_uniform(key: jax.Array, shape: tuple[int, ...], low: float, high: float) -> jax.Array:
    return jnp.exp(jax.random.uniform(key, shape, minval=math.log(low), maxval=math.log(high)))


def _log_uniform_int(key: jax.Array, low: int, high: int) -> jax.Array:
    return jnp.round(_log_uniform(key, (), low, high)).astype(jnp.int32)


def groove_random_walls(key: jax.Array, size: jax.Array, num_objects: jax.Array) -> jax.Array:
    """bool (10, 10): the walls of a size x size grid in the corner of groove's 10 x 10 space.

    groove draws 15 distinct indices of 0..99 and reads index i as cell (i // size, i % size)
    when i < size^2; the rest fall outside the grid. Cells beyond the grid are wall here.
    Of the in-grid walls at most size^2 - (1 + num_objects) are kept, in draw order, so a
    reset always finds room (this module's guard; see the module docstring).
    """
    indices = jax.random.permutation(key, ALL_MAX_GRID**2)[:ALL_NUM_WALLS]
    in_grid = indices < size * size
    kept = in_grid & (jnp.cumsum(in_grid) <= size * size - (1 + num_objects))
    row, col = jnp.divmod(jnp.arange(ALL_MAX_GRID**2), ALL_MAX_GRID)
    inside = (row < size) & (col < size)
    wall_inside = jnp.isin(row * size + col, jnp.where(kept, indices, -1))
    return (~inside | wall_inside).reshape(ALL_MAX_GRID, ALL_MAX_GRID)


def sample_all(key: jax.Array) -> TaskDraw:
    """One task of groove's ``all`` distribution (OPEN's gridworld training distribution)."""
    size_key, count_key, steps_key, first_key, rest_key, terminate_key, respawn_key, wall_key = jax.random.split(key, 8)
    size = jax.random.randint(size_key, (), 4, ALL_MAX_GRID + 1)
    num_objects = jax.random.randint(count_key, (), 1, ALL_MAX_OBJECTS + 1)
    rewards = jnp.concatenate(
        [
            jax.random.uniform(first_key, (1,), minval=0.0, maxval=1.0),
            jax.random.uniform(rest_key, (ALL_MAX_OBJECTS - 1,), minval=-1.0, maxval=1.0),
        ]
    )
    objects = jnp.stack(
        [
            rewards,
            _log_uniform(terminate_key, (ALL_MAX_OBJECTS,), 1e-2, 1.0),
            _log_uniform(respawn_key, (ALL_MAX_OBJECTS,), 1e-3, 1e-1),
        ],
        axis=1,
    )
    return TaskDraw(
        groove_random_walls(wall_key, size, num_objects),
        objects,
        jnp.arange(ALL_MAX_OBJECTS) < num_objects,
        _log_uniform_int(steps_key, *ALL_MAX_STEPS),
    )


def maze_sampler(layout: tuple[str, ...]) -> Callable[[jax.Array], TaskDraw]:
    """Per-lifetime objects and horizon on a fixed maze (groove's ``get_maze_params``)."""
    walls = wall_mask(layout)

    def sample(key: jax.Array) -> TaskDraw:
        steps_key, reward_key, terminate_key, respawn_key = jax.random.split(key, 4)
        objects = jnp.stack(
            [
                jax.random.uniform(reward_key, (MAZE_NUM_OBJECTS,)),
                _log_uniform(terminate_key, (MAZE_NUM_OBJECTS,), 1e-2, 1.0),
                _log_uniform(respawn_key, (MAZE_NUM_OBJECTS,), 1e-3, 1e-1),
            ],
            axis=1,
        )
        return TaskDraw(
            jnp.asarray(walls), objects, jnp.ones(MAZE_NUM_OBJECTS, bool), _log_uniform_int(steps_key, *MAZE_MAX_STEPS)
        )

    return sample


GROOVE_DISTRIBUTIONS = {
    "gridworld_all": GridDistribution(
        ALL_MAX_GRID, ALL_MAX_GRID, ALL_MAX_OBJECTS, ALL_MAX_STEPS[1], GROOVE_MOVES, sample_all
    ),
    **{
        name: GridDistribution(13, 13, MAZE_NUM_OBJECTS, MAZE_MAX_STEPS[1], GROOVE_MOVES, maze_sampler(layout))
        for name, layout in MAZE_LAYOUTS.items()
    },
}

SETTINGS: dict[str, Setting] = {**OPTIM4RL_TASKS, **GROOVE_TASKS, **GROOVE_DISTRIBUTIONS}


# ---------------------------------------------------------------------------------------
# The environment


def _positive_int(option: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"gridworld option '{option}' must be a positive integer, got {value!r}")
    return int(value)


def _extent(option: str, value: object, setting_extent: int) -> int:
    return setting_extent if value is None else _positive_int(option, value)


def _positive_number(option: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"gridworld option '{option}' must be a positive number, got {value!r}")
    return float(value)


def make_gridworld(name: str, **options: object) -> GridworldVecEnv:
    """The registry's constructor: unknown options are an error naming the valid ones."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown gridworld option(s) {unknown}; valid options are {list(OPTIONS)}")
    setting = SETTINGS[name]
    if isinstance(setting, GridDistribution):
        return GridworldDistributionVecEnv(name, setting, **options)
    return GridworldVecEnv(name, setting, **options)


class GridworldVecEnv:
    """Batched gridworld on a static board; the task is a field of the (traceable) params.

    Options (all static): ``max_height``, ``max_width``, ``max_objects``, ``max_actions``
    (the board, object rows and action table; defaults: the setting's own, larger values
    pad) and ``reward_scale`` (default 1).
    """

    def __init__(
        self,
        name: str,
        setting: Setting,
        *,
        max_height: int | None = None,
        max_width: int | None = None,
        max_objects: int | None = None,
        max_actions: int | None = None,
        reward_scale: float = 1.0,
    ):
        if isinstance(setting, GridTask):
            setting.validate(name)
        self.setting = setting
        self.height = _extent("max_height", max_height, setting.height)
        self.width = _extent("max_width", max_width, setting.width)
        self.max_objects = _extent("max_objects", max_objects, setting.num_objects)
        self.max_actions = _extent("max_actions", max_actions, len(setting.moves))
        self._check_fits(name, setting)
        self.reward_scale = _positive_number("reward_scale", reward_scale)
        self.obs_shape = (self.max_objects + 1, self.height, self.width)
        self.spec = EnvSpec(
            name=name,
            obs_dim=math.prod(self.obs_shape),
            action_dim=self.max_actions,
            continuous=False,
            max_episode_steps=setting.max_steps,
            obs_shape=self.obs_shape,
        )

    def _check_fits(self, name: str, setting: Setting) -> None:
        for what, need, have in (
            ("height", setting.height, self.height),
            ("width", setting.width, self.width),
            ("objects", setting.num_objects, self.max_objects),
            ("actions", len(setting.moves), self.max_actions),
        ):
            if need > have:
                raise ValueError(f"gridworld '{name}' needs {need} {what}, more than max_{what} = {have}")

    def task_params(self, task: GridTask, name: str = "custom") -> GridworldParams:
        """The params of a fixed task on this env's board (any task that fits)."""
        task.validate(name)
        self._check_fits(name, task)
        return self._padded(task.draw(), task.moves)

    def default_params(self) -> GridworldParams:
        return self.task_params(self.setting, self.spec.name)

    def _padded(self, draw: TaskDraw, moves: tuple[tuple[int, int], ...]) -> GridworldParams:
        h, w = draw.walls.shape
        k, a = draw.objects.shape[0], len(moves)
        return GridworldParams(
            walls=jnp.ones((self.height, self.width), bool).at[:h, :w].set(draw.walls),
            objects=jnp.zeros((self.max_objects, 3), jnp.float32).at[:k].set(draw.objects),
            object_used=jnp.zeros(self.max_objects, bool).at[:k].set(draw.object_used),
            max_steps=jnp.asarray(draw.max_steps, jnp.int32),
            moves=jnp.zeros((self.max_actions, 2), jnp.int32).at[:a].set(jnp.asarray(moves, jnp.int32)),
            action_valid=jnp.arange(self.max_actions) < a,
            reward_scale=jnp.float32(self.reward_scale),
        )

    # --- one env -------------------------------------------------------------------------

    def _observation(self, agent: jax.Array, cells: jax.Array, present: jax.Array) -> jax.Array:
        cells_total = self.height * self.width
        objects = jax.nn.one_hot(cells, cells_total, dtype=jnp.float32) * present[:, None]
        agent_map = jax.nn.one_hot(agent, cells_total, dtype=jnp.float32)[None]
        return jnp.concatenate([objects, agent_map]).reshape(-1)

    def _reset_one(self, key: jax.Array, params: GridworldParams) -> tuple[jax.Array, jax.Array]:
        """(agent cell, object cells): distinct cells, uniform over the empty ones."""
        empty = ~params.walls.reshape(-1)
        scores = jnp.where(empty, jax.random.uniform(key, empty.shape), -1.0)
        _, draws = jax.lax.top_k(scores, self.max_objects + 1)  # a uniform ordered tuple of cells
        used = params.object_used
        # The task's objects take the draws right after the agent's, padding rows the rest.
        slot = jnp.where(used, jnp.cumsum(used), used.sum() + jnp.cumsum(~used))
        return draws[0], draws[slot]

    def _respawn_cells(self, uniforms: jax.Array, walls: jax.Array) -> jax.Array:
        """One uniformly drawn empty cell per uniform in [0, 1)."""
        empty_so_far = jnp.cumsum(~walls.reshape(-1))
        nth = jnp.minimum((uniforms * empty_so_far[-1]).astype(jnp.int32), empty_so_far[-1] - 1)
        return jnp.searchsorted(empty_so_far, nth, side="right").astype(jnp.int32)

    def _step_one(self, key, agent, cells, present, time, episode_return, action, params: GridworldParams):
        move = jnp.where(params.action_valid[action], params.moves[action], 0)
        row = jnp.clip(agent // self.width + move[0], 0, self.height - 1)
        col = jnp.clip(agent % self.width + move[1], 0, self.width - 1)
        target = row * self.width + col
        agent = jnp.where(params.walls.reshape(-1)[target], agent, target)

        object_key, reset_key = jax.random.split(key)
        terminate_u, respawn_u, cell_u = jax.random.uniform(object_key, (3, self.max_objects))
        reward_of, terminate_p, respawn_p = params.objects.T
        collected = present & (cells == agent)
        reward = jnp.sum(jnp.where(collected, reward_of, 0.0))
        terminated = jnp.any(collected & (terminate_u < terminate_p))
        present = present & ~collected
        respawn = params.object_used & ~present & (respawn_u < respawn_p)
        cells = jnp.where(respawn, self._respawn_cells(cell_u, params.walls), cells)
        present = present | respawn

        time = time + 1
        done = terminated | (time >= params.max_steps)
        episode_return = episode_return + reward
        completed = jnp.where(done, episode_return, 0.0)
        reset_agent, reset_cells = self._reset_one(reset_key, params)
        agent = jnp.where(done, reset_agent, agent)
        cells = jnp.where(done, reset_cells, cells)
        present = jnp.where(done, params.object_used, present)
        state = (agent, cells, present, jnp.where(done, 0, time), jnp.where(done, 0.0, episode_return))
        transition = Transition(self._observation(agent, cells, present), params.reward_scale * reward, done, completed)
        return state, transition

    # --- the batched interface -----------------------------------------------------------

    def reset(self, key: jax.Array, num_envs: int, params: GridworldParams) -> tuple[GridworldState, jax.Array]:
        agent, cells = jax.vmap(self._reset_one, in_axes=(0, None))(jax.random.split(key, num_envs), params)
        present = jnp.broadcast_to(params.object_used, cells.shape)
        state = GridworldState(agent, cells, present, jnp.zeros(num_envs, jnp.int32), jnp.zeros(num_envs, jnp.float32))
        return state, self.observe(state)

    def observe(self, state: GridworldState) -> jax.Array:
        """float32 (E, obs_dim): the flat (K + 1, H, W) maps of a batch of states."""
        return jax.vmap(self._observation)(state.agent, state.object_cells, state.object_present)

    def step(
        self, key: jax.Array, state: GridworldState, action: jax.Array, params: GridworldParams
    ) -> tuple[GridworldState, Transition]:
        """Steps every copy once; auto-resets finished episodes."""
        keys = jax.random.split(key, action.shape[0])
        fields, transition = jax.vmap(self._step_one, in_axes=(0, 0, 0, 0, 0, 0, 0, None))(keys, *state, action, params)
        return GridworldState(*fields), transition


class GridworldDistributionVecEnv(GridworldVecEnv):
    """A gridworld setting that is a task distribution: ``sample_params`` draws one task."""

    setting: GridDistribution

    def sample_params(self, key: jax.Array) -> GridworldParams:
        return self._padded(self.setting.sample(key), self.setting.moves)

    def default_params(self) -> GridworldParams:
        """The draw with ``PRNGKey(0)``: a fixed task, for training on one task."""
        return self.sample_params(jax.random.PRNGKey(0))
