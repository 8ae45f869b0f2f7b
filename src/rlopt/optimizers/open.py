"""OPEN, the learned optimizer of Goldie et al. (NeurIPS 2024, arXiv:2407.07082), written from
the paper and a description of the authors' code, not from the code itself; everything this
implementation relies on is stated below.

A small network is applied independently to every scalar parameter of the joint tree
``{"actor": ..., "critic": ...}``: a GRU cell (carry kept across the whole run) followed by
an MLP with LayerNorm, fed with up to 19 features per parameter:

    idx  feature                                   normalised per tensor?
    0    parameter value                           yes
    1-6  sign of momentum, decays 0.1 ... 0.9999   yes
    7-12 log(|momentum| + 1e-13), same decays      yes
    13   sign of gradient                          yes
    14   log(|gradient| + 1e-13)                   yes
    15   training proportion                       no
    16   layer proportion                          no
    17   batch proportion                          no
    18   dormancy                                  no

The network outputs (o0, o1[, o2]); the update of parameter i is

    u_i = o0 * 1e-3 * exp(1e-3 * o1)  [+ o2 * 1e-3 * eps_i on actor leaves, eps_i ~ N(0, 1)]

minus the single mean of all updates of actor and critic together, applied as p <- p - u.

Feature sets (``OpenConfig.features``); an ablation drops inputs, so the GRU input
kernels lose those rows and the meta-parameter vector gets shorter:

    "full"                    all 19 features (the authors' pretrained files)
    "no_training_proportion"  drops feature 15
    "no_layer_proportion"     drops feature 16
    "no_batch_proportion"     drops feature 17
    "no_dormancy"             drops feature 18
    "no_features"             only features 1-14 (momentum and gradient); needs noise=False

``noise=False`` ("no stochasticity") removes the third output, so the last Dense layer has
two outputs. ``separated=True`` gives actor and critic their own meta-parameters.

Flat meta-parameter layout (what ES perturbs and what ``load_weights`` reads): the leaves
of the tree below, concatenated row-major in sorted-key order (= ``ravel_pytree``).
For "full" features with noise it equals the authors' files (their flax names in brackets):

    gru  [gru_params/params]   hn.bias (H,), hn.kernel (H,H), hr.kernel (H,H), hz.kernel (H,H),
                               in.bias (H,), in.kernel (I,H), ir.bias (H,), ir.kernel (I,H),
                               iz.bias (H,), iz.kernel (I,H)
    mlp  [params/params]       layers_0 (Dense H->M) bias, kernel; layers_1 (LayerNorm) bias, scale;
                               layers_3 (Dense M->M) bias, kernel; layers_4 (LayerNorm) bias, scale;
                               layers_6 (Dense M->O) bias (O,), kernel (M,O)

with H, M = 8, 16 ("small", 1211 values) or 16, 32 ("larger", 3571 values), I = number of
features, O = 3 with noise else 2. Separated: the actor's vector, then the critic's.

Cost (benchmarks/open_overhead.py profiles one update part by part). Per step the
parameters and gradient are flattened once; everything per parameter is an (F, N) array,
one column per parameter, so the network is a handful of wide products over all N
columns: the three GRU gates in one (I x 3H) input-side and one (H x 3H) hidden-side
product, each Dense layer one product. Each LayerNorm's centring is folded into the Dense
layer before it (see ``_dense_layer_norm``), and the variance is a sum of rows mostly
fused with the squares (``_mean_over_rows``). The learned noise is jax's default
threefry N(0, 1), one draw over the whole tree; the network runs on N rounded up to even
columns because XLA's CPU backend draws an odd count about 8x slower
(``network_columns``).

Factory hyperparameters (``make_optimizer("open", hparams, schedule)``): "weights" (path to
a .npy; absent = all-zero meta-parameters, the ES initialisation), "size" (default: from the
file's length, else "small"), "features" ("full"), "noise" (true unless "no_features"),
"separated" (false).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from rlopt.optimizers.base import OptimizerConfigError
from rlopt.optimizers.open_settings import (
    FEATURE_NAMES,
    FEATURE_SETS,
    MOMENTUM_DECAYS,
    OpenConfig,
    meta_param_layout,
    num_meta_params,
)

LOG_EPS = 1e-13
NORMALISATION_EPS = 1e-5
DORMANCY_EPS = 1e-11
LAYER_NORM_EPS = 1e-6
STEP_MULT = 1e-3
EXP_MULT = 1e-3


NETWORKS = ("actor", "critic")


class OpenState(NamedTuple):
    """One column per parameter of the joint tree, in ravel_pytree order, and the last
    step's diagnostics (see :func:`step_diagnostics`)."""

    momentum: jax.Array  # (6, N)
    carry: jax.Array  # (GRU width, network_columns(N))
    diagnostics: dict  # name -> float32 ()


