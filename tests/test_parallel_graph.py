"""Graph-level data parallelism: a batch's graphs split over 8 simulated devices train exactly as
the whole batch on one device (GraphCL, InfoGraph, MVGRL, GraphMAE), and the pieces that make it so."""

import types

import jax
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from gcl_jax import augment, data, parallel, runner, train
from gcl_jax import graph as G
from gcl_jax.config import merge
from gcl_jax.methods import graphcl, graphmae_graph, infograph, mvgrl_graph

BATCH = 32
STEPS = 2  # one epoch of 60 graphs: a full batch, then 28 graphs, which leave the 8th device empty
SMALL = {"hidden": 16, "layers": 2}


@pytest.fixture(scope="module")
def mutag():
    return data.load("mutag")


@pytest.fixture(scope="module")
def mutag60(mutag):
    return types.SimpleNamespace(graphs=mutag.graphs[:60])


def graph_run(module, dataset, devices: int):
    """``(initial, final)`` parameters and state around one epoch of SGD steps on ``devices`` devices."""
    batches = runner.EpochBatches(dataset, BATCH, 0, getattr(module, "prepare_batch", lambda b: b), devices)
    model = merge(module.DEFAULTS["model"], SMALL)
    mesh = spec = None
    if devices > 1:
        mesh, spec = parallel.make_mesh(devices), P(parallel.DATA_AXIS)
        model["axis_name"] = parallel.DATA_AXIS
    # Plain SGD: a parameter's update is -lr * its gradient, so float rounding in a gradient stays
    # rounding. (Adam divides each gradient by its own size: a gradient that is zero in exact
    # arithmetic, e.g. of a bias in front of batch norm, holds only rounding, which Adam turns into
    # a step of full size and random sign on each layout.) A small lr keeps the steps out of
    # the chaotic regime, where any rounding would grow.
    method, optimizer = module.build(model, batches(0)), optax.sgd(1e-3)
    start = train.init_state(method, optimizer, 1, batches(0))
    ts = train.fit(method, optimizer, batches, STEPS, seed=1, progress=False, mesh=mesh, batch_spec=spec)
    return jax.device_get(((start.params, start.state), (ts.params, ts.state)))


@pytest.mark.parametrize("module", [graphcl, infograph, mvgrl_graph, graphmae_graph], ids=lambda m: m.__name__.split(".")[-1])
def test_eight_devices_match_one_device(module, mutag60):
    assert module.SHARDED and jax.device_count() == 8
    (start, one), (_, eight) = graph_run(module, mutag60, 1), graph_run(module, mutag60, 8)
    # every leaf's change over the epoch agrees to 0.1% of the leaf's largest change, plus a few
    # float32 ulps of the leaf's values (rounding gives < 0.01%; one graph or node missing or counted
    # twice changes gradients by about 1/32)
    leaves = [jax.tree_util.tree_leaves(t) for t in (start, one, eight)]
    largest = max(np.abs(a - s).max() for s, a in zip(*leaves[:2]))
    for s, a, b in zip(*leaves):
        moved = np.abs(a - s).max()
        if moved < 1e-6 * largest:
            # a bias right before batch norm (GraphMAE's GIN MLP): its gradient is zero in exact
            # arithmetic, so it moves by rounding only, on either layout
            assert np.abs(b - s).max() < 1e-6 * largest
            continue
        np.testing.assert_allclose(b - s, a - s, rtol=0, atol=1e-3 * moved + 1e-6 * np.abs(s).max())


def test_epoch_batches_are_padded_per_batch_on_the_bucket_ladder(mutag):
    """Every graph once per epoch, in the epoch's order; each batch padded to its own node and edge
    counts rounded up by ``G.bucket`` (not to the dataset's 32 largest graphs), few shapes."""
    order = np.random.default_rng(2).permutation(len(mutag.graphs))
    batches = runner.graph_batches(mutag, order, BATCH)
    safe_nodes = G.budget(mutag.graphs, BATCH)[0]
    for start, batch in zip(range(0, len(order), BATCH), batches):
        chunk = order[start:start + BATCH]
        nodes = sum(int(mutag.graphs[i].n_node[0]) for i in chunk)
        edges = sum(int(mutag.graphs[i].n_edge[0]) for i in chunk)
        assert batch.nodes.shape[0] == G.bucket(nodes + 1) < safe_nodes
        assert batch.senders.shape[0] == G.bucket(edges) and batch.n_node.shape == (BATCH + 1,)
        np.testing.assert_array_equal(batch.n_node[:len(chunk)], [mutag.graphs[i].n_node[0] for i in chunk])
    assert len({b.nodes.shape for b in batches}) <= 3


