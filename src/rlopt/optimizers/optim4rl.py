"""Optim4RL (Lan et al., RLC 2024, arXiv:2302.01470) and its learned baselines LinearOptim and
L2LGD2, written from the paper's text and a description of the authors' code
(sail-sg/optim4rl, components/optim.py), not from the code itself; everything this
implementation relies on is stated below.

All three run one small recurrent network independently on every scalar parameter of any
parameter tree: the same meta-parameters for every coordinate, a hidden state per
coordinate that starts at zero and is carried (never reset) across the whole run. The
gradient is first clipped elementwise to [-grad_clip, grad_clip] (when ``grad_clip`` is
set) and then enters as a constant (``stop_gradient``, the paper's Alg. 1 "g <- ⊥g"), so
meta-gradients through an unrolled run are first-order in the agent's gradients.

    optim4rl      GRU_1 on g, GRU_2 on g^2, a head on each gives o1 and o2;
                  u = -lr * sign(g) * exp(o1) / sqrt(exp(o2) + 1e-8)
    linear_optim  one GRU on g, a head with three outputs;
                  u = -lr * (exp(o1) * g + exp(o2) * o3)
    l2lgd2        one GRU on Andrychowicz et al.'s preprocessing of g (p = 10): the pair
                  (log(|g| + 1e-8) / p, sign(g)) where log(|g| + 1e-8) / p >= -1, else
                  (-1, e^p * g); a head with one output; u = -lr * exp(o) * g

u is the update added to the parameters (optax convention). GRU = flax's GRUCell (hidden 8,
tanh candidate): r = σ(W_ir x + b_ir + W_hr h), z = σ(W_iz x + b_iz + W_hz h),
n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h; the head reads h'.

Architectures (``architecture``, the same switch for all three optimizers):

    "paper"  (default) each head is an MLP with two ReLU hidden layers of 16 and a linear
             output. Our reading of the paper: App. A says "GRUs with hidden size 8, MLPs
             with hidden sizes [16, 16]" for Optim4RL and App. C.3 the same for LinearOptim
             and L2LGD2; ReLU because App. C says "unless mentioned explicitly, we use ReLU"
             (and the official code's MLPs put ReLU between their Dense layers). The inputs
             are the raw (clipped) g and g^2 that Alg. 1 writes, with eps 1e-8. The log|g|
             and sign inputs, the learned straight-through sign and eps 1e-18 of the 2023
             code belong to the earlier arXiv versions, not to the RLC paper, and are not
             offered.
    "code"   the official RLC2024 code (sail-sg/optim4rl at d2180b5): each head is a single
             Dense layer on the GRU output, the inputs as above.

Meta-parameter counts:   optim4rl  linear_optim  l2lgd2
                 paper     1362        715         705
                 code       514        275         281

Flat meta-parameter layout (what ES perturbs, meta-gradients update and ``weights`` files
hold): the leaves of the flax parameter tree of the official modules, concatenated
row-major in sorted-key order (= ``ravel_pytree``), so an official ``param.pickle``
converts with ``ravel_pytree(params["params"])``:

    mlp1  [optim4rl; "mlp" for the others]  layers_0 bias (D1,), kernel (H, D1);
          paper only: layers_2 bias (16,), kernel (16, 16); layers_4 bias (O,), kernel (16, O)
    mlp2  [optim4rl only]                    as mlp1
    rnn1  [optim4rl; "rnn" for the others]  hn.bias (H,), hn.kernel (H,H), hr.kernel (H,H),
          hz.kernel (H,H), in.bias (H,), in.kernel (I,H), ir.bias (H,), ir.kernel (I,H),
          iz.bias (H,), iz.kernel (I,H)
    rnn2  [optim4rl only]                    as rnn1

with H = 8, D1 = 16 (paper) or O (code), I = 2 for l2lgd2 and 1 otherwise, O = 3 for
linear_optim and 1 otherwise. Kernels are (inputs, outputs) and act as x @ kernel.

Initialisation (``initial_vector``, what meta-training starts from): flax's defaults, drawn
with NumPy from the seed: input and Dense kernels lecun_normal (truncated normal, std
sqrt(1 / fan_in) / 0.8796, cut at 2 std), recurrent kernels orthogonal (QR with the sign of
R's diagonal), biases zero. Leaves are drawn in layout order. The distribution is flax's,
the numbers are not (flax draws with JAX's PRNG); NumPy keeps the QR out of any jit or vmap
(a vmapped QR can deadlock XLA on CPU).

Factory hyperparameters (``make_optimizer(name, hparams, schedule)``, the same for the
three): "lr" (required, > 0), "grad_clip" (absent/None = no clipping, the official
default; the official Brax and gridworld configs use 1), "architecture" ("paper"),
"weights" (path to a flat float32 .npy of the architecture's length; absent = the
initialisation with seed 0). The extra arguments PPO passes are accepted and ignored.

Diagnostics: ``update_size`` = mean |u| / mean |p| over all parameters, as OPEN logs it
(NaN where ``update`` is called without the parameters).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from rlopt.optimizers.base import OptimizerConfigError
from rlopt.optimizers.optim4rl_settings import (
    HIDDEN_SIZE,
    GruOptimizerConfig,
    meta_param_layout,
    network_names,
    num_meta_params,
)

OPTIM4RL_EPS = 1e-8  # inside the square root of v
L2L_EPS = 1e-8  # inside L2LGD2's log
L2L_P = 10.0
DIAGNOSTIC_EPS = 1e-12


class GruOptimizerState(NamedTuple):
    """The hidden state of every coordinate, feature-major: (networks, H, N), columns in
    ravel_pytree order; and the last step's diagnostics."""

    carry: jax.Array
    diagnostics: dict  # name -> float32 ()


