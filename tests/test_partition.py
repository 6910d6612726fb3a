"""Cluster mini-batches: partitions, halos, exactness of halo subgraphs, and sharded GRACE / BGRL on parts."""

import jax
import numpy as np
import optax
import pytest
import scipy.sparse as sp
from helpers import cora_graph
from scipy.sparse.csgraph import shortest_path

from gcl_jax import graph as G
from gcl_jax import data, parallel, partition, runner, train
from gcl_jax.data import synthetic
from gcl_jax.methods import bgrl, grace
from gcl_jax.nn import GraphEncoder


@pytest.fixture(scope="module")
def cora():
    graph = jax.device_get(cora_graph())
    return graph, partition.incoming_adjacency(graph)


def test_parts_cover_every_node_once(cora):
    _, adjacency = cora
    parts = partition.partition_nodes(adjacency, 7)
    assert sorted(len(p) for p in parts) == [386] + [387] * 6  # 2708 = 7 * 386 + 6
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(2708))
    with pytest.raises(ValueError, match="partition.parts"):
        partition.partition_nodes(adjacency, 3000)


def test_community_parts_keep_more_edges_inside_than_a_random_cut(cora):
    _, adjacency = cora
    coo = adjacency.tocoo()

    def kept(parts):
        label = np.empty(adjacency.shape[0], int)
        for i, p in enumerate(parts):
            label[p] = i
        return np.mean(label[coo.row] == label[coo.col])

    random_parts = np.array_split(np.random.default_rng(0).permutation(adjacency.shape[0]), 8)
    assert kept(partition.partition_nodes(adjacency, 8)) > 2 * kept(random_parts)


def test_halo_is_exactly_the_nodes_within_k_hops(cora):
    _, adjacency = cora
    owned = partition.partition_nodes(adjacency, 16)[3]
    nodes = partition.with_halo(adjacency, owned, 2)
    np.testing.assert_array_equal(nodes[: len(owned)], owned)
    assert len(np.unique(nodes)) == len(nodes)
    hops = shortest_path(adjacency, unweighted=True, indices=owned).min(axis=0)
    np.testing.assert_array_equal(np.sort(nodes), np.flatnonzero(hops <= 2))


def test_owned_outputs_equal_full_graph_outputs_with_layers_plus_one_halo(cora):
    graph, _ = cora
    encoder = GraphEncoder("gcn", (32, 16), activation="relu")
    params = encoder.init(jax.random.PRNGKey(0), graph, train=False)
    full = np.asarray(encoder.apply(params, graph, train=False))
    batches = partition.ClusterBatches(graph, num_parts=4, halo=3)
    apply = jax.jit(lambda g: encoder.apply(params, g, train=False))
    for part, nodes in enumerate(batches.nodes):
        sub = jax.tree_util.tree_map(lambda leaf, i=part: leaf[i], batches.parts)
        owned = batches.owned[part]
        np.testing.assert_allclose(np.asarray(apply(sub))[owned], full[nodes[: owned.sum()]], rtol=1e-4, atol=1e-5)
    # with no halo the boundary nodes lose neighbours: the outputs differ somewhere
    no_halo = partition.ClusterBatches(graph, num_parts=4, halo=0)
    sub = jax.tree_util.tree_map(lambda leaf: leaf[0], no_halo.parts)
    assert not np.allclose(np.asarray(apply(sub))[no_halo.owned[0]], full[no_halo.nodes[0]], atol=1e-3)


def test_cluster_batches_visit_every_part_once_per_epoch(cora):
    graph, _ = cora
    batches = partition.ClusterBatches(graph, num_parts=8, devices=2, halo=1, seed=3)
    assert batches.steps_per_epoch == 4
    epoch = [batches(t) for t in range(4)]
    assert len({(b.graph.nodes.shape, b.graph.senders.shape, b.owned.shape) for b in epoch}) == 1
    assert epoch[0].graph.nodes.shape[0] == 2
    assert sum(int(b.owned.sum()) for b in epoch) == 2708
    assert not np.array_equal(batches(4).owned, batches(0).owned) or not np.array_equal(batches(5).owned, batches(1).owned)
    with pytest.raises(ValueError, match="do not split evenly"):
        partition.ClusterBatches(graph, num_parts=6, devices=4)


def union_of_parts(batch: parallel.Partitioned) -> parallel.Partitioned:
    """The same parts as one disjoint-union graph on one device (the reference for the ring)."""
    parts = [jax.tree_util.tree_map(lambda leaf, i=d: leaf[i], batch.graph) for d in range(batch.owned.shape[0])]
    union = G.batch(parts)
    return parallel.Partitioned(jax.tree_util.tree_map(lambda leaf: leaf[None], union), batch.owned.reshape(1, -1))


#: Small models of the partition-capable methods; no augmentation, so both layouts see the same views.
PARTITIONED_MODELS = {
    grace: {"hidden": 16, "proj_hidden": 16},
    bgrl: {"encoder": [16, 8], "predictor_hidden": 16, "total_steps": 10},  # batch norm: statistics of all parts
}


