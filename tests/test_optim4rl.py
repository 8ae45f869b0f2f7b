"""Optim4RL, LinearOptim and L2LGD2: layout, update rules, initialisation, jit/vmap/grad,
the factory, and a tiny PPO run.

The references here are written from a description of the Optim4RL authors' optimizers
(components/optim.py) and the paper (arXiv:2302.01470, Alg. 1, App. C), independently of
rlopt.optimizers.optim4rl: flax modules built as that description gives the official ones
(their parameter trees pin the flat layout), a NumPy implementation of the update rules on
those trees, and hand-computed values.
"""

from __future__ import annotations

import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from rlopt.optimizers import OptimizerConfigError, TrainingSchedule, learned_optimizer, make_optimizer, validate_hparams
from rlopt.optimizers import optim4rl as o4
from rlopt.optimizers import optim4rl_settings as o4_settings

KINDS = ("optim4rl", "linear_optim", "l2lgd2")
ARCHITECTURES = ("paper", "code")
SCHEDULE = TrainingSchedule(num_updates=10, num_epochs=2, num_minibatches=4)

# --------------------------------------------------------------------------------------
# Reference modules (spec §1.2-1.4): flax GRUCell(8) per network, heads Dense layers with
# ReLU between them in an nn.Sequential; "paper" heads have hidden sizes [16, 16].

NETWORKS = {"optim4rl": ("1", "2"), "linear_optim": ("",), "l2lgd2": ("",)}
INPUT_SIZE = {"optim4rl": 1, "linear_optim": 1, "l2lgd2": 2}
OUTPUT_SIZE = {"optim4rl": 1, "linear_optim": 3, "l2lgd2": 1}
HEAD_HIDDEN = {"paper": (16, 16), "code": ()}


class ReferenceModule(nn.Module):
    kind: str
    architecture: str

    def setup(self):
        for suffix in NETWORKS[self.kind]:
            setattr(self, f"rnn{suffix}", nn.GRUCell(features=8))
            layers = []
            for width in (*HEAD_HIDDEN[self.architecture], OUTPUT_SIZE[self.kind]):
                layers += [nn.Dense(width), nn.relu]
            setattr(self, f"mlp{suffix}", nn.Sequential(layers[:-1]))

    def __call__(self, carries, inputs):
        outs = []
        for suffix, carry, x in zip(NETWORKS[self.kind], carries, inputs):
            carry, hidden = getattr(self, f"rnn{suffix}")(carry, x)
            outs.append((carry, getattr(self, f"mlp{suffix}")(hidden)))
        return outs


def reference_params(kind, architecture, seed=0, scale=1.0):
    """The flax parameter tree (as NumPy), every leaf drawn N(0, scale^2) so that biases
    and the hidden-side paths matter too."""
    module = ReferenceModule(kind, architecture)
    inputs = [jnp.zeros((1, INPUT_SIZE[kind])) for _ in NETWORKS[kind]]
    carries = [jnp.zeros((1, 8)) for _ in NETWORKS[kind]]
    tree = module.init(jax.random.PRNGKey(seed), carries, inputs)["params"]
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(jax.random.PRNGKey(seed + 100), len(leaves))
    leaves = [np.asarray(scale * jax.random.normal(k, leaf.shape), np.float64) for k, leaf in zip(keys, leaves)]
    return jax.tree.unflatten(treedef, leaves)


def flat(tree) -> np.ndarray:
    return np.asarray(ravel_pytree(jax.tree.map(lambda x: np.asarray(x, np.float32), tree))[0])


# --------------------------------------------------------------------------------------
# NumPy reference (spec §1): plain GRU equations, per coordinate, rows = coordinates


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_gru(w, x, h):
    r = sigmoid(x @ w["ir"]["kernel"] + w["ir"]["bias"] + h @ w["hr"]["kernel"])
    z = sigmoid(x @ w["iz"]["kernel"] + w["iz"]["bias"] + h @ w["hz"]["kernel"])
    n = np.tanh(x @ w["in"]["kernel"] + w["in"]["bias"] + r * (h @ w["hn"]["kernel"] + w["hn"]["bias"]))
    return (1 - z) * n + z * h


