"""The traced-parameter gridworld: Optim4RL's rules on hand-built states, the observation,
padding, one compile for several tasks, the registered settings, and a random policy's
returns against an independent NumPy implementation of the rules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlopt.envs import gridworld
from rlopt.envs.gridworld import (
    GROOVE_MOVES,
    OPTIM4RL_MOVES,
    GridTask,
    GridworldState,
    GridworldVecEnv,
    groove_random_walls,
    make_gridworld,
)
from rlopt.envs.registry import GRIDWORLDS, default_ppo_settings, make_env

STAY, UP, RIGHT, DOWN, LEFT, DOWN_LEFT, DOWN_RIGHT, UP_RIGHT, UP_LEFT = range(9)  # Optim4RL's order

ROOM = ("#####", "#...#", "#.#.#", "#...#", "#####")
WIDTH = 5


def cell(row: int, col: int, width: int = WIDTH) -> int:
    return row * width + col


def room_env(objects, max_steps=100, layout=ROOM, moves=OPTIM4RL_MOVES, **options):
    env = GridworldVecEnv("hand", GridTask(layout, objects, max_steps, moves), **options)
    return env, env.default_params()


def one_state(agent, object_cells, present=None, time=0, num_envs=1):
    """``num_envs`` copies of one hand-built state."""
    object_cells = np.asarray(object_cells, np.int32)
    present = np.ones(len(object_cells), bool) if present is None else np.asarray(present, bool)
    return GridworldState(
        jnp.full(num_envs, agent, jnp.int32),
        jnp.tile(object_cells, (num_envs, 1)),
        jnp.tile(present, (num_envs, 1)),
        jnp.full(num_envs, time, jnp.int32),
        jnp.zeros(num_envs, jnp.float32),
    )


_compiled_steps = {}


def step(env, params, state, action, seed=0):
    """One step of every copy with the same action (compiled once per env)."""
    if env not in _compiled_steps:
        _compiled_steps[env] = jax.jit(env.step)
    actions = jnp.full(state.agent.shape, action, jnp.int32)
    return _compiled_steps[env](jax.random.PRNGKey(seed), state, actions, params)


# --- dynamics on hand-built states --------------------------------------------------------


def test_collecting_pays_the_reward_and_removes_the_object():
    env, params = room_env(((2.0, 0.0, 0.0), (-1.0, 0.0, 0.0)))
    state, transition = step(env, params, one_state(cell(1, 1), [cell(1, 2), cell(3, 3)]), RIGHT)
    assert int(state.agent[0]) == cell(1, 2)
    assert float(transition.reward[0]) == 2.0 and not bool(transition.done[0])
    assert state.object_present[0].tolist() == [False, True]
    assert int(state.time[0]) == 1 and float(state.episode_return[0]) == 2.0
    maps = np.asarray(transition.obs[0]).reshape(env.obs_shape)
    assert maps[0].sum() == 0  # the collected object has left the observation
    assert maps[1, 3, 3] == 1 and maps[2, 1, 2] == 1


def test_a_certain_termination_ends_the_episode_with_its_return():
    env, params = room_env(((1.5, 1.0, 0.0), (-1.0, 0.0, 0.0)))
    state, transition = step(env, params, one_state(cell(1, 1), [cell(2, 1), cell(3, 3)], time=4), DOWN)
    assert bool(transition.done[0]) and float(transition.completed_return[0]) == 1.5
    assert int(state.time[0]) == 0 and float(state.episode_return[0]) == 0.0  # auto-reset
    assert state.object_present[0].tolist() == [True, True]


def test_termination_and_respawn_happen_with_their_probabilities():
    num_envs = 4000
    env, params = room_env(((1.0, 0.3, 0.6),))
    state, transition = step(env, params, one_state(cell(1, 1), [cell(1, 2)], num_envs=num_envs), RIGHT)
    done = np.asarray(transition.done)
    assert abs(done.mean() - 0.3) < 4.5 * np.sqrt(0.3 * 0.7 / num_envs)
    respawned = np.asarray(state.object_present[:, 0])[~done]  # unterminated: respawned or still absent
    assert abs(respawned.mean() - 0.6) < 4.5 * np.sqrt(0.6 * 0.4 / (~done).sum())


def test_respawn_is_uniform_over_empty_cells_including_the_agents():
    num_envs = 8000
    env, params = room_env(((1.0, 0.0, 1.0),))
    state, _ = step(env, params, one_state(cell(1, 1), [cell(1, 2)], num_envs=num_envs), RIGHT)
    assert bool(state.object_present.all())  # respawned in the step it was collected
    empty = [cell(r, c) for r in range(5) for c in range(5) if ROOM[r][c] == "."]
    counts = np.bincount(np.asarray(state.object_cells[:, 0]), minlength=25)
    assert counts.sum() == counts[empty].sum()  # never on a wall
    expected = num_envs / len(empty)
    assert counts[cell(1, 2)] > 0  # the agent's cell is allowed
    assert np.all(np.abs(counts[empty] - expected) < 4.5 * np.sqrt(expected))


def test_walls_block_and_diagonal_moves_check_only_the_target():
    env, params = room_env(((1.0, 0.0, 0.0),))
    for start, action, end in [
        (cell(1, 1), UP, cell(1, 1)),  # the border
        (cell(1, 1), DOWN, cell(2, 1)),
        (cell(1, 1), DOWN_RIGHT, cell(1, 1)),  # (2, 2) is a wall
        (cell(1, 2), DOWN_RIGHT, cell(2, 3)),
        (cell(3, 3), UP_LEFT, cell(3, 3)),
        (cell(3, 2), UP_LEFT, cell(2, 1)),
        (cell(2, 3), STAY, cell(2, 3)),
        (cell(1, 3), DOWN_LEFT, cell(1, 3)),
        (cell(3, 1), UP_RIGHT, cell(3, 1)),
    ]:
        state, _ = step(env, params, one_state(start, [cell(3, 3) if start != cell(3, 3) else cell(1, 1)]), action)
        assert int(state.agent[0]) == end, (start, action)


def test_a_map_without_border_clips_at_its_edge_and_its_padding_is_wall():
    open_map = ("...",) * 3
    env, params = room_env(((1.0, 0.0, 0.0),), layout=open_map, max_height=5, max_width=5)
    assert np.asarray(params.walls).sum() == 25 - 9
    for start, action, end in [
        (cell(0, 0), UP, cell(0, 0)),
        (cell(0, 0), UP_LEFT, cell(0, 0)),
        (cell(2, 2), DOWN_RIGHT, cell(2, 2)),
        (cell(2, 2), RIGHT, cell(2, 2)),
        (cell(1, 1), DOWN_RIGHT, cell(2, 2)),
    ]:
        state, _ = step(env, params, one_state(start, [cell(0, 2)]), action)
        assert int(state.agent[0]) == end, (start, action)


def test_the_time_limit_ends_the_episode_as_a_termination():
    env, params = room_env(((1.0, 1.0, 0.0),), max_steps=3)
    state = one_state(cell(1, 1), [cell(3, 3)])
    dones = []
    for t in range(3):
        state, transition = step(env, params, state, STAY, seed=t)
        dones.append(bool(transition.done[0]))
    assert dones == [False, False, True]
    assert float(transition.completed_return[0]) == 0.0 and int(state.time[0]) == 0


def test_auto_reset_puts_the_agent_and_objects_on_distinct_empty_cells():
    num_envs = 4000
    env, params = room_env(((1.0, 0.0, 0.0), (1.0, 0.0, 0.0), (1.0, 0.0, 0.0)), max_steps=1)
    state, transition = step(
        env, params, one_state(cell(1, 1), [cell(3, 1), cell(3, 2), cell(3, 3)], num_envs=num_envs), STAY
    )
    assert bool(transition.done.all()) and bool(state.object_present.all())
    cells = np.concatenate([np.asarray(state.agent)[:, None], np.asarray(state.object_cells)], axis=1)
    assert all(len(set(row)) == 4 for row in cells.tolist())
    empty = [cell(r, c) for r in range(5) for c in range(5) if ROOM[r][c] == "."]
    for column in cells.T:  # each of them is uniform over the 8 empty cells
        counts = np.bincount(column, minlength=25)
        assert counts.sum() == counts[empty].sum()
        assert np.all(np.abs(counts[empty] - num_envs / 8) < 4.5 * np.sqrt(num_envs / 8))
    maps = np.asarray(transition.obs).reshape(num_envs, *env.obs_shape)
    np.testing.assert_array_equal(maps.sum(axis=(2, 3)), 1)  # every object and the agent shown once


def test_padding_object_rows_never_appear_pay_or_respawn():
    env, params = room_env(((1.0, 0.0, 0.0),), max_objects=3)
    assert params.object_used.tolist() == [True, False, False]
    # Give the padding rows a reward and certain respawn: the mask alone must keep them out.
    params = params._replace(objects=params.objects.at[1:].set(jnp.array([5.0, 1.0, 1.0])))
    state = one_state(cell(1, 1), [cell(3, 3), cell(1, 2), cell(1, 2)], present=[True, False, False], num_envs=64)
    for t in range(5):
        state, transition = step(env, params, state, RIGHT if t == 0 else STAY, seed=t)
        assert float(jnp.abs(transition.reward).max()) == 0.0
        assert not bool(state.object_present[:, 1:].any())
        maps = np.asarray(transition.obs).reshape(64, *env.obs_shape)
        assert maps[:, 1:3].sum() == 0
    state, _ = jax.jit(env.reset, static_argnums=1)(jax.random.PRNGKey(0), 64, params)
    assert not bool(state.object_present[:, 1:].any()) and bool(state.object_present[:, 0].all())


def test_actions_beyond_the_tasks_set_stay_put():
    env, params = room_env(((1.0, 0.0, 0.0),), moves=GROOVE_MOVES, max_actions=9)
    assert env.spec.action_dim == 9 and params.action_valid.tolist() == [True] * 5 + [False] * 4
    params = params._replace(moves=params.moves.at[5:].set(1))  # the masked rows would move diagonally
    for action, end in [(0, cell(1, 1)), (1, cell(2, 1)), (3, cell(1, 2))] + [(a, cell(1, 1)) for a in range(5, 9)]:
        state, _ = step(env, params, one_state(cell(1, 1), [cell(3, 3)]), action)
        assert int(state.agent[0]) == end, action


def test_observation_layout_is_channels_first_per_object_then_agent():
    env, params = room_env(((1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.5, 0.0, 0.0)))
    state = one_state(cell(2, 3), [cell(1, 1), cell(3, 2), cell(1, 3)], present=[True, False, True])
    obs = np.asarray(env.observe(state)[0])
    assert obs.dtype == np.float32 and obs.shape == (4 * 5 * 5,) == (env.spec.obs_dim,)
    expected = np.zeros((4, 5, 5), np.float32)
    expected[0, 1, 1] = expected[2, 1, 3] = expected[3, 2, 3] = 1  # absent object 1 shows nothing; no walls
    np.testing.assert_array_equal(obs.reshape(env.spec.obs_shape), expected)


def test_reward_scale_scales_the_learners_reward_not_the_logged_return():
    env, params = room_env(((2.0, 1.0, 0.0),), reward_scale=10.0)
    _, transition = step(env, params, one_state(cell(1, 1), [cell(1, 2)]), RIGHT)
    assert float(transition.reward[0]) == 20.0 and float(transition.completed_return[0]) == 2.0


# --- one compile, many tasks --------------------------------------------------------------


def test_one_compiled_rollout_serves_two_tasks():
    env = make_env("small_dense_short", max_height=8, max_width=8)
    long_task = make_gridworld("small_dense_long")
    traces = []

    @jax.jit
    def stay_rollout(params):
        traces.append(1)
        state, _ = env.reset(jax.random.PRNGKey(0), 16, params)

        def body(state, key):
            state, transition = env.step(key, state, jnp.zeros(16, jnp.int32), params)
            return state, transition.done

        return jax.lax.scan(body, state, jax.random.split(jax.random.PRNGKey(1), 60))[1]

    # Staying put never collects (every object starts present elsewhere), so only the
    # time limit ends episodes: 50 steps on the short task, 500 on the long one.
    short = np.asarray(stay_rollout(env.default_params()))
    long = np.asarray(stay_rollout(env.task_params(long_task.setting)))
    assert np.flatnonzero(short.all(axis=1)).tolist() == [49] and not short[:49].any()
    assert not long.any()
    assert len(traces) == 1


# --- the registered settings --------------------------------------------------------------

OPTIM4RL_TABLE = {  # the authors' envs/gridworld.py: map, empty cells, objects, max_steps, obs shape
    "small_sparse_short": ((5, 10), 24, 2, 50),
    "small_sparse_long": ((10, 5), 24, 2, 500),
    "small_dense_short": ((6, 8), 24, 2, 50),
    "small_dense_long": ((8, 6), 24, 2, 500),
    "big_sparse_short": ((12, 14), 120, 4, 50),
    "big_sparse_long": ((14, 12), 120, 4, 500),
    "big_dense_short": ((11, 15), 117, 4, 50),
    "big_dense_long": ((15, 11), 117, 4, 500),
}


@pytest.mark.parametrize("name", sorted(OPTIM4RL_TABLE))
def test_optim4rl_grids_match_the_spec_table(name):
    (height, width), empty, num_objects, max_steps = OPTIM4RL_TABLE[name]
    env = make_env(name)
    params = env.default_params()
    walls = np.asarray(params.walls)
    assert walls.shape == (height, width) and (~walls).sum() == empty
    assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
    assert env.spec.obs_shape == (num_objects + 1, height, width) and env.spec.action_dim == 9
    assert env.spec.max_episode_steps == max_steps == int(params.max_steps)
    respawn = 0.05 if "sparse" in name else 0.5
    half = num_objects // 2
    expected = [[1.0, 0.0, respawn]] * half + [[-1.0, 0.5, respawn]] * half
    np.testing.assert_allclose(params.objects, expected)
    np.testing.assert_array_equal(
        params.moves, [[0, 0], [-1, 0], [0, 1], [1, 0], [0, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]]
    )


def test_groove_test_grids_follow_groove_configs():
    for name, size, objects, max_steps in [
        ("rand_dense", 11, [[1, 0, 0.05], [1, 0, 0.05], [-1, 0.5, 0.1], [-1, 0, 0.5]], 500),
        ("rand_long", 11, [[1, 0, 0.01], [1, 0, 0.01], [-1, 0.5, 1], [-1, 0.5, 1]], 1000),
        ("rand_sparse", 7, [[1, 1, 1], [-1, 1, 1], [-1, 1, 1]], 50),
    ]:
        env = make_env(name)
        params = env.default_params()
        assert params.walls.shape == (size, size) and not bool(params.walls.any())
        np.testing.assert_allclose(params.objects, objects, err_msg=name)
        assert int(params.max_steps) == env.spec.max_episode_steps == max_steps
        np.testing.assert_array_equal(params.moves, [[-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]])


# Wall counts and a few cells of groove's maze arrays (custom_mazes.py, row-major 13 x 13).
MAZE_FACTS = {"standard_maze": (73, [5, 10, 14]), "sixteen_rooms": (46, [3, 6, 9]), "labyrinth": (72, [14, 15, 16])}


@pytest.mark.parametrize("name", sorted(MAZE_FACTS))
def test_mazes_keep_their_layout_and_draw_objects_per_lifetime(name):
    num_walls, some_walls = MAZE_FACTS[name]
    env = make_env(name)
    tasks = jax.jit(jax.vmap(env.sample_params))(jax.random.split(jax.random.PRNGKey(0), 500))
    walls = np.asarray(tasks.walls)
    assert (walls == walls[0]).all() and walls[0].sum() == num_walls
    assert walls[0].reshape(-1)[some_walls].all()
    steps = np.asarray(tasks.max_steps)
    assert steps.min() == 25 and steps.max() == 50 and env.spec.max_episode_steps == 50
    rewards, terminate, respawn = np.moveaxis(np.asarray(tasks.objects), 2, 0)
    assert 0 <= rewards.min() and rewards.max() <= 1
    assert 0.01 <= terminate.min() and terminate.max() <= 1 and 1e-3 <= respawn.min() and respawn.max() <= 0.1
    # Log-uniform: the median is the geometric mean of the range.
    assert abs(np.median(terminate) - 0.1) < 0.02 and abs(np.median(respawn) - 0.01) < 0.002
    np.testing.assert_array_equal(env.default_params().objects, env.sample_params(jax.random.PRNGKey(0)).objects)


def test_gridworld_all_samples_groove_all():
    env = make_env("gridworld_all")
    assert env.spec.obs_shape == (6, 10, 10) and env.spec.action_dim == 5 and env.spec.max_episode_steps == 750
    tasks = jax.jit(jax.vmap(env.sample_params))(jax.random.split(jax.random.PRNGKey(0), 2000))
    walls = np.asarray(tasks.walls)
    # The grid is the top-left size x size block; its last row and column are open but for
    # a chance of about 1e-6 (all their cells walls).
    sizes = np.array([1 + np.argwhere(~w).max() for w in walls])
    assert set(sizes.tolist()) == set(range(4, 11))
    in_grid = np.array([w[:s, :s].sum() for w, s in zip(walls, sizes)])
    assert in_grid.max() <= 15
    # 15 of the 100 indices are walls; those below size^2 land in the grid.
    np.testing.assert_allclose(in_grid.mean(), (15 * sizes**2 / 100).mean(), rtol=0.05)
    used = np.asarray(tasks.object_used)
    counts = used.sum(axis=1)
    assert set(counts.tolist()) == {1, 2, 3, 4, 5} and (used == (np.arange(5) < counts[:, None])).all()
    rewards, terminate, respawn = np.moveaxis(np.asarray(tasks.objects), 2, 0)
    assert rewards[:, 0].min() >= 0 and rewards[:, 1:].min() < -0.99 and rewards.max() > 0.99
    assert 0.01 <= terminate.min() and terminate.max() <= 1 and 1e-3 <= respawn.min() and respawn.max() <= 0.1
    steps = np.asarray(tasks.max_steps)
    assert 20 <= steps.min() and steps.max() <= 750
    assert abs(np.median(steps) - np.sqrt(20 * 750)) < 15  # log-uniform
    again = env.sample_params(jax.random.split(jax.random.PRNGKey(0), 2000)[0])
    np.testing.assert_array_equal(again.walls, walls[0])  # a function of the key


def test_random_walls_index_the_grid_like_groove_and_leave_room(monkeypatch):
    keys = jax.random.split(jax.random.PRNGKey(3), 4000)
    walls = np.asarray(jax.jit(jax.vmap(lambda k: groove_random_walls(k, 6, 2)))(keys))
    assert walls[:, 6:].all() and walls[:, :, 6:].all()
    # Each of the 36 in-grid cells is one of the 100 indices, so a wall with probability 15/100.
    frequency = walls[:, :6, :6].mean(axis=0)
    assert np.abs(frequency - 0.15).max() < 4.5 * np.sqrt(0.15 * 0.85 / len(keys))
    # With every index drawn, the guard keeps 16 - (1 + 3) walls of a 4 x 4 grid.
    monkeypatch.setattr(gridworld, "ALL_NUM_WALLS", 100)
    crowded = np.asarray(groove_random_walls(jax.random.PRNGKey(0), 4, 3))
    assert crowded[:4, :4].sum() == 12


def test_every_grid_is_registered_with_the_gridworld_ppo_family():
    assert set(GRIDWORLDS) == {
        *OPTIM4RL_TABLE,
        "gridworld_all",
        "rand_dense",
        "rand_sparse",
        "rand_long",
        "standard_maze",
        "sixteen_rooms",
        "labyrinth",
    }
    settings = default_ppo_settings("rand_dense")  # the OPEN paper's Table 3 gridworld column
    assert (
        settings["num_envs"],
        settings["num_steps"],
        settings["total_steps"],
        settings["num_minibatches"],
        settings["update_epochs"],
        settings["hidden_size"],
        settings["activation"],
    ) == (1024, 20, 30_000_000, 16, 2, 16, "tanh")
    assert default_ppo_settings("big_dense_long") == settings
    assert not hasattr(make_env("rand_dense"), "sample_params")  # a fixed task, not a distribution


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("small_dense_long", {"max_hight": 9}, "unknown gridworld option(s) ['max_hight']"),
        ("small_dense_long", {"max_height": 0}, "'max_height' must be a positive integer, got 0"),
        ("small_dense_long", {"max_width": 2.0}, "'max_width' must be a positive integer, got 2.0"),
        ("small_dense_long", {"max_height": 6}, "'small_dense_long' needs 8 height, more than max_height = 6"),
        ("big_dense_long", {"max_objects": 2}, "needs 4 objects, more than max_objects = 2"),
        ("gridworld_all", {"max_actions": 4}, "needs 5 actions, more than max_actions = 4"),
        ("rand_dense", {"reward_scale": -1}, "'reward_scale' must be a positive number, got -1"),
    ],
)
def test_bad_options_fail_naming_the_option(name, options, message):
    with pytest.raises(ValueError) as err:
        make_env(name, **options)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "task, message",
    [
        (GridTask(("#.#", "##"), ((1.0, 0.0, 0.0),), 5, GROOVE_MOVES), "rows of equal length"),
        (GridTask(("#x#",), ((1.0, 0.0, 0.0),), 5, GROOVE_MOVES), "layout characters"),
        (GridTask(("...",), ((1.0, 1.5, 0.0),), 5, GROOVE_MOVES), "probabilities in [0, 1]"),
        (GridTask(("...",), ((1.0, 0.0, 0.0),), 0, GROOVE_MOVES), "max_steps must be a positive integer"),
        (
            GridTask(("#..",), ((1.0, 0.0, 0.0), (1.0, 0.0, 0.0)), 5, GROOVE_MOVES),
            "2 empty cells cannot hold the agent and 2 objects",
        ),
    ],
)
def test_bad_tasks_fail_on_the_host(task, message):
    with pytest.raises(ValueError) as err:
        GridworldVecEnv("bad", task)
    assert message in str(err.value)


# --- a random policy against an independent NumPy implementation -------------------------


def reference_episode(params, rng: np.random.Generator) -> tuple[float, int]:
    """One episode of a uniformly random policy under the Optim4RL rules, in plain loops:
    objects one after another, each with its own draws, as the official code does."""
    walls = np.asarray(params.walls)
    height, width = walls.shape
    empty = [(r, c) for r in range(height) for c in range(width) if not walls[r, c]]
    objects = np.asarray(params.objects).tolist()
    used = [i for i, u in enumerate(np.asarray(params.object_used)) if u]
    moves, valid = np.asarray(params.moves).tolist(), np.asarray(params.action_valid).tolist()
    picks = rng.choice(len(empty), size=1 + len(used), replace=False)
    agent = empty[picks[0]]
    position = {i: empty[p] for i, p in zip(used, picks[1:])}  # None while absent
    episode_return = 0.0
    for t in range(1, int(params.max_steps) + 1):
        action = rng.integers(len(moves))
        dr, dc = moves[action] if valid[action] else (0, 0)
        target = (min(max(agent[0] + dr, 0), height - 1), min(max(agent[1] + dc, 0), width - 1))
        if not walls[target]:
            agent = target
        terminated = False
        for i in used:
            reward, terminate_prob, respawn_prob = objects[i]
            if position[i] == agent:
                episode_return += reward
                position[i] = None
                if rng.random() < terminate_prob:
                    terminated = True
            if position[i] is None and rng.random() < respawn_prob:
                position[i] = empty[rng.integers(len(empty))]
        if terminated or t >= int(params.max_steps):
            return episode_return, t
    raise AssertionError("unreachable: the time limit ends every episode")


def first_episodes(env, params, num_envs: int) -> tuple[np.ndarray, np.ndarray]:
    """Return and length of every env's first episode under a uniformly random policy."""
    horizon = int(params.max_steps)

    @jax.jit
    def rollout(key):
        state, _ = env.reset(key, num_envs, params)

        def body(state, key):
            action_key, step_key = jax.random.split(key)
            action = jax.random.randint(action_key, (num_envs,), 0, env.spec.action_dim)
            state, transition = env.step(step_key, state, action, params)
            return state, (transition.done, transition.completed_return)

        return jax.lax.scan(body, state, jax.random.split(key, horizon))[1]

    done, completed = (np.asarray(x) for x in rollout(jax.random.PRNGKey(7)))
    first = done.argmax(axis=0)  # the time limit guarantees a done within the horizon
    assert done.any(axis=0).all()
    return completed[first, np.arange(num_envs)], first + 1