def test_sub_batches_hold_the_batch_graphs_in_their_slots(mutag):
    order = np.random.default_rng(0).permutation(len(mutag.graphs))[:28]  # a short batch: device 7 empty
    whole = runner.graph_batches(mutag, order, BATCH)[0]
    stacked = runner.device_batches(mutag, order, BATCH, 8)[0]
    owned = np.asarray(stacked.owned)
    np.testing.assert_array_equal(owned.sum(0)[:BATCH], np.arange(BATCH) < 28)  # every graph on one device
    assert owned.sum(1).tolist() == [4] * 7 + [0]
    offsets = np.cumsum(whole.n_node) - whole.n_node
    for d in range(8):
        part = jax.tree_util.tree_map(lambda leaf: leaf[d], stacked.graph)
        assert part.n_node.shape == whole.n_node.shape  # the one-device batch's slots
        part_offsets = np.cumsum(part.n_node) - part.n_node
        for slot in np.flatnonzero(owned[d]):
            n = whole.n_node[slot]
            assert part.n_node[slot] == n and part.n_edge[slot] == whole.n_edge[slot]
            np.testing.assert_array_equal(part.nodes[part_offsets[slot]:part_offsets[slot] + n],
                                          whole.nodes[offsets[slot]:offsets[slot] + n])
        # nodes of slots another device holds are absent; the last slot holds all the padding
        assert part.n_node[:BATCH][~owned[d][:BATCH]].sum() == 0 and part.n_node[BATCH] > 0


def test_graph_uniforms_follow_the_graph_not_the_layout():
    key = jax.random.PRNGKey(4)
    whole = augment.graph_uniforms(key, np.array([3, 2, 4, 1]), 10)  # four graphs, one batch
    alone = augment.graph_uniforms(key, np.array([0, 0, 4, 5]), 9)  # graph 2 alone, then padding
    np.testing.assert_array_equal(alone[:4], whole[5:9])
    assert len(np.unique(np.asarray(whole))) == 10


def test_graphmae_masking_picks_the_same_nodes_on_any_layout(mutag):
    """GraphMAE-graph's masking of a short batch (28 graphs, device 7 empty) on 8 devices equals
    the one-device masking node for node: exactly floor(0.75 N) of the N real nodes masked, of
    them floor(0.1 * masked) given another real node's features, the rest the token."""
    order = np.random.default_rng(1).permutation(len(mutag.graphs))[:28]
    whole = runner.graph_batches(mutag, order, BATCH)[0]
    stacked = runner.device_batches(mutag, order, BATCH, 8)[0]
    token = -np.ones(whole.nodes.shape[-1], np.float32)  # MUTAG's features are one-hot: -1 is only the token

    def masking(graph, axis_name):
        out, mask = augment.mask_nodes_by_slot(jax.random.PRNGKey(5), graph, token, 0.75, 0.1, axis_name=axis_name)
        return out.nodes, mask

    def local(part):
        return jax.tree_util.tree_map(lambda a: a[None], masking(parallel.local_graph(part)[0], parallel.DATA_AXIS))

    nodes, mask = jax.device_get(jax.jit(lambda g: masking(g, None))(whole))
    parts = jax.device_get(jax.jit(jax.shard_map(local, mesh=parallel.make_mesh(8), in_specs=P(parallel.DATA_AXIS),
                                                 out_specs=P(parallel.DATA_AXIS)))(stacked))
    real = [int(np.sum(stacked.graph.n_node[d][:BATCH])) for d in range(8)]  # a device's real nodes come first
    num_real = int(np.sum(whole.n_node[:28]))
    assert sum(real) == num_real
    for whole_rows, part_rows in ((nodes, parts[0]), (mask, parts[1])):
        np.testing.assert_array_equal(np.concatenate([part_rows[d][:n] for d, n in enumerate(real)]), whole_rows[:num_real])
    assert mask.sum() == int(0.75 * num_real) and not mask[num_real:].any()
    replaced = mask & np.any(nodes != token, axis=1)
    assert replaced.sum() == int(0.1 * mask.sum())
    original = np.asarray(whole.nodes)[:num_real]
    assert all(np.any(np.all(original == row, axis=1)) for row in nodes[replaced])  # copies of real nodes
    np.testing.assert_array_equal(nodes[:num_real][~mask[:num_real]], original[~mask[:num_real]])


def test_batch_size_not_divisible_by_devices_is_a_clear_error(mutag):
    with pytest.raises(ValueError, match="batch_size: 30 graphs do not split evenly over --devices 8"):
        runner.EpochBatches(mutag, 30, 0, devices=8)


def test_mask_nodes_is_refused_across_devices():
    with pytest.raises(ValueError, match="'mask_nodes'.*--devices 1"):
        graphcl.augmentation("mask_nodes", {**graphcl.DEFAULTS["model"], "axis_name": parallel.DATA_AXIS})
