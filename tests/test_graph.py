"""Graph layer: construction round-trips, validation errors, jit transforms, padding and batching."""

import jax
import jax.numpy as jnp
import jraph
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from gcl_jax import graph as G

# ---------------------------------------------------------------------------- helpers


def random_graph(seed: int, num_nodes: int = 7, num_edges: int = 12, features: int = 3) -> G.GraphsTuple:
    rng = np.random.default_rng(seed)
    edge_index = rng.integers(0, num_nodes, size=(2, num_edges))
    return G.from_edge_index(edge_index, num_nodes, rng.normal(size=(num_nodes, features)).astype(np.float32))


def dense_adjacency(graph: G.GraphsTuple) -> np.ndarray:
    """Independent reference: accumulate weights edge by edge in a Python loop."""
    n = G.num_nodes(graph)
    out = np.zeros((n, n))
    for s, r, w in zip(np.asarray(graph.senders), np.asarray(graph.receivers), np.asarray(G.edge_weights(graph))):
        out[s, r] += w
    return out


# ---------------------------------------------------------------------------- construction


def test_edge_index_scipy_networkx_round_trip():
    graph = random_graph(0)
    adjacency = G.to_scipy(graph)
    np.testing.assert_allclose(adjacency.toarray(), dense_adjacency(graph))
    again = G.from_scipy(adjacency, graph.nodes, weighted=True)
    np.testing.assert_allclose(G.to_scipy(again).toarray(), adjacency.toarray())
    nx_graph = G.to_networkx(again)
    back = G.from_networkx(nx_graph, feature_key="x", weight_key="weight")
    np.testing.assert_allclose(G.to_scipy(back).toarray(), adjacency.toarray())
    np.testing.assert_allclose(back.nodes, graph.nodes)


def test_from_networkx_undirected_counts_both_directions():
    graph = G.from_networkx(nx.cycle_graph(5))
    assert int(graph.n_edge[0]) == 10
    assert (dense_adjacency(graph) == dense_adjacency(graph).T).all()


def test_from_scipy_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        G.from_scipy(sp.csr_matrix(np.ones((2, 3))))


# ---------------------------------------------------------------------------- validation


def good_graph() -> G.GraphsTuple:
    return G.GraphsTuple(
        nodes=np.ones((4, 2), np.float32),
        edges=None,
        senders=np.array([0, 1, 2], np.int32),
        receivers=np.array([1, 2, 3], np.int32),
        n_node=np.array([4], np.int32),
        n_edge=np.array([3], np.int32),
        globals=None,
    )


@settings(max_examples=40, deadline=None)
@given(field=st.sampled_from(["senders", "receivers"]), position=st.integers(0, 2), offset=st.integers(0, 100))
def test_validate_names_out_of_range_index(field, position, offset):
    indices = np.array(getattr(good_graph(), field))
    indices[position] = 4 + offset
    with pytest.raises(ValueError, match=rf"{field}\[{position}\] = {4 + offset} is out of range"):
        G.validate(good_graph()._replace(**{field: indices}))


@settings(max_examples=40, deadline=None)
@given(field=st.sampled_from(["senders", "receivers"]), position=st.integers(0, 2), value=st.integers(-50, -1))
def test_validate_names_negative_index(field, position, value):
    indices = np.array(getattr(good_graph(), field))
    indices[position] = value
    with pytest.raises(ValueError, match=rf"{field}\[{position}\] = {value}"):
        G.validate(good_graph()._replace(**{field: indices}))


@settings(max_examples=30, deadline=None)
@given(position=st.integers(0, 2), fraction=st.floats(0.1, 0.9))
def test_validate_rejects_non_integer_indices(position, fraction):
    senders = np.array([0.0, 1.0, 2.0])
    senders[position] += fraction
    with pytest.raises(ValueError, match=rf"senders: indices must have an integer dtype.*index {position}"):
        G.validate(good_graph()._replace(senders=senders))


@settings(max_examples=30, deadline=None)
@given(extra_nodes=st.integers(-3, 3), extra_edges=st.integers(-2, 2))
def test_validate_rejects_counts_not_summing(extra_nodes, extra_edges):
    graph = good_graph()._replace(n_node=np.array([4 + extra_nodes], np.int32), n_edge=np.array([3 + extra_edges], np.int32))
    if extra_nodes == 0 and extra_edges == 0:
        G.validate(graph)
        return
    with pytest.raises(ValueError, match=r"sum\(n_|is negative|out of range"):
        G.validate(graph)