def np_head(w, x):
    names = sorted(w, key=lambda name: int(name.split("_")[1]))
    for i, name in enumerate(names):
        x = x @ w[name]["kernel"] + w[name]["bias"]
        if i < len(names) - 1:
            x = np.maximum(x, 0.0)
    return x


def np_l2l_inputs(g):
    log_part = np.log(np.abs(g) + 1e-8) / 10
    return np.where(
        (log_part >= -1)[:, None],
        np.stack([log_part, np.sign(g)], 1),
        np.stack([-np.ones_like(g), np.exp(10.0) * g], 1),
    )


def np_step(kind, params, g, carries, lr, grad_clip=None):
    """One update of the N coordinates g (N,); carries: one (N, 8) per network."""
    g = np.asarray(g, np.float64)
    if grad_clip is not None:
        g = np.clip(g, -grad_clip, grad_clip)
    if kind == "optim4rl":
        inputs = [g[:, None], g[:, None] ** 2]
    elif kind == "linear_optim":
        inputs = [g[:, None]]
    else:
        inputs = [np_l2l_inputs(g)]
    new_carries, outs = [], []
    for suffix, x, h in zip(NETWORKS[kind], inputs, carries):
        new_carries.append(np_gru(params[f"rnn{suffix}"], x, h))
        outs.append(np_head(params[f"mlp{suffix}"], new_carries[-1]))
    if kind == "optim4rl":
        update = -lr * np.sign(g) * np.exp(outs[0][:, 0]) / np.sqrt(np.exp(outs[1][:, 0]) + 1e-8)
    elif kind == "linear_optim":
        update = -lr * (np.exp(outs[0][:, 0]) * g + np.exp(outs[0][:, 1]) * outs[0][:, 2])
    else:
        update = -lr * np.exp(outs[0][:, 0]) * g
    return update, new_carries


# --------------------------------------------------------------------------------------
# A small parameter tree and gradients


def tree_like(key, scale):
    k = jax.random.split(key, 3)
    return {
        "actor": {
            "Dense_0": {
                "kernel": scale * jax.random.normal(k[0], (3, 4)),
                "bias": scale * jax.random.normal(k[1], (4,)),
            }
        },
        "critic": {"Dense_0": {"kernel": scale * jax.random.normal(k[2], (3, 1))}},
    }


PARAMS = tree_like(jax.random.PRNGKey(0), 1.0)
GRADS = [tree_like(jax.random.PRNGKey(i), s) for i, s in ((1, 0.05), (2, 2.0), (3, 0.5))]  # step 2 is clipped
PPO_EXTRAS = dict(
    update_index=jnp.int32(0),
    num_updates=jnp.int32(10),
    epoch_index=jnp.int32(0),
    num_epochs=jnp.int32(2),
    minibatch_index=jnp.int32(0),
    num_minibatches=jnp.int32(4),
    activations={},
    actor_mask={},
    key=jax.random.PRNGKey(0),
)


def config(kind, architecture="paper", lr=0.1, grad_clip=None):
    return o4.GruOptimizerConfig(kind, lr, architecture, grad_clip)


def run_steps(vector, cfg, grads=GRADS, params=PARAMS):
    tx = o4.gru_optimizer(vector, cfg)
    state = tx.init(params)
    updates = []
    for g in grads:
        u, state = tx.update(g, state, params, **PPO_EXTRAS)
        updates.append(u)
    return updates, state


# --------------------------------------------------------------------------------------
# Layout


@pytest.mark.parametrize(
    "kind,architecture,count",
    [
        ("optim4rl", "code", 514),
        ("optim4rl", "paper", 1362),
        ("linear_optim", "code", 275),
        ("linear_optim", "paper", 715),
        ("l2lgd2", "code", 281),
        ("l2lgd2", "paper", 705),
    ],
)
def test_meta_parameter_counts(kind, architecture, count):
    """514 = 2 x (GRU 248 + Dense 9) (spec §1.2); the paper's heads add 8*16+16 + 16*16+16 +
    16*O+O per network instead of 8*O+O; 275 and 281 as spec §1.3-1.4."""
    assert o4.num_meta_params(config(kind, architecture)) == count
    assert flat(reference_params(kind, architecture)).size == count