# --------------------------------------------------------------------------------------
# Meta-parameters: flat vector -> tree (the layout and loading: rlopt.optimizers.open_settings)


def _unflatten_one_network(vector: jax.Array, cfg: OpenConfig) -> dict:
    tree: dict = {}
    offset = 0
    for path, shape in meta_param_layout(cfg):
        size = math.prod(shape)
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = vector[offset : offset + size].reshape(shape)
        offset += size
    return tree


def unflatten(vector: jax.Array, cfg: OpenConfig) -> dict:
    """Flat vector -> meta-parameter tree ({"actor": tree, "critic": tree} if separated).

    Inverse of ``jax.flatten_util.ravel_pytree``; works on traced vectors.
    """
    expected = num_meta_params(cfg)
    if vector.shape != (expected,):
        raise OptimizerConfigError(f"OPEN meta-parameters for {cfg} must have shape ({expected},), got {vector.shape}")
    if not cfg.separated:
        return _unflatten_one_network(vector, cfg)
    half = expected // 2
    return {
        "actor": _unflatten_one_network(vector[:half], cfg),
        "critic": _unflatten_one_network(vector[half:], cfg),
    }


# --------------------------------------------------------------------------------------
# The per-parameter network. Everything per parameter is kept "feature-major": one row
# per feature or hidden unit, one column per parameter, shape (F, N). XLA on CPU
# vectorises along the last axis, so (N, 8)-shaped arrays would run element-wise work
# several times slower. The public helpers below take the natural (N, F) rows.


def _matmul_columns(kernel: jax.Array, x: jax.Array) -> jax.Array:
    """kernel (F_in, F_out) applied to columns x (F_in, N) -> (F_out, N).

    Full float32 even where the backend would default to TF32/bf16 passes (GPU/TPU)."""
    return jax.lax.dot_general(kernel, x, (((0,), (0,)), ((), ())), precision=jax.lax.Precision.HIGHEST)


def _mean_over_rows(x: jax.Array) -> jax.Array:
    """(F, N) -> (1, N) by adding halves of the rows until one is left. XLA fuses the
    first halving with what produces x, so only F/2 rows are written out: on CPU its
    reduction over a leading axis is ~10x slower, and a product with a ones vector
    first writes out all F rows (~1.5-2x slower at F = 16, 32)."""
    count = x.shape[0]
    while x.shape[0] > 1:
        half = x.shape[0] // 2
        x = jnp.concatenate([x[:half] + x[half : 2 * half], x[2 * half :]])
    return x * (1.0 / count)


def _gru_cell(gru: dict, inputs: jax.Array, carry: jax.Array) -> jax.Array:
    """flax GRUCell on columns: hidden-side biases only on the candidate gate; the three
    gates share one input-side and one hidden-side product."""
    h = carry.shape[0]
    input_kernel = jnp.concatenate([gru["ir"]["kernel"], gru["iz"]["kernel"], gru["in"]["kernel"]], axis=1)
    input_bias = jnp.concatenate([gru["ir"]["bias"], gru["iz"]["bias"], gru["in"]["bias"]])[:, None]
    hidden_kernel = jnp.concatenate([gru["hr"]["kernel"], gru["hz"]["kernel"], gru["hn"]["kernel"]], axis=1)
    from_inputs = _matmul_columns(input_kernel, inputs) + input_bias
    from_carry = _matmul_columns(hidden_kernel, carry)
    reset = jax.nn.sigmoid(from_inputs[:h] + from_carry[:h])
    update = jax.nn.sigmoid(from_inputs[h : 2 * h] + from_carry[h : 2 * h])
    candidate = jnp.tanh(from_inputs[2 * h :] + reset * (from_carry[2 * h :] + gru["hn"]["bias"][:, None]))
    return (1.0 - update) * candidate + update * carry


def _dense(layer: dict, x: jax.Array) -> jax.Array:
    return _matmul_columns(layer["kernel"], x) + layer["bias"][:, None]


