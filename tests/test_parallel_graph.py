"""Graph-level data parallelism: a batch's graphs split over 8 simulated devices train exactly as
the whole batch on one device (GraphCL, InfoGraph, MVGRL), and the pieces that make it so."""

import types

import jax
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from gcl_jax import augment, data, parallel, runner, train
from gcl_jax.config import merge
from gcl_jax.methods import graphcl, infograph, mvgrl_graph

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


@pytest.mark.parametrize("module", [graphcl, infograph, mvgrl_graph], ids=lambda m: m.__name__.split(".")[-1])
def test_eight_devices_match_one_device(module, mutag60):
    assert module.SHARDED and jax.device_count() == 8
    (start, one), (_, eight) = graph_run(module, mutag60, 1), graph_run(module, mutag60, 8)
    # every leaf's change over the epoch agrees to 0.1% of the leaf's largest change, plus a few
    # float32 ulps of the leaf's values (rounding gives < 0.01%; one graph or node missing or counted
    # twice changes gradients by about 1/32)
    for s, a, b in zip(*(jax.tree_util.tree_leaves(t) for t in (start, one, eight))):
        moved = np.abs(a - s).max()
        assert moved > 0
        np.testing.assert_allclose(b - s, a - s, rtol=0, atol=1e-3 * moved + 1e-6 * np.abs(s).max())


def test_sub_batches_hold_the_batch_graphs_in_their_slots(mutag):
    order = np.random.default_rng(0).permutation(len(mutag.graphs))[:28]  # a short batch: device 7 empty
    budget = runner.EpochBatches(mutag, BATCH, 0).budget
    whole = runner.graph_batches(mutag, order, BATCH, budget)[0]
    stacked = runner.device_batches(mutag, order, BATCH, 8, runner.EpochBatches(mutag, BATCH, 0, devices=8).device_budget)[0]
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


def test_synced_batch_norm_uses_all_devices_rows():
    """Rows split unevenly over 8 devices (masks keep 0..8 of 8 rows each): the normalized output
    and running statistics equal numpy's over all kept rows together."""
    import flax.linen as nn

    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (8, 8, 5)).astype(np.float32)
    mask = np.arange(8)[None, :] < np.array([0, 1, 2, 3, 5, 6, 7, 8])[:, None]
    norm = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
    variables = norm.init(jax.random.PRNGKey(0), x[0])

    def local(v, m):
        with parallel.synced_batch_norm("data"):
            y, updates = norm.apply(variables, v[0], mask=m[0][:, None], mutable=["batch_stats"])
        return y[None], updates["batch_stats"]

    f = jax.shard_map(local, mesh=parallel.make_mesh(8), in_specs=(P("data"), P("data")), out_specs=(P("data"), P()))
    y, stats = f(x, mask)
    kept = x[mask].astype(np.float64)
    mean, var = kept.mean(0), kept.var(0)
    np.testing.assert_allclose(np.asarray(y)[mask], (kept - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats["mean"], 0.1 * mean, rtol=1e-4)
    np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * var, rtol=1e-4)


def test_batch_size_not_divisible_by_devices_is_a_clear_error(mutag):
    with pytest.raises(ValueError, match="batch_size: 30 graphs do not split evenly over --devices 8"):
        runner.EpochBatches(mutag, 30, 0, devices=8)


def test_mask_nodes_is_refused_across_devices():
    with pytest.raises(ValueError, match="'mask_nodes'.*--devices 1"):
        graphcl.augmentation("mask_nodes", {**graphcl.DEFAULTS["model"], "axis_name": parallel.DATA_AXIS})