@settings(max_examples=30, deadline=None)
@given(row=st.integers(0, 3), column=st.integers(0, 1), bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_validate_names_non_finite_feature_row(row, column, bad):
    nodes = np.ones((4, 2), np.float32)
    nodes[row, column] = bad
    with pytest.raises(ValueError, match=rf"nodes\[{row}\] has a non-finite feature"):
        G.validate(good_graph()._replace(nodes=nodes))


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(0, 9).filter(lambda r: r != 4))
def test_validate_rejects_feature_rows_not_matching(rows):
    with pytest.raises(ValueError, match=rf"nodes: {rows} feature rows do not match sum\(n_node\) = 4"):
        G.validate(good_graph()._replace(nodes=np.ones((rows, 2), np.float32)))


def test_validate_rejects_non_finite_edge_weight():
    with pytest.raises(ValueError, match=r"edges\[1\] is not finite"):
        G.validate(good_graph()._replace(edges=np.array([1.0, np.nan, 1.0])))


def test_validate_rejects_negative_counts():
    with pytest.raises(ValueError, match=r"n_edge\[0\] is negative"):
        G.validate(good_graph()._replace(n_edge=np.array([-1], np.int32)))


# ---------------------------------------------------------------------------- transforms


def test_coalesce_and_undirected_match_scipy():
    graph = random_graph(1, num_nodes=6, num_edges=30)
    deduped = G.coalesce(graph)
    np.testing.assert_allclose(dense_adjacency(deduped), (dense_adjacency(graph) > 0).astype(float))
    summed = G.coalesce(graph._replace(edges=np.arange(1, 31, dtype=np.float32)), reduce="sum")
    np.testing.assert_allclose(dense_adjacency(summed), dense_adjacency(graph._replace(edges=np.arange(1, 31.0))))
    both = G.undirected(graph)
    expected = ((dense_adjacency(graph) + dense_adjacency(graph).T) > 0).astype(float)
    np.testing.assert_allclose(dense_adjacency(both), expected)
    assert int(both.n_edge[0]) == both.senders.shape[0] == 60
    compact = G.drop_masked_edges(both)
    assert int(compact.n_edge[0]) == int(expected.sum())
    G.validate(compact)


def test_coalesce_ignores_masked_duplicates():
    graph = G.from_edge_index(np.array([[0, 0, 1], [1, 1, 2]]), 3, edge_weights=np.array([0.0, 2.0, 1.0]))
    np.testing.assert_allclose(np.asarray(G.coalesce(graph).edges), [0.0, 2.0, 1.0])


def test_self_loops_degrees_and_gcn_norm_match_dense_formula():
    graph = random_graph(2)
    graph = G.drop_masked_edges(G.undirected(G.remove_self_loops(graph)))
    adjacency = dense_adjacency(graph)
    np.testing.assert_allclose(np.asarray(G.degrees(graph, "in")), adjacency.sum(0))
    np.testing.assert_allclose(np.asarray(G.degrees(graph, "out")), adjacency.sum(1))
    looped = jax.jit(G.add_self_loops)(graph)
    np.testing.assert_allclose(dense_adjacency(looped), adjacency + np.eye(7))
    a_hat = adjacency + np.eye(7)
    d = a_hat.sum(0)
    expected = a_hat / np.sqrt(np.outer(d, d))
    np.testing.assert_allclose(dense_adjacency(jax.jit(G.gcn_normalize)(graph)), expected, rtol=1e-6)
    assert not dense_adjacency(G.remove_self_loops(looped)).diagonal().any()


def test_transforms_keep_batched_graphs_contiguous():
    batched = G.batch([random_graph(3), random_graph(4, num_nodes=5, num_edges=6)])
    for transformed in (G.add_self_loops(batched), G.undirected(batched)):
        G.validate(jax.device_get(transformed))
        unbatched = G.drop_masked_edges(jax.device_get(transformed))
        edge_graph = np.repeat([0, 1], np.asarray(unbatched.n_edge))
        node_graph = np.repeat([0, 1], np.asarray(unbatched.n_node))
        assert (node_graph[np.asarray(unbatched.senders)] == edge_graph).all()
        assert (node_graph[np.asarray(unbatched.receivers)] == edge_graph).all()


def test_jit_compiles_once_for_same_shapes():
    traces = []

    @jax.jit
    def normalized(graph):
        traces.append(1)
        return G.gcn_normalize(G.coalesce(graph)).edges

    for seed in range(3):
        normalized(random_graph(seed))
    assert len(traces) == 1