def test_code_layout_literal_offsets():
    """optim4rl code: heads first (mlp1, mlp2: bias, kernel), then rnn1, rnn2 (sorted leaves)."""
    vector = np.arange(514, dtype=np.float32)
    tree = o4.unflatten(jnp.asarray(vector), config("optim4rl", "code"))
    assert np.array_equal(tree["mlp1"]["layers_0"]["bias"], [0])
    assert np.array_equal(tree["mlp2"]["layers_0"]["kernel"][:, 0], np.arange(10, 18))
    assert np.array_equal(tree["rnn1"]["hn"]["bias"], np.arange(18, 26))
    assert np.array_equal(tree["rnn1"]["iz"]["kernel"][0], np.arange(258, 266))
    assert np.array_equal(tree["rnn2"]["hn"]["kernel"][0], np.arange(274, 282))
    assert np.array_equal(tree["rnn2"]["iz"]["kernel"][0], np.arange(506, 514))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_layout_is_ravel_of_the_flax_tree(kind, architecture):
    reference = reference_params(kind, architecture)
    vector = flat(reference)
    tree = o4.unflatten(jnp.asarray(vector), config(kind, architecture))
    assert jax.tree.structure(tree) == jax.tree.structure(reference)
    for mine, theirs in zip(jax.tree.leaves(tree), jax.tree.leaves(reference)):
        assert mine.shape == theirs.shape
        np.testing.assert_array_equal(mine, np.float32(theirs))
    np.testing.assert_array_equal(ravel_pytree(tree)[0], vector)  # round trip


def test_unflatten_rejects_wrong_length():
    with pytest.raises(OptimizerConfigError, match=r"code architecture.*\(514,\)"):
        o4.unflatten(jnp.zeros(515), config("optim4rl", "code"))


# --------------------------------------------------------------------------------------
# The update against the references


