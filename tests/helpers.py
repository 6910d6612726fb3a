"""Shared test helpers: the embedded Cora as a training graph, a short in-memory training loop,
and the Dense layers of a parameter tree."""

import jax
import numpy as np

from gcl_jax import data, runner, train


def cora_graph():
    """Embedded Cora on the device, features row-normalized (as the runner prepares it)."""
    return runner.node_graph(data.load("cora"), {"normalize_features": True})


def train_steps(method, optimizer, batch, steps: int, seed: int = 0):
    """``steps`` jitted train steps on one batch; returns (initial state, final state, losses)."""
    step = jax.jit(train.make_step(method, optimizer))
    ts0 = ts = train.init_state(method, optimizer, seed, batch)
    history = []
    for _ in range(steps):
        ts, loss, _ = step(ts, batch)
        history.append(float(loss))
    return ts0, ts, np.array(history)


def assert_loss_decreases(history, margin: float):
    """Every loss finite, and the last five average at least ``margin`` below the first three."""
    history = np.asarray(history)
    assert np.isfinite(history).all()
    assert history[-5:].mean() < history[:3].mean() - margin


def dense_layers(params) -> dict[str, dict[str, np.ndarray]]:
    """Every Dense layer of a flax parameter tree: its path (``jax.tree_util.keystr``) -> its
    ``kernel`` and ``bias`` (when it has one) as numpy arrays."""
    found = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        found.setdefault(jax.tree_util.keystr(path[:-1]), {})[path[-1].key] = np.asarray(leaf)
    return {name: layer for name, layer in found.items() if "kernel" in layer}
