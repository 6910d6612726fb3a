"""GraphCL on embedded MUTAG: training lowers the loss, embeddings have the right shape, the
blockwise NT-Xent equals the dense one, padding never changes the loss, and the augmentations do
what GraphCL's aug.py describes (checked by hand on the produced views)."""

import jax
import numpy as np
import pytest

from gcl_jax import data, train
from gcl_jax import graph as G
from gcl_jax.config import merge
from gcl_jax.methods import graphcl
from helpers import train_steps

STEPS = 20
MODEL = merge(graphcl.DEFAULTS["model"], {"hidden": 16, "layers": 2})


@pytest.fixture(scope="module")
def run():
    ds = data.load("mutag")
    batch = G.pad(G.batch(ds.graphs), *G.budget(ds.graphs, len(ds.graphs)))
    method = graphcl.build(MODEL, batch)
    optimizer, _ = train.make_optimizer(0.01, STEPS)
    ts0, ts, losses = train_steps(method, optimizer, batch, STEPS)
    return ds, batch, method, ts0, ts, losses


def test_loss_finite_and_decreasing(run):
    *_, losses = run
    assert np.all(np.isfinite(losses)) and losses[-5:].mean() < losses[:5].mean() - 0.1


def test_embeddings(run):
    ds, batch, method, _, ts, _ = run
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, batch))
    assert z.shape == (len(ds.graphs) + 1, 32) and np.all(np.isfinite(z))
    np.testing.assert_array_equal(z[-1], 0.0)


def test_blockwise_equals_dense(run):
    _, batch, method, _, ts, _ = run
    blockwise = graphcl.build(merge(MODEL, {"block_size": 64}), batch)
    key = jax.random.PRNGKey(11)
    dense_loss = jax.jit(method.loss)(ts.params, ts.state, key, batch)[0]
    block_loss = jax.jit(blockwise.loss)(ts.params, ts.state, key, batch)[0]
    np.testing.assert_allclose(float(block_loss), float(dense_loss), rtol=1e-5)


def test_padding_never_changes_the_loss(run):
    ds, batch, _, _, ts, _ = run
    # deterministic views, so two paddings of the same graphs must give the same loss: padding
    # graphs are not anchors or negatives, padding nodes stay out of batch norm and readouts
    model = merge(MODEL, {"aug1": ["identity"], "aug2": ["drop_edges"], "drop_edge": 0.0})
    n, e, g = G.budget(ds.graphs, len(ds.graphs))
    bigger = G.pad(G.batch(ds.graphs), n + 64, e + 64, g + 5)
    key = jax.random.PRNGKey(0)
    loss_fn = jax.jit(graphcl.build(model, batch).loss)
    tight, loose = loss_fn(ts.params, ts.state, key, batch)[0], loss_fn(ts.params, ts.state, key, bigger)[0]
    np.testing.assert_allclose(float(loose), float(tight), rtol=1e-5)


def test_augmentations_by_hand(run):
    ds, batch, *_ = run
    graph = G.add_self_loops(batch)
    real = np.asarray(G.real_node_mask(graph, True))
    ids = np.asarray(G.node_graph_ids(graph))

    @jax.jit
    def views(key, graph):
        sub = graphcl.view_function(["subgraph"], MODEL)(key, graph)
        drop = graphcl.view_function(["drop_nodes"], merge(MODEL, {"drop_node": 0.5}))(key, graph)
        noise = graphcl.augmentation("mask_nodes", MODEL)(key, graph)
        return sub, drop, noise

    (sub_g, sub_keep), (drop_g, drop_keep), noise_g = views(jax.random.PRNGKey(2), graph)
    sub_keep, drop_keep = np.asarray(sub_keep), np.asarray(drop_keep)
    # a random walk of L steps keeps between 1 and L + 1 nodes of every real graph, none of the padding
    kept = np.bincount(ids[sub_keep], minlength=len(ds.graphs) + 1)[: len(ds.graphs)]
    assert kept.min() >= 1 and kept.max() <= MODEL["walk_length"] + 1 and not sub_keep[~real].any()
    # node dropping: about half the real nodes go; their features are zeroed and their edges masked
    assert 0.4 < drop_keep[real].mean() < 0.6
    gone = real & ~drop_keep
    np.testing.assert_array_equal(np.asarray(drop_g.nodes)[gone], 0.0)
    w = np.asarray(drop_g.edges)
    senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
    assert not w[gone[senders] | gone[receivers]].any()
    # attribute masking: exactly floor(0.1 * real nodes) rows changed, only real ones
    changed = np.any(np.asarray(noise_g.nodes) != np.asarray(graph.nodes), axis=1)
    assert changed.sum() == int(MODEL["mask_node"] * real.sum()) and not changed[~real].any()
