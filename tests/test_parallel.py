"""Data-parallel training: 1 device and 8 simulated devices give the same run."""

import jax
import numpy as np
import pytest

from gcl_jax import data, parallel, runner, train
from gcl_jax.methods import grace

# Glorot head: with torch's random head biases, the gradient of the last bias (a sum over all nodes
# that nearly cancels) takes summation-order rounding that Adam turns into ~10% of one step on a
# single element; zero-initialized biases keep that sum small and the comparison below sharp.
SMALL = {**grace.DEFAULTS["model"], "hidden": 16, "proj_hidden": 16, "head_init": "glorot"}


def grace_run(devices: int, block_size: int = 0, steps: int = 4):
    graph = runner.node_graph(data.load("cora"), {"normalize_features": True})
    model = {**SMALL, "block_size": block_size}
    mesh = None
    if devices > 1:
        mesh = parallel.make_mesh(devices)
        model["axis_name"] = parallel.DATA_AXIS
    optimizer, _ = train.make_optimizer(1e-3, steps)
    state = train.fit(grace.build(model, graph), optimizer, lambda t: graph, steps, seed=1, progress=False, mesh=mesh)
    return jax.tree_util.tree_leaves(jax.device_get(state.params))


def test_eight_devices_match_one_device():
    assert jax.device_count() == 8
    one = grace_run(1)
    # Adam's first steps move every weight by about lr = 1e-3 whatever the gradient's size, so a
    # float-rounding difference in a near-zero gradient can flip a few percent of one step: the
    # tolerance is 3% of one step, far below any real disagreement between the two runs.
    for eight in (grace_run(8), grace_run(8, block_size=64)):
        for a, b in zip(one, eight):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=3e-5)


def test_local_rows_cover_all_rows_once():
    x = np.arange(37 * 3, dtype=np.float32).reshape(37, 3)
    mesh = parallel.make_mesh(8)
    f = jax.shard_map(lambda v: parallel.local_rows(v, "data"), mesh=mesh,
                      in_specs=jax.sharding.PartitionSpec(), out_specs=jax.sharding.PartitionSpec("data"))
    rows, valid = f(x)
    np.testing.assert_array_equal(np.asarray(rows)[np.asarray(valid)], x)
    assert int(np.asarray(valid).sum()) == 37 and rows.shape == (40, 3)


def test_mesh_reductions_match_numpy_on_all_rows():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((40, 3)).astype(np.float32)
    valid = rng.random(40) < 0.6
    rows = jax.sharding.PartitionSpec("data")

    def reduce(v, ok):
        return (parallel.global_mean(v, ok, "data"), parallel.count_valid(ok, "data"),
                parallel.global_ids(v.shape[0], "data"))

    f = jax.shard_map(reduce, mesh=parallel.make_mesh(8), in_specs=(rows, rows),
                      out_specs=(jax.sharding.PartitionSpec(), jax.sharding.PartitionSpec(), rows))
    mean, count, ids = f(values, valid)
    np.testing.assert_allclose(float(mean), values[valid].mean(), rtol=1e-5)
    assert float(count) == valid.sum()
    np.testing.assert_array_equal(ids, np.arange(40))
    np.testing.assert_allclose(float(parallel.global_mean(values, valid, None)), values[valid].mean(), rtol=1e-5)


def test_global_arrays_lay_out_each_leaf_once():
    mesh = parallel.make_mesh(8)
    x = np.arange(16.0, dtype=np.float32).reshape(8, 2)
    placed = parallel.global_arrays({"x": x}, mesh)["x"]
    assert placed.sharding.is_fully_replicated and len(placed.sharding.device_set) == 8
    assert parallel.global_arrays(placed, mesh) is placed  # already on the mesh: nothing moves
    rows = parallel.global_arrays(x, mesh, jax.sharding.PartitionSpec("data"))
    assert {s.data.shape for s in rows.addressable_shards} == {(1, 2)}
    np.testing.assert_array_equal(rows, x)


def test_mesh_larger_than_available_is_a_clear_error():
    with pytest.raises(ValueError, match="asked for 64"):
        parallel.make_mesh(64)