WALLED = ("#######", "#..#..#", "#.##..#", "#.....#", "#..#..#", "#######")


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_env("small_dense_short"),
        lambda: make_env("rand_sparse"),
        # walls, diagonals, a padding object row, mixed rewards and probabilities
        lambda: GridworldVecEnv(
            "walled",
            GridTask(WALLED, ((1.0, 0.1, 0.3), (-0.5, 0.0, 0.9), (0.3, 0.3, 0.05)), 30, OPTIM4RL_MOVES),
            max_objects=4,
        ),
    ],
    ids=["small_dense_short", "rand_sparse", "walled"],
)
def test_random_policy_returns_match_a_numpy_reference(make):
    env = make()
    params = env.default_params()
    num_episodes = 3000
    returns, lengths = first_episodes(env, params, num_episodes)
    rng = np.random.default_rng(0)
    reference = np.array([reference_episode(params, rng) for _ in range(num_episodes)])
    for ours, theirs in ((returns, reference[:, 0]), (lengths, reference[:, 1])):
        standard_error = np.sqrt(ours.var() / len(ours) + theirs.var() / len(theirs))
        assert abs(ours.mean() - theirs.mean()) < 4.5 * standard_error, (ours.mean(), theirs.mean())


def test_ppo_trains_on_a_sampled_task_distribution_member():
    from rlopt.training import run_block

    ppo = {"num_envs": 16, "num_steps": 20, "total_steps": 16 * 20 * 4, "num_minibatches": 2, "update_epochs": 1}
    result = run_block("gridworld_all", "adam", {"lr": 1e-3}, [0], ppo, progress=False)
    assert not result.diverged.any() and np.isfinite(result.final_returns).all()