# ---------------------------------------------------------------------------- padding and batching


def test_pad_unpad_round_trip_and_masks():
    graph = random_graph(5)
    padded = G.pad(graph, n_node=16, n_edge=32, n_graph=3)
    assert padded.nodes.shape == (16, 3) and padded.senders.shape == (32,)
    assert np.asarray(G.node_mask(padded)).sum() == 7
    assert np.asarray(G.graph_mask(padded)).tolist() == [True, False, False]
    assert not np.asarray(padded.edges)[12:].any()
    back = G.unpad(padded)
    np.testing.assert_array_equal(back.senders, graph.senders)
    np.testing.assert_array_equal(back.nodes, graph.nodes)
    with pytest.raises(ValueError, match="budgets"):
        G.pad(graph, n_node=7, n_edge=32)


def test_padded_gcn_propagation_equals_unpadded():
    graph = random_graph(6)

    def propagate(g):
        g = G.gcn_normalize(g)
        messages = g.nodes[g.senders] * G.edge_weights(g)[:, None]
        return jax.ops.segment_sum(messages, g.receivers, num_segments=G.num_nodes(g))

    plain = np.asarray(propagate(graph))
    padded = np.asarray(jax.jit(propagate)(G.pad(graph, 16, 32)))
    np.testing.assert_allclose(padded[:7], plain, rtol=1e-6)


def test_bucket_rounds_up_to_powers_of_two_and_their_midpoints():
    # 64 * 2**(k/2) rounded up to 64: 64, 128, 128, 192, 256, 384, 512, 768, 1024, 1472
    assert [G.bucket(v) for v in (1, 64, 65, 129, 200, 257, 1000, 1025)] == [64, 64, 128, 192, 256, 384, 1024, 1472]
    assert G.bucket(10, multiple=8) == 16 and G.bucket(17, multiple=8) == 24


def test_padded_batches_cover_every_graph_with_one_shape():
    graphs = [random_graph(seed, num_nodes=3 + seed % 4, num_edges=2 + seed % 5) for seed in range(11)]
    n_node, n_edge, n_graph = G.budget(graphs, graphs_per_batch=4, multiple=8)
    batches = list(G.padded_batches(graphs, n_node, n_edge, n_graph))
    assert {(b.nodes.shape, b.senders.shape, b.n_node.shape) for b in batches} == {((n_node, 3), (n_edge,), (n_graph,))}
    recovered = [g for b in batches for g in jraph.unbatch_np(G.unpad(b))]
    assert len(recovered) == len(graphs)
    for original, again in zip(graphs, recovered):
        np.testing.assert_array_equal(again.nodes, original.nodes)
        np.testing.assert_array_equal(again.senders, original.senders)
        np.testing.assert_array_equal(again.receivers, original.receivers)


def test_padded_batches_names_graph_that_does_not_fit():
    graphs = [random_graph(0, num_nodes=3), random_graph(1, num_nodes=20)]
    with pytest.raises(ValueError, match="graph 1 .20 nodes"):
        list(G.padded_batches(graphs, n_node=8, n_edge=64, n_graph=3))


def test_graph_ids_and_segment_readout_ignore_padding():
    batched = G.pad(G.batch([random_graph(7, num_nodes=4), random_graph(8, num_nodes=2)]), 10, 40, 3)
    ids = np.asarray(jax.jit(G.node_graph_ids)(batched))
    assert ids.tolist() == [0] * 4 + [1] * 2 + [2] * 4
    sums = jax.ops.segment_sum(jnp.asarray(batched.nodes), ids, num_segments=3)
    np.testing.assert_allclose(np.asarray(sums)[0], np.asarray(batched.nodes)[:4].sum(0), rtol=1e-6)


def test_normalize_features_rows_sum_to_one_and_zero_rows_stay():
    nodes = np.array([[1.0, 3.0], [0.0, 0.0], [2.0, 2.0]], np.float32)
    graph = G.from_edge_index(np.array([[0], [1]]), node_features=nodes)
    np.testing.assert_allclose(np.asarray(G.normalize_features(graph).nodes), [[0.25, 0.75], [0, 0], [0.5, 0.5]])


def test_row_stochastic_rows_sum_to_one_and_zero_rows_stay_zero():
    m = sp.csr_matrix(np.array([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 2.0]], np.float32))
    np.testing.assert_allclose(G.row_stochastic(m).toarray(), [[0.25, 0.75, 0.0], [0.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