def test_numpy_gru_matches_flax_gru_cell():
    """The NumPy reference's GRU equations are flax's (spec §1.2)."""
    cell = nn.GRUCell(features=8)
    rng = np.random.default_rng(0)
    x, h = rng.normal(size=(5, 2)), rng.normal(size=(5, 8))
    params = cell.init(jax.random.PRNGKey(3), jnp.asarray(h, jnp.float32), jnp.asarray(x, jnp.float32))
    params = jax.tree.map(lambda leaf: leaf + 0.3, params)  # non-zero biases
    want, _ = cell.apply(params, jnp.asarray(h, jnp.float32), jnp.asarray(x, jnp.float32))
    got = np_gru(jax.tree.map(lambda leaf: np.asarray(leaf, np.float64), params["params"]), x, h)
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("grad_clip", [None, 1.0])
def test_three_steps_match_numpy_reference(kind, architecture, grad_clip):
    """Carried hidden state over three steps; the second step's gradients reach |g| ~ 5, so
    clipping at 1 changes them."""
    reference = reference_params(kind, architecture, seed=1, scale=0.5)
    lr = 0.03
    updates, state = jax.jit(run_steps, static_argnums=1)(flat(reference), config(kind, architecture, lr, grad_clip))
    carries = [np.zeros((ravel_pytree(PARAMS)[0].size, 8)) for _ in NETWORKS[kind]]
    for g, u in zip(GRADS, updates):
        want, carries = np_step(kind, reference, np.asarray(ravel_pytree(g)[0]), carries, lr, grad_clip)
        np.testing.assert_allclose(ravel_pytree(u)[0], want, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(state.carry, np.stack([c.T for c in carries]), atol=2e-6)
    assert jax.tree.structure(updates[0]) == jax.tree.structure(PARAMS)


def test_clipping_is_elementwise():
    cfg = config("optim4rl", "code", grad_clip=0.5)
    vector = o4_settings.initial_vector(cfg, 0)
    clipped = run_steps(vector, cfg, grads=[{"p": jnp.array([3.0, -0.2, -7.0])}], params={"p": jnp.ones(3)})[0][0]
    plain = run_steps(
        vector, config("optim4rl", "code"), grads=[{"p": jnp.array([0.5, -0.2, -0.5])}], params={"p": jnp.ones(3)}
    )[0][0]
    np.testing.assert_array_equal(clipped["p"], plain["p"])


def set_leaves(cfg, values: dict) -> jnp.ndarray:
    """A zero vector with some leaves set: {"rnn1.in.kernel": 1.0, ...}."""
    tree = jax.tree.map(np.zeros_like, o4.unflatten(jnp.zeros(o4.num_meta_params(cfg)), cfg))
    for path, value in values.items():
        node = tree
        *parents, leaf = path.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = np.full(node[leaf].shape, value, np.float32)
    return jnp.asarray(ravel_pytree(tree)[0])


def test_hand_computed_optim4rl_two_steps():
    """All weights zero except W_in = 1 (GRU 1), the head-1 kernel = 1/4, the head-2 bias = log 4.
    Step 1 (g = 0.5, h = 0): r = z = 1/2, n = tanh(0.5) = 0.4621172, h' = n/2 = 0.2310586,
    o1 = 8 h'/4 = 0.4621172, v = 4, u = -0.1 e^o1 / 2 = -0.0793716.
    Step 2 (g = -0.5): n = -0.4621172, h' = n/2 + h/2 = -0.1155293, o1 = -0.2310586,
    u = -0.1 (-1) e^o1 / 2 = 0.0396846."""
    cfg = config("optim4rl", "code")
    vector = set_leaves(cfg, {"rnn1.in.kernel": 1.0, "mlp1.layers_0.kernel": 0.25, "mlp2.layers_0.bias": math.log(4.0)})
    updates, state = run_steps(
        vector, cfg, grads=[{"p": jnp.array([0.5])}, {"p": jnp.array([-0.5])}], params={"p": jnp.ones(1)}
    )
    np.testing.assert_allclose([u["p"][0] for u in updates], [-0.0793716, 0.0396846], rtol=1e-5)
    np.testing.assert_allclose(state.carry[0, :, 0], -0.1155293, rtol=1e-5)
    np.testing.assert_array_equal(state.carry[1], 0.0)


def test_hand_computed_paper_heads_and_baselines():
    """Zero GRUs give h' = 0, so every head outputs its last bias:
    optim4rl paper (o1 = log 2, o2 = 0): u = -0.1 sign(g) 2 / sqrt(1 + 1e-8);
    linear_optim (o = log 2, log 3, 0.5): u = -0.1 (2 g + 3 * 0.5);
    l2lgd2 (o = log 2): u = -0.1 * 2 g."""
    g = {"p": jnp.array([0.2, -0.4])}
    params = {"p": jnp.ones(2)}
    cases = [
        ("optim4rl", "paper", {"mlp1.layers_4.bias": math.log(2.0)}, [-0.2, 0.2]),
        ("linear_optim", "code", {"mlp.layers_0.bias": [math.log(2.0), math.log(3.0), 0.5]}, [-0.19, -0.07]),
        ("linear_optim", "paper", {"mlp.layers_4.bias": [math.log(2.0), math.log(3.0), 0.5]}, [-0.19, -0.07]),
        ("l2lgd2", "code", {"mlp.layers_0.bias": math.log(2.0)}, [-0.04, 0.08]),
    ]
    for kind, architecture, leaves, want in cases:
        cfg = config(kind, architecture)
        update = run_steps(set_leaves(cfg, leaves), cfg, grads=[g], params=params)[0][0]
        np.testing.assert_allclose(update["p"], want, rtol=1e-6, err_msg=f"{kind} {architecture}")


def test_hand_computed_l2l_preprocessing():
    """log(|g| + 1e-8) / 10 >= -1 -> (that, sign g); else (-1, e^10 g)."""
    got = o4.l2l_inputs(jnp.array([0.5, -1e-6, 0.0]))
    want = [[-0.0693147, -1.0, -1.0], [1.0, -0.0220265, 0.0]]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_diagnostics_update_size():
    cfg = config("optim4rl", "code")
    updates, state = run_steps(o4_settings.initial_vector(cfg, 0), cfg)
    p, u = (np.abs(np.asarray(ravel_pytree(t)[0], np.float64)) for t in (PARAMS, updates[-1]))
    np.testing.assert_allclose(state.diagnostics["update_size"], u.mean() / p.mean(), rtol=1e-5)
    tx = o4.gru_optimizer(o4_settings.initial_vector(cfg, 0), cfg)
    assert set(tx.init(PARAMS).diagnostics) == {"update_size"}
    assert np.isnan(tx.update(GRADS[0], tx.init(PARAMS))[1].diagnostics["update_size"])  # no params given


# --------------------------------------------------------------------------------------
# Initialisation


@pytest.mark.parametrize("kind", KINDS)
def test_initial_vector_is_flax_default_init(kind):
    cfg = config(kind, "paper")
    vector = o4_settings.initial_vector(cfg, 7)
    assert vector.dtype == np.float32 and vector.shape == (o4.num_meta_params(cfg),)
    np.testing.assert_array_equal(vector, o4_settings.initial_vector(cfg, 7))
    assert not np.array_equal(vector, o4_settings.initial_vector(cfg, 8))
    tree = jax.tree.map(np.asarray, o4.unflatten(jnp.asarray(vector), cfg))
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        names = [p.key for p in path]
        if names[-1] == "bias":
            np.testing.assert_array_equal(leaf, 0.0)
        elif names[0].startswith("rnn") and names[1].startswith("h"):  # recurrent: orthogonal
            np.testing.assert_allclose(leaf.T @ leaf, np.eye(8), atol=1e-5)
        else:  # lecun_normal: truncated at 2 std of sqrt(1 / fan_in) / 0.8796
            assert np.abs(leaf).max() <= 2 * math.sqrt(1 / leaf.shape[0]) / 0.87962566 + 1e-6
    hidden_layer = tree["mlp1" if kind == "optim4rl" else "mlp"]["layers_2"]["kernel"]  # 16 x 16
    assert 0.8 < hidden_layer.std() * math.sqrt(16) < 1.2  # variance 1 / fan_in


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_initialised_optim4rl_is_sign_sgd_for_small_gradients(architecture):
    """Spec §1.2: zero hidden state and the default init give o1, o2 ~ 0, so u ~ -lr sign(g)
    for |g| <= 1e-2."""
    cfg = config("optim4rl", architecture, lr=1.0)
    g = jnp.array([1e-2, -3e-3, 1e-4, -1e-2])
    for seed in range(3):
        update = run_steps(o4_settings.initial_vector(cfg, seed), cfg, grads=[{"p": g}], params={"p": g})[0][0]["p"]
        np.testing.assert_allclose(update, -np.sign(g), atol=0.1)


# --------------------------------------------------------------------------------------
# jit, vmap, grad


@pytest.mark.parametrize("kind", KINDS)
def test_vmap_over_meta_vectors(kind):
    cfg = config(kind, "paper")
    population = jnp.asarray(o4_settings.initial_vector(cfg, 0)) + 0.1 * jax.random.normal(
        jax.random.PRNGKey(4), (3, o4.num_meta_params(cfg))
    )
    batched = jax.jit(jax.vmap(lambda v: run_steps(v, cfg)[0][-1]))(population)
    for i in range(3):
        single = run_steps(population[i], cfg)[0][-1]
        np.testing.assert_allclose(
            ravel_pytree(jax.tree.map(lambda leaf, i=i: leaf[i], batched))[0],
            ravel_pytree(single)[0],
            rtol=1e-5,
            atol=1e-7,
        )


def meta_loss(vector, cfg, grads):
    """Parameters after the given (fixed) gradients, scored by a smooth function."""
    params = PARAMS
    updates, _ = run_steps(vector, cfg, grads=grads, params=params)
    for u in updates:
        params = optax.apply_updates(params, u)
    return sum(jnp.sum(jnp.sin(leaf) + 0.5 * leaf**2) for leaf in jax.tree.leaves(params))


def np_meta_loss(vector, kind, architecture, lr, grad_clip):
    """meta_loss in float64 NumPy, the vector read in the flax tree's leaf order."""
    leaves, treedef = jax.tree.flatten(reference_params(kind, architecture))
    offsets = np.cumsum([0] + [leaf.size for leaf in leaves])
    params = jax.tree.unflatten(
        treedef,
        [
            np.asarray(vector[start:stop], np.float64).reshape(leaf.shape)
            for leaf, start, stop in zip(leaves, offsets[:-1], offsets[1:])
        ],
    )
    flat_params = np.asarray(ravel_pytree(PARAMS)[0], np.float64)
    carries = [np.zeros((flat_params.size, 8)) for _ in NETWORKS[kind]]
    for g in GRADS:
        update, carries = np_step(kind, params, np.asarray(ravel_pytree(g)[0]), carries, lr, grad_clip)
        flat_params = flat_params + update
    return np.sum(np.sin(flat_params) + 0.5 * flat_params**2)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_meta_gradient_matches_finite_difference(kind, architecture):
    """With fixed gradients the first-order meta-gradient is the true derivative: jax.grad
    through three updates against a central difference of the float64 NumPy reference,
    along a random direction."""
    lr, grad_clip = 0.2, 1.0
    cfg = config(kind, architecture, lr, grad_clip)
    vector = flat(reference_params(kind, architecture, seed=1, scale=0.5))
    grad = jax.jit(jax.grad(meta_loss), static_argnums=1)(jnp.asarray(vector), cfg, GRADS)
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)
    direction = np.random.default_rng(9).normal(size=vector.shape)
    direction /= np.linalg.norm(direction)
    step = 1e-5
    finite_difference = (
        np_meta_loss(vector + step * direction, kind, architecture, lr, grad_clip)
        - np_meta_loss(vector - step * direction, kind, architecture, lr, grad_clip)
    ) / (2 * step)
    np.testing.assert_allclose(np.dot(np.asarray(grad, np.float64), direction), finite_difference, rtol=1e-3)