@pytest.mark.parametrize("module", list(PARTITIONED_MODELS), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_sharded_step_on_parts_equals_one_device_step_on_their_union(cora, module):
    graph, _ = cora
    batch = partition.ClusterBatches(graph, num_parts=8, devices=8, halo=1)(0)
    model = {**module.DEFAULTS["model"], **PARTITIONED_MODELS[module], "drop_edge": [0.0, 0.0], "drop_feature": [0.0, 0.0]}
    optimizer = optax.sgd(1.0)  # the parameter change is minus the gradient
    mesh = parallel.make_mesh(8)
    sharded = module.build({**model, "axis_name": parallel.DATA_AXIS}, batch)
    step8 = jax.jit(train.make_step(sharded, optimizer, mesh, jax.sharding.PartitionSpec(parallel.DATA_AXIS)))
    ts = train.init_state(sharded, optimizer, 0, batch)
    union = union_of_parts(batch)
    step1 = jax.jit(train.make_step(module.build(model, union), optimizer))
    after8, loss8, _ = step8(ts, batch)
    after1, loss1, _ = step1(ts, union)
    np.testing.assert_allclose(float(loss8), float(loss1), rtol=1e-5)
    for a, b in zip(*(jax.tree_util.tree_leaves(s.state) for s in (after8, after1))):  # batch statistics, EMA target
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    leaves = [jax.tree_util.tree_leaves(s.params) for s in (ts, after8, after1)]
    # tolerance from the largest gradient entry of any leaf: a bias followed by batch norm has a zero
    # gradient in exact arithmetic, so its float32 value is rounding noise on both sides
    largest = max(float(np.abs(np.asarray(before - b)).max()) for before, b in zip(leaves[0], leaves[2]))
    for before, a, b in zip(*leaves):
        grad8, grad1 = np.asarray(before - a), np.asarray(before - b)
        # the gradient is read back as before - after, so it is resolved only to the parameters' float32
        # spacing (~4e-9 near 0.05): tiny entries may differ by a few of those units
        resolution = 4 * np.finfo(np.float32).eps * float(np.abs(before).max())
        np.testing.assert_allclose(grad8, grad1, rtol=1e-4, atol=max(1e-5 * largest, resolution))


@pytest.mark.parametrize("method,small", [("grace", ["model.hidden=16", "model.proj_hidden=16"]),
                                          ("bgrl", ["model.encoder=[16]", "model.predictor_hidden=16"])])
def test_runner_trains_on_cluster_mini_batches(tmp_path, method, small):
    overrides = ["epochs=3", *small, "partition.parts=4", "partition.halo=1"]
    record = runner.run(method, "cora", overrides=overrides, out=tmp_path / "run", devices=2, progress=False, plot=False)
    steps = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(steps) == 3 * 2  # 4 parts over 2 devices: 2 steps per epoch
    assert 0.0 < record["test_mean"] <= 1.0


def test_partition_refused_for_methods_without_it(tmp_path):
    config = tmp_path / "dgi.toml"
    config.write_text("epochs = 1\n[partition]\nparts = 2\n")
    with pytest.raises(ValueError, match="partition: dgi"):
        runner.run("dgi", "cora", config_file=str(config), out=tmp_path / "r", progress=False, plot=False)


def test_incoming_adjacency_rows_list_incoming_edges():
    graph = G.from_edge_index(np.array([[0, 1, 1], [1, 0, 2]]), node_features=np.eye(3, dtype=np.float32))
    adjacency = partition.incoming_adjacency(graph)
    assert isinstance(adjacency, sp.csr_matrix) and adjacency.sum() == 3
    assert adjacency[2, 1] == 1 and adjacency[1, 2] == 0  # edge 1 -> 2 is a row-2 (receiver) entry


def test_label_propagation_recovers_planted_communities():
    dataset = synthetic.planted_communities(2000, community_size=100, avg_degree=20, p_in=0.95, seed=1)
    labels = partition.label_propagation(partition.incoming_adjacency(dataset.graph))
    # the generator shuffles ids; a community is 100 nodes sharing a class, so pairs of nodes with
    # the same propagated label should nearly always share a class
    same_label = labels[:, None] == labels[None, :]
    same_class = dataset.labels[:, None] == dataset.labels[None, :]
    assert same_class[same_label].mean() > 0.9
    assert 5 <= len(np.unique(labels)) <= 200


def test_synthetic_names_and_counts():
    dataset = data.load("synthetic-3k")
    assert dataset.info()["num_nodes"] == 3000 and dataset.num_classes == 10
    G.validate(dataset.graph)
    assert 10 * 3000 * 0.8 < int(np.sum(dataset.graph.n_edge)) <= 10 * 3000  # avg_degree 10, symmetrized
    with pytest.raises(ValueError, match="synthetic-N"):
        data.load("synthetic-lots")