# --------------------------------------------------------------------------------------
# Meta-parameters: flat vector -> tree (layout, initialisation, loading: optim4rl_settings)


def unflatten(vector: jax.Array, cfg: GruOptimizerConfig) -> dict:
    """Flat vector -> meta-parameter tree; the inverse of ``ravel_pytree``, differentiable
    and fine on traced vectors."""
    expected = num_meta_params(cfg)
    if vector.shape != (expected,):
        raise OptimizerConfigError(
            f"{cfg.kind} ({cfg.architecture} architecture) meta-parameters must have "
            f"shape ({expected},), got {vector.shape}"
        )
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


# --------------------------------------------------------------------------------------
# The per-coordinate networks, "feature-major": one row per input, hidden unit or output,
# one column per parameter, with a leading axis over the networks (optim4rl's two GRUs run
# as one batched product). XLA on CPU vectorises along the last axis, so a per-parameter
# (N, 8) layout would run the element-wise work several times slower.


def _matmul_columns(kernel: jax.Array, x: jax.Array) -> jax.Array:
    """Per network, kernel (G, F_in, F_out) applied to columns x (G, F_in, N) -> (G, F_out, N),
    in full float32 even where a backend would default to TF32/bf16 passes."""
    return jax.lax.dot_general(kernel, x, (((1,), (1,)), ((0,), (0,))), precision=jax.lax.Precision.HIGHEST)


class Networks(NamedTuple):
    """The meta-parameters stacked over the networks, biases as columns. The three gates
    (reset, update, candidate) keep separate kernels: one fused (G, 3H, N) product sliced
    into gates costs, in the backward pass, a pad and an add of the whole product per gate
    (a fifth of Optim4RL's meta-gradient on a CPU, benchmarks/README.md)."""

    input_kernel: jax.Array  # (3, G, I, H): reset, update, candidate
    input_bias: jax.Array  # (3, G, H, 1)
    hidden_kernel: jax.Array  # (3, G, H, H)
    candidate_hidden_bias: jax.Array  # (G, H, 1)
    head: tuple  # ((kernel (G, F_in, F_out), bias (G, F_out, 1)), ...)


GATES = ("r", "z", "n")  # reset, update, candidate


def stack_networks(tree: dict, cfg: GruOptimizerConfig) -> Networks:
    def stacked(name_of, leaf):
        return jnp.stack([leaf(tree[name_of(pair)]) for pair in network_names(cfg)])

    def gru(leaf):
        return stacked(lambda pair: pair[1], leaf)

    def gates(side, kind):
        return jnp.stack([gru(lambda g, gate=gate: g[side + gate][kind]) for gate in GATES])

    head = tuple(
        (
            stacked(lambda pair: pair[0], lambda h, i=i: h[f"layers_{2 * i}"]["kernel"]),
            stacked(lambda pair: pair[0], lambda h, i=i: h[f"layers_{2 * i}"]["bias"])[..., None],
        )
        for i in range(len(cfg.layer_sizes) - 1)
    )
    return Networks(
        input_kernel=gates("i", "kernel"),
        input_bias=gates("i", "bias")[..., None],
        hidden_kernel=gates("h", "kernel"),
        candidate_hidden_bias=gru(lambda g: g["hn"]["bias"])[..., None],
        head=head,
    )