def test_meta_gradient_is_first_order_in_the_agent_gradient():
    """The gradient enters as a constant (Alg. 1's stop-gradient): differentiating an unroll
    whose gradients depend on the parameters gives the derivative with those gradients fixed."""
    cfg = config("optim4rl", "code", lr=0.05)
    vector = jnp.asarray(o4_settings.initial_vector(cfg, 2))
    inner_loss = lambda p: sum(jnp.sum(jnp.cos(leaf)) for leaf in jax.tree.leaves(p))  # noqa: E731

    def unroll(v, fixed=None):
        """Three steps on inner_loss's gradients, or on ``fixed`` ones; (loss, gradients used)."""
        tx = o4.gru_optimizer(v, cfg)
        params, state, used = PARAMS, tx.init(PARAMS), []
        for step in range(3):
            used.append(jax.grad(inner_loss)(params) if fixed is None else fixed[step])
            u, state = tx.update(used[-1], state, params)
            params = optax.apply_updates(params, u)
        return inner_loss(params), used

    fixed = unroll(vector)[1]
    through_gradients = jax.jit(jax.grad(lambda v: unroll(v)[0]))(vector)
    with_fixed = jax.jit(jax.grad(lambda v: unroll(v, fixed)[0]))(vector)
    np.testing.assert_allclose(through_gradients, with_fixed, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------------------
# The factory and the learned-optimizer contract


def test_registered_with_the_contract():
    for kind in KINDS:
        learned = learned_optimizer(kind)
        cfg = learned.config(validate_hparams(kind, {"lr": 3e-4, "grad_clip": 1.0}))
        assert learned.describe(cfg) == {
            "name": kind,
            "kind": kind,
            "lr": 3e-4,
            "architecture": "paper",
            "grad_clip": 1.0,
        }
        assert learned.num_meta_params(cfg) == {"optim4rl": 1362, "linear_optim": 715, "l2lgd2": 705}[kind]
        assert not learned.has_noise(cfg)
    assert validate_hparams("optim4rl", {"lr": 1e-3}) == {
        "lr": 1e-3,
        "grad_clip": None,
        "architecture": "paper",
        "weights": None,
    }


def test_factory_builds_from_weights_or_the_initialisation(tmp_path):
    hparams = {"lr": 0.01, "grad_clip": 1.0, "architecture": "code"}
    cfg = config("optim4rl", "code", lr=0.01, grad_clip=1.0)
    path = tmp_path / "phi.npy"
    np.save(path, o4_settings.initial_vector(cfg, 5))
    for built, vector in [
        (make_optimizer("optim4rl", {**hparams, "weights": str(path)}, SCHEDULE), o4_settings.initial_vector(cfg, 5)),
        (make_optimizer("optim4rl", hparams, SCHEDULE), o4_settings.initial_vector(cfg, 0)),
    ]:
        got, _ = built.update(GRADS[1], built.init(PARAMS), PARAMS, **PPO_EXTRAS)
        want = run_steps(jnp.asarray(vector), cfg, grads=[GRADS[1]])[0][0]
        np.testing.assert_array_equal(ravel_pytree(got)[0], ravel_pytree(want)[0])


def test_factory_validation_errors(tmp_path):
    code_file = tmp_path / "code.npy"
    np.save(code_file, np.zeros(514, np.float32))
    odd_file = tmp_path / "odd.npy"
    np.save(odd_file, np.zeros(100, np.float32))
    bad = [
        ("optim4rl", {"lr": 1e-3, "learning_rate": 1e-3}, "unknown hyperparameter.*'learning_rate'"),
        ("optim4rl", {}, "'lr' is required"),
        ("linear_optim", {"lr": -1.0}, "'lr' must be a positive finite number"),
        ("l2lgd2", {"lr": "fast"}, "'lr' must be a positive finite number"),
        ("optim4rl", {"lr": float("nan")}, "'lr' must be a positive finite number"),
        ("optim4rl", {"lr": True}, "'lr' must be a positive finite number"),
        ("optim4rl", {"lr": 1e-3, "grad_clip": -1}, "'grad_clip' must be a positive.*omit it"),
        ("optim4rl", {"lr": 1e-3, "architecture": "mlp"}, "'architecture' must be one of \\['paper', 'code'\\]"),
        (
            "optim4rl",
            {"lr": 1e-3, "weights": str(code_file)},
            re.escape("has 514 values (the 'code' architecture's length") + ".*expects 1362",
        ),
        ("optim4rl", {"lr": 1e-3, "weights": str(odd_file), "architecture": "code"}, "has 100 values; .*expects 514"),
        ("l2lgd2", {"lr": 1e-3, "weights": str(tmp_path / "absent.npy")}, "does not exist"),
        ("linear_optim", {"lr": 1e-3, "weights": 3}, "'weights' must be a path"),
    ]
    for kind, hparams, message in bad:
        with pytest.raises(OptimizerConfigError, match=message) as err:
            make_optimizer(kind, hparams, SCHEDULE)
        assert f"optimizer '{kind}'" in str(err.value)
    assert validate_hparams("optim4rl", {"lr": 1e-3, "weights": str(code_file), "architecture": "code"})


# --------------------------------------------------------------------------------------
# PPO


TINY_PPO = {
    "num_envs": 8,
    "num_steps": 16,
    "total_steps": 8 * 16 * 3,
    "num_minibatches": 4,
    "update_epochs": 2,
    "hidden_size": 16,
}


@pytest.mark.parametrize(
    "kind,hparams",
    [
        ("optim4rl", {"lr": 3e-3, "grad_clip": 1.0}),
        ("linear_optim", {"lr": 3e-3, "architecture": "code"}),
    ],
)
def test_tiny_ppo_run(kind, hparams):
    """make_optimizer inside PPO (traced lr and grad_clip, vmapped seeds): runs, logs the
    update size per update, and moves the parameters."""
    from rlopt.training import run_block  # imports the environments: only this test needs them

    block = run_block("breakout", kind, hparams, [0, 1], TINY_PPO, progress=False)
    assert not block.diverged.any()
    updates = block.updates_table()
    assert len(updates) == 2 * block.config.num_updates
    assert np.all(np.isfinite(updates["update_size"])) and np.all(updates["update_size"] > 0)