def _dense_layer_norm(dense: dict, norm: dict, x: jax.Array) -> jax.Array:
    """LayerNorm(dense(x)). Centring is linear, so it is folded into the Dense layer:
    y - mean(y) = (W - mean_out W)^T x + (b - mean(b)); only the variance is left to
    take over the rows, which saves a mean and a pass over (M, N) per LayerNorm."""
    kernel, bias = dense["kernel"], dense["bias"]
    centred = _dense({"kernel": kernel - jnp.mean(kernel, axis=1, keepdims=True), "bias": bias - jnp.mean(bias)}, x)
    variance = _mean_over_rows(jnp.square(centred))
    return centred * jax.lax.rsqrt(variance + LAYER_NORM_EPS) * norm["scale"][:, None] + norm["bias"][:, None]


def _mlp(mlp: dict, x: jax.Array) -> jax.Array:
    x = jax.nn.relu(_dense_layer_norm(mlp["layers_0"], mlp["layers_1"], x))
    x = jax.nn.relu(_dense_layer_norm(mlp["layers_3"], mlp["layers_4"], x))
    return _dense(mlp["layers_6"], x)


def _apply_network_columns(meta: dict, inputs: jax.Array, carry: jax.Array) -> tuple[jax.Array, jax.Array]:
    new_carry = _gru_cell(meta["gru"], inputs, carry)
    return new_carry, _mlp(meta["mlp"], new_carry)