def gru_columns(nets: Networks, inputs: jax.Array, carry: jax.Array) -> jax.Array:
    """flax GRUCell on columns: inputs (G, I, N), carry (G, H, N) -> new carry (G, H, N)."""
    from_inputs = [_matmul_columns(kernel, inputs) + bias for kernel, bias in zip(nets.input_kernel, nets.input_bias)]
    from_carry = [_matmul_columns(kernel, carry) for kernel in nets.hidden_kernel]
    reset = jax.nn.sigmoid(from_inputs[0] + from_carry[0])
    update = jax.nn.sigmoid(from_inputs[1] + from_carry[1])
    candidate = jnp.tanh(from_inputs[2] + reset * (from_carry[2] + nets.candidate_hidden_bias))
    return (1.0 - update) * candidate + update * carry


def head_columns(nets: Networks, hidden: jax.Array) -> jax.Array:
    """The heads on the new carry (G, H, N) -> outputs (G, O, N); ReLU between layers."""
    x = hidden
    for i, (kernel, bias) in enumerate(nets.head):
        x = _matmul_columns(kernel, x) + bias
        if i < len(nets.head) - 1:
            x = jax.nn.relu(x)
    return x


def l2l_inputs(grad: jax.Array) -> jax.Array:
    """Andrychowicz et al.'s preprocessing, (N,) -> (2, N)."""
    scaled_log = jnp.log(jnp.abs(grad) + L2L_EPS) / L2L_P
    large = scaled_log >= -1.0
    return jnp.stack([jnp.where(large, scaled_log, -1.0), jnp.where(large, jnp.sign(grad), math.exp(L2L_P) * grad)])


def network_inputs(kind: str, grad: jax.Array) -> jax.Array:
    """(G, I, N) inputs of the networks for the (clipped) flat gradient (N,)."""
    if kind == "optim4rl":
        return jnp.stack([grad, jnp.square(grad)])[:, None, :]
    if kind == "linear_optim":
        return grad[None, None, :]
    return l2l_inputs(grad)[None]


def update_from_outputs(kind: str, outputs: jax.Array, grad: jax.Array, lr) -> jax.Array:
    """The update u (N,) from the head outputs (G, O, N) and the (clipped) gradient."""
    if kind == "optim4rl":
        first, second = outputs[0, 0], outputs[1, 0]
        return -lr * jnp.sign(grad) * jnp.exp(first) * jax.lax.rsqrt(jnp.exp(second) + OPTIM4RL_EPS)
    if kind == "linear_optim":
        o1, o2, o3 = outputs[0]
        return -lr * (jnp.exp(o1) * grad + jnp.exp(o2) * o3)
    return -lr * jnp.exp(outputs[0, 0]) * grad


def update_size(flat_update: jax.Array, params) -> jax.Array:
    """mean |u| / mean |p| over all parameters (NaN without parameters)."""
    if params is None:
        return jnp.float32(jnp.nan)
    leaves = jax.tree.leaves(params)
    count = sum(leaf.size for leaf in leaves)
    magnitude = sum(jnp.sum(jnp.abs(leaf)) for leaf in leaves) / count
    return jnp.mean(jnp.abs(flat_update)) / (magnitude + DIAGNOSTIC_EPS)


# --------------------------------------------------------------------------------------
# The optax transformation


def gru_optimizer(meta_vector: jax.Array, cfg: GruOptimizerConfig) -> optax.GradientTransformationExtraArgs:
    """The optimizer ``cfg.kind`` with the given flat meta-parameters (may be traced:
    vmapped by ES, differentiated by meta-gradient training)."""
    nets = stack_networks(unflatten(jnp.asarray(meta_vector, jnp.float32), cfg), cfg)

    def init(params):
        num_params = ravel_pytree(params)[0].size
        return GruOptimizerState(
            carry=jnp.zeros((cfg.rule.num_networks, HIDDEN_SIZE, num_params), jnp.float32),
            diagnostics={"update_size": jnp.float32(0.0)},
        )

    def update(grads, state, params=None, **_unused):
        flat_grad, unravel = ravel_pytree(grads)
        if cfg.grad_clip is not None:
            flat_grad = jnp.clip(flat_grad, -cfg.grad_clip, cfg.grad_clip)
        flat_grad = jax.lax.stop_gradient(flat_grad)
        carry = gru_columns(nets, network_inputs(cfg.kind, flat_grad), state.carry)
        flat_update = update_from_outputs(cfg.kind, head_columns(nets, carry), flat_grad, cfg.lr)
        diagnostics = {"update_size": update_size(flat_update, params)}
        return unravel(flat_update), GruOptimizerState(carry=carry, diagnostics=diagnostics)

    return optax.GradientTransformationExtraArgs(init, update)