def apply_network(meta: dict, inputs: jax.Array, carry: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One network-optimizer (tree from ``unflatten``) on inputs (..., I) and carry (..., H).

    Returns (new carry (..., H), outputs (..., O)).
    """
    batch = inputs.shape[:-1]
    new_carry, out = _apply_network_columns(
        meta, inputs.reshape(-1, inputs.shape[-1]).T, carry.reshape(-1, carry.shape[-1]).T
    )
    return new_carry.T.reshape(*batch, -1), out.T.reshape(*batch, -1)


# --------------------------------------------------------------------------------------
# Features, computed on the joint tree flattened in ravel_pytree order (actor leaves
# first, then critic; sorted keys): one batched computation instead of one per leaf
# keeps the compiled program small.


def _update_momentum_columns(momentum: jax.Array, grad: jax.Array) -> jax.Array:
    decays = jnp.asarray(MOMENTUM_DECAYS, dtype=grad.dtype)[:, None]
    return decays * momentum + (1.0 - decays) * grad[None, :]


def update_momentum(momentum: jax.Array, grad: jax.Array) -> jax.Array:
    """Six exponential moving averages of the gradient, no bias correction; rows (N, 6)."""
    return _update_momentum_columns(momentum.T, grad).T


def _signed_log(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return jnp.sign(x), jnp.log(jnp.abs(x) + LOG_EPS)


def dormancy_scores(mean_abs_activation: jax.Array) -> jax.Array:
    """Each neuron's activation relative to the layer mean (1 = average neuron)."""
    shifted = mean_abs_activation + DORMANCY_EPS
    return shifted / jnp.sum(jnp.abs(shifted)) * shifted.size


def _proportion(index: jax.Array, count: jax.Array) -> jax.Array:
    """index / (count - 1) in [0, 1]; 0 when there is a single step."""
    return jnp.asarray(index, jnp.float32) / jnp.maximum(jnp.asarray(count, jnp.float32) - 1.0, 1.0)


def _layer_order(name: str) -> tuple:
    """Layers numbered by depth (PPO's Dense_0 ... Dense_10, A2C's Conv_0, Dense_1, ...)
    numerically, then the rest (log_std) by name."""
    prefix, _, number = name.rpartition("_")
    return (0, int(number), "") if prefix and number.isdigit() else (1, 0, name)


@dataclass(frozen=True)
class _Leaf:
    """Static facts about one leaf of the parameter tree."""

    network: str
    layer: str
    shape: tuple[int, ...]
    start: int  # first element in ravel_pytree order
    layer_proportion: float

    @property
    def stop(self) -> int:
        return self.start + math.prod(self.shape)


def _leaves(params: dict) -> tuple[_Leaf, ...]:
    """Layers are a network's top-level entries (Dense_0, Dense_1, Dense_2[, log_std]);
    layer proportion = index / (number of layers - 1), per network."""
    order = {net: sorted(layers, key=_layer_order) for net, layers in params.items()}
    leaves, start = [], 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        net, name = path[0].key, path[1].key
        proportion = order[net].index(name) / max(len(order[net]) - 1, 1)
        leaves.append(_Leaf(net, name, tuple(leaf.shape), start, proportion))
        start += leaf.size
    return tuple(leaves)


def _normalise_per_tensor(block: jax.Array, leaves: tuple[_Leaf, ...]) -> jax.Array:
    """x * rsqrt(1e-5 + mean(x^2)), the mean over each tensor, per feature row."""
    pieces = []
    for leaf in leaves:
        piece = block[:, leaf.start : leaf.stop]
        pieces.append(piece * jax.lax.rsqrt(NORMALISATION_EPS + jnp.mean(jnp.square(piece), axis=1, keepdims=True)))
    return jnp.concatenate(pieces, axis=1)


def _dormancy(activations: dict, leaves: tuple[_Leaf, ...]) -> jax.Array:
    """Per element, the score of its output neuron: a kernel (in, out) takes its output
    neuron's score along the fan-in axis; log_std's single score is broadcast."""
    scores = {}
    for leaf in leaves:
        if (leaf.network, leaf.layer) not in scores:
            scores[leaf.network, leaf.layer] = dormancy_scores(activations[leaf.network][leaf.layer])
    return jnp.concatenate([jnp.broadcast_to(scores[leaf.network, leaf.layer], leaf.shape).ravel() for leaf in leaves])


def _input_columns(
    cfg: OpenConfig,
    leaves: tuple[_Leaf, ...],
    flat_params: jax.Array,
    flat_grads: jax.Array,
    momentum: jax.Array,
    *,
    update_index,
    num_updates,
    epoch_index,
    num_epochs,
    activations,
) -> jax.Array:
    """The network inputs, (number of features of ``cfg``, N), from the flat parameters
    and gradient (N,) and the already updated momentum (6, N), each flattened once per
    step by the caller."""
    uses_dormancy = FEATURE_NAMES.index("dormancy") in cfg.feature_indices
    if uses_dormancy and activations is None:
        raise ValueError(f"OPEN features {cfg.features!r} need the 'activations' extra argument")
    momentum_sign, momentum_log = _signed_log(momentum)
    grad_sign, grad_log = _signed_log(flat_grads)
    gradient_block = jnp.concatenate(
        [flat_params[None], momentum_sign, momentum_log, grad_sign[None], grad_log[None]], axis=0
    )
    dormancy = _dormancy(activations, leaves) if uses_dormancy else jnp.zeros_like(flat_params)
    layer_proportion = np.concatenate(
        [np.full(math.prod(leaf.shape), leaf.layer_proportion, np.float32) for leaf in leaves]
    )
    unnormalised = jnp.stack(
        jnp.broadcast_arrays(
            _proportion(update_index, num_updates),
            layer_proportion,
            _proportion(epoch_index, num_epochs),
            dormancy,
        ),
        axis=0,
    )
    features = jnp.concatenate([_normalise_per_tensor(gradient_block, leaves), unnormalised], axis=0)
    if cfg.feature_indices == FEATURE_SETS["full"]:
        return features
    return features[np.asarray(cfg.feature_indices)]


def compute_inputs(
    cfg: OpenConfig,
    params: dict,
    grads: dict,
    momentum: jax.Array,
    *,
    update_index: jax.Array,
    num_updates: jax.Array,
    epoch_index: jax.Array,
    num_epochs: jax.Array,
    activations: dict | None,
) -> jax.Array:
    """The network inputs of every parameter, (N, number of features of ``cfg``), rows in
    ravel_pytree order. ``momentum`` (N, 6) is the already updated momentum."""
    return _input_columns(
        cfg,
        _leaves(params),
        ravel_pytree(params)[0],
        ravel_pytree(grads)[0],
        momentum.T,
        update_index=update_index,
        num_updates=num_updates,
        epoch_index=epoch_index,
        num_epochs=num_epochs,
        activations=activations,
    ).T


def network_columns(num_params: int) -> int:
    """Columns the per-parameter network runs on: N rounded up to even, the extra column
    being no parameter (zero inputs, its outputs dropped). XLA's CPU backend runs the
    N(0, 1) draw (threefry, then erf_inv) about 8x slower over an odd element count
    (59,909 values: 3.3 ms, 59,908: 0.4 ms), and as slowly when a pad or slice is fused
    with it, as drawing only the actor's elements would need."""
    return num_params + num_params % 2


def diagnostic_names(cfg: OpenConfig) -> tuple[str, ...]:
    return ("update_size", "randomness") if cfg.noise else ("update_size",)


def step_diagnostics(
    step: jax.Array, noise_weight: jax.Array | None, flat_params: jax.Array, actor_mask: jax.Array | None
) -> dict:
    """The OPEN paper's App. F.3/F.4 quantities for one step, relative to the parameters:
    ``update_size`` = mean |u_hat| / mean |p| over all parameters (u_hat = the step before
    noise), ``randomness`` = mean |alpha_3 delta| / mean |p| over the actor's parameters.

    The paper averages the element-wise ratios |u_hat_i / p_i|; that is unbounded where a
    parameter is (near) zero, as every bias is at initialisation, hence ratios of means.
    """
    magnitude = jnp.mean(jnp.abs(flat_params)) + 1e-12
    diagnostics = {"update_size": jnp.mean(jnp.abs(step)) / magnitude}
    if noise_weight is not None:
        actor_magnitude = jnp.sum(jnp.abs(flat_params) * actor_mask) + 1e-12
        diagnostics["randomness"] = jnp.sum(jnp.abs(noise_weight)) / actor_magnitude
    return diagnostics


# --------------------------------------------------------------------------------------
# The optax transformation


def open_optimizer(meta_vector: jax.Array, cfg: OpenConfig) -> optax.GradientTransformationExtraArgs:
    """OPEN with the given flat meta-parameters (may be traced, e.g. vmapped by ES).

    The state holds the momentum (6, N) and GRU carry (H, ``network_columns(N)``) of the N
    parameters of the joint tree in ravel_pytree order (feature-major); both start at zero
    and are never reset.
    """
    meta = unflatten(jnp.asarray(meta_vector, jnp.float32), cfg)

    def init(params):
        num_params = ravel_pytree(params)[0].size
        return OpenState(
            momentum=jnp.zeros((len(MOMENTUM_DECAYS), num_params), jnp.float32),
            carry=jnp.zeros((cfg.gru_width, network_columns(num_params)), jnp.float32),
            diagnostics={name: jnp.float32(0.0) for name in diagnostic_names(cfg)},
        )

    def apply(inputs, carry, params):
        if not cfg.separated:
            return _apply_network_columns(meta, inputs, carry)
        if set(params) != set(NETWORKS):
            raise ValueError(f"separated OPEN needs exactly the networks {NETWORKS}, got {sorted(params)}")
        num_actor = ravel_pytree(params["actor"])[0].size  # actor columns come first (sorted keys)
        actor = _apply_network_columns(meta["actor"], inputs[:, :num_actor], carry[:, :num_actor])
        critic = _apply_network_columns(meta["critic"], inputs[:, num_actor:], carry[:, num_actor:])
        return tuple(jnp.concatenate(pair, axis=1) for pair in zip(actor, critic))

    def update(
        grads,
        state,
        params=None,
        *,
        update_index,
        num_updates,
        epoch_index,
        num_epochs,
        activations=None,
        actor_mask,
        key,
        **_unused,
    ):
        if params is None:
            raise ValueError("OPEN needs the current params: call update(grads, state, params, ...)")
        flat_params, unravel = ravel_pytree(params)
        flat_grads = ravel_pytree(grads)[0]
        momentum = _update_momentum_columns(state.momentum, flat_grads)
        inputs = _input_columns(
            cfg,
            _leaves(params),
            flat_params,
            flat_grads,
            momentum,
            update_index=update_index,
            num_updates=num_updates,
            epoch_index=epoch_index,
            num_epochs=num_epochs,
            activations=activations,
        )
        num_params = flat_params.size
        columns = network_columns(num_params)
        inputs = jnp.pad(inputs, ((0, 0), (0, columns - num_params)))
        carry, out = apply(inputs, state.carry, params)
        step = out[0] * STEP_MULT * jnp.exp(out[1] * EXP_MULT)
        mask, noise_weight, raw = None, None, step
        if cfg.noise:  # learned noise scale, actor leaves only
            mask = ravel_pytree(jax.tree.map(lambda m, p: jnp.broadcast_to(m, p.shape), actor_mask, params))[0]
            noise_weight = out[2] * STEP_MULT * jnp.pad(mask, (0, columns - num_params))
            # One draw over the whole tree (the extra column's value unused): with
            # partitionable threefry, jax's default, element i depends only on (key, i).
            raw = step + noise_weight * jax.random.normal(key, (columns,))
            noise_weight = noise_weight[:num_params]
        step, raw = step[:num_params], raw[:num_params]
        # One mean over every actor and critic update (not per tensor); optax adds the
        # returned update while OPEN subtracts u, hence -u.
        flat_updates = -(raw - jnp.mean(raw))
        diagnostics = step_diagnostics(step, noise_weight, flat_params, mask)
        return unravel(flat_updates), OpenState(momentum=momentum, carry=carry, diagnostics=diagnostics)

    return optax.GradientTransformationExtraArgs(init, update)
