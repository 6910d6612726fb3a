"""Augmentations: drop rates, determinism, static shapes (one compilation), padding untouched,
validity, combinators, diffusion and GCA on the host, GraphMAE masking."""

from functools import partial

import jax
import jax.numpy as jnp
import jraph
import networkx as nx
import numpy as np
import pytest

from gcl_jax import augment as A
from gcl_jax import graph as G

KEY = jax.random.key(0)


def random_graph(seed, n=30, pairs=60, f=12) -> G.GraphsTuple:
    """Undirected graph in numpy (both directions), features bounded away from 0."""
    rng = np.random.default_rng(seed)
    edges = {(min(a, b), max(a, b)) for a, b in rng.integers(0, n, (pairs, 2)) if a != b}
    index = np.array(sorted(edges) + sorted((b, a) for a, b in edges)).T
    return G.from_edge_index(index, n, (1.0 + rng.random((n, f))).astype(np.float32))


def padded_batch() -> G.GraphsTuple:
    """Two real graphs and a padding graph whose nodes carry a sentinel feature."""
    g = G.pad(G.batch([random_graph(1), random_graph(2, n=20, pairs=40)]), 64, 256, 3)
    return g._replace(nodes=np.where(np.asarray(G.node_mask(g))[:, None], g.nodes, 7.0).astype(np.float32))


BATCH = padded_batch()
REAL = np.asarray(G.node_mask(BATCH))
PAD_EDGES = np.asarray(BATCH.edges) == 0

AUGS = {
    "drop_edges": partial(A.drop_edges, p=0.3),
    "mask_features": partial(A.mask_features, p=0.3, padded=True),
    "dropout_features": partial(A.dropout_features, p=0.3, padded=True),
    "drop_nodes": partial(A.drop_nodes, p=0.3, padded=True),
    "subgraph": partial(A.subgraph_random_walk, walk_length=10, padded=True),
    "shuffle_nodes": partial(A.shuffle_nodes, padded=True),
    "add_edges": partial(A.add_edges, num_new=16, padded=True),
    "random_choice": A.random_choice([partial(A.drop_nodes, p=0.3, padded=True), partial(A.drop_edges, p=0.3)]),
    "per_graph_choice": A.random_choice(
        [partial(A.drop_nodes, p=0.3, padded=True), partial(A.mask_features, p=0.3, padded=True)], per_graph=True
    ),
    "compose": A.compose(partial(A.drop_edges, p=0.3), partial(A.mask_features, p=0.3, padded=True)),
    "drop_edges_mask_features": partial(A.drop_edges_mask_features, edge_p=0.3, feature_p=0.3, padded=True),
}
TRACES = {name: 0 for name in AUGS}


def _counted(name):
    def run(key, graph):
        TRACES[name] += 1  # Python side effect: runs once per trace
        return AUGS[name](key, graph)

    return jax.jit(run)


JITTED = {name: _counted(name) for name in AUGS}


def graph_of(out):
    return out if isinstance(out, G.GraphsTuple) else out[0]


def as_numpy(out):
    return jax.tree_util.tree_map(np.asarray, jax.device_get(graph_of(out)))


@pytest.mark.parametrize("name", list(AUGS))
def test_deterministic_valid_padding_untouched_one_compilation(name):
    fn = JITTED[name]
    first, again, other = (as_numpy(fn(k, BATCH)) for k in (KEY, KEY, jax.random.key(1)))
    shifted = BATCH._replace(nodes=BATCH.nodes * 1.5)  # same budget, new values: no new trace
    fn(jax.random.key(2), shifted)
    assert TRACES[name] == 1
    for leaf_a, leaf_b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(again)):
        np.testing.assert_array_equal(leaf_a, leaf_b)
    assert any(
        not np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(other))
    )
    G.validate(first)
    np.testing.assert_array_equal(first.nodes[~REAL], BATCH.nodes[~REAL])
    if name != "add_edges":
        assert first.senders.shape == BATCH.senders.shape
        assert not np.asarray(first.edges)[PAD_EDGES].any()
        np.testing.assert_array_equal(first.senders, BATCH.senders)
    padding_nodes = np.flatnonzero(~REAL)
    present = np.asarray(first.edges) != 0
    assert not np.isin(np.asarray(first.receivers)[present], padding_nodes).any()


def big_graph():
    return random_graph(5, n=300, pairs=2000, f=64)


def test_drop_rates_match_requested_probability():
    p, n_views = 0.3, 16

    @jax.jit
    def rates(key, g):  # one compilation for the four augmentations
        edges = A.views(partial(A.drop_edges, p=p), key, g, n_views).edges != 0
        columns = A.views(partial(A.mask_features, p=p), key, g, n_views).nodes == 0  # [V, N, F]
        entries = A.views(partial(A.dropout_features, p=p), key, g, n_views).nodes == 0
        _, keep = A.views(partial(A.drop_nodes, p=p), key, g, n_views)
        same_columns = jnp.all(columns.all(1) | ~columns.any(1))
        return 1 - edges.mean(), columns[:, 0].mean(), same_columns, entries.mean(), 1 - keep.mean()

    edge_rate, column_rate, same_columns, entry_rate, node_rate = rates(KEY, big_graph())
    assert abs(edge_rate - p) < 0.02 and abs(entry_rate - p) < 0.01 and abs(node_rate - p) < 0.03
    assert same_columns and abs(column_rate - p) < 0.05  # GRACE: the same columns for all nodes


def test_grace_view_drops_edges_and_columns_at_their_own_rates():
    view = jax.jit(lambda k, g: A.views(partial(A.drop_edges_mask_features, edge_p=0.2, feature_p=0.5), k, g, 16))
    out = view(KEY, big_graph())
    edge_rate = 1 - np.mean(np.asarray(out.edges) != 0)
    column_rate = np.mean(np.asarray(out.nodes)[:, 0] == 0)
    assert abs(edge_rate - 0.2) < 0.02 and abs(column_rate - 0.5) < 0.05


def test_drop_edges_per_edge_probabilities():
    g = random_graph(3)
    probs = np.tile([0.0, 1.0], g.senders.shape[0] // 2 + 1)[: g.senders.shape[0]]
    out = jax.jit(A.drop_edges)(KEY, g, probs)
    np.testing.assert_array_equal(np.asarray(out.edges), 1.0 - probs)


def test_drop_nodes_zeroes_features_and_masks_incident_edges():
    out, keep = JITTED["drop_nodes"](KEY, BATCH)
    keep, nodes, weights = np.asarray(keep), np.asarray(out.nodes), np.asarray(out.edges)
    assert keep[~REAL].all() and not keep[REAL].all()
    assert not nodes[~keep].any() and (nodes[keep] == BATCH.nodes[keep]).all()
    touches = ~keep[BATCH.senders] | ~keep[BATCH.receivers]
    assert not weights[touches].any()
    np.testing.assert_array_equal(weights[~touches], np.asarray(BATCH.edges)[~touches])


def test_add_edges_stay_inside_real_graphs():
    out = as_numpy(JITTED["add_edges"](KEY, BATCH))
    assert out.senders.shape[0] == BATCH.senders.shape[0] + 16
    np.testing.assert_array_equal(out.n_edge.sum(), BATCH.n_edge.sum() + 16)
    ids = np.repeat(np.arange(3), BATCH.n_node)
    edge_graph = np.repeat(np.arange(3), out.n_edge)
    np.testing.assert_array_equal(ids[out.senders], edge_graph)  # edges stay grouped by graph
    np.testing.assert_array_equal(ids[out.receivers], edge_graph)
    assert np.isclose(out.edges.sum(), np.asarray(BATCH.edges).sum() + 16)


def test_random_walk_subgraph_keeps_a_connected_walk_per_graph():
    out, keep = JITTED["subgraph"](KEY, BATCH)
    keep = np.asarray(keep)
    ids = np.repeat(np.arange(3), BATCH.n_node)
    nx_graph = G.to_networkx(as_numpy(out))
    for graph_id in (0, 1):
        kept = np.flatnonzero(keep & (ids == graph_id))
        assert 1 <= len(kept) <= 11
        assert nx.is_weakly_connected(nx_graph.subgraph(kept.tolist()))
    assert not np.asarray(out.nodes)[~keep].any()


def test_shuffle_permutes_rows_within_each_graph():
    out = np.asarray(JITTED["shuffle_nodes"](KEY, BATCH).nodes)
    ids = np.repeat(np.arange(3), BATCH.n_node)
    for graph_id in (0, 1):
        rows = ids == graph_id
        assert not np.array_equal(out[rows], BATCH.nodes[rows])
        np.testing.assert_array_equal(np.sort(out[rows], 0), np.sort(BATCH.nodes[rows], 0))


def test_each_graph_gets_its_own_column_mask():
    out = np.asarray(JITTED["mask_features"](KEY, BATCH).nodes)
    ids = np.repeat(np.arange(3), BATCH.n_node)
    zero_cols = [tuple(out[ids == i].min(0) == 0) for i in (0, 1)]
    assert zero_cols[0] != zero_cols[1]


def test_random_choice_frequencies_and_per_graph_choice():
    drop_all = partial(A.drop_edges, p=1.0)
    choice = A.random_choice([A.identity, drop_all], probs=[0.25, 0.75])
    keys = jax.random.split(KEY, 300)
    kept = jax.jit(jax.vmap(lambda k, g: jnp.sum(choice(k, g).edges), in_axes=(0, None)))(keys, BATCH)
    assert abs(np.mean(np.asarray(kept) == 0) - 0.75) < 0.1
    per_graph = A.random_choice([A.identity, drop_all], per_graph=True)
    weights = np.asarray(jax.jit(per_graph)(jax.random.key(3), BATCH).edges)
    edge_graph = np.repeat(np.arange(3), BATCH.n_edge)
    for graph_id in (0, 1):
        part = weights[edge_graph == graph_id]
        assert (part == 0).all() or (part == 1).all()
    with pytest.raises(ValueError, match="edge count"):
        jax.eval_shape(A.random_choice([A.identity, partial(A.add_edges, num_new=2)], per_graph=True), KEY, BATCH)


def test_compose_ands_keep_masks():
    aug = A.compose(partial(A.drop_nodes, p=0.3, padded=True), partial(A.drop_nodes, p=0.3, padded=True))
    _, keep = jax.jit(aug)(KEY, BATCH)
    assert abs(1 - np.asarray(keep)[REAL].mean() - 0.51) < 0.2


# ---------------------------------------------------------------------------- GraphMAE masking


def test_mask_nodes_exact_count_token_noise_and_gradient():
    token = jnp.full((12,), -3.0)
    fn = jax.jit(partial(A.mask_nodes, rate=0.5, replace_rate=0.2, padded=True))
    out, mask = fn(KEY, BATCH, token)
    mask, nodes = np.asarray(mask), np.asarray(out.nodes)
    assert mask.sum() == REAL.sum() // 2 and not mask[~REAL].any()
    is_token = (nodes == -3.0).all(1)
    assert is_token.sum() == mask.sum() - int(0.2 * mask.sum())
    np.testing.assert_array_equal(nodes[~mask], BATCH.nodes[~mask])
    grad = jax.grad(lambda t: fn(KEY, BATCH, t)[0].nodes.sum())(token)
    np.testing.assert_allclose(grad, is_token.sum())
    h = jnp.ones((64, 4))
    np.testing.assert_array_equal(np.asarray(A.remask(h, mask))[mask], 0)
    np.testing.assert_array_equal(np.asarray(A.remask(h, mask))[~mask], 1)


def test_pick_lowest_takes_the_count_eligible_rows_with_lowest_draws():
    draws = np.array([0.5, 0.1, 0.3, 0.1, 0.9, 0.0, 0.3, 0.7], np.float32)
    eligible = np.array([1, 1, 1, 1, 1, 0, 1, 1], bool)  # row 5 has the lowest draw but is not eligible
    for count in range(8):
        chosen = np.asarray(A.pick_lowest(jnp.asarray(draws), jnp.asarray(eligible), count))
        rows = [i for i in np.lexsort((np.arange(8), draws)) if eligible[i]][:count]  # ties: lower row first
        np.testing.assert_array_equal(np.flatnonzero(chosen), np.sort(rows))


def in_slots(nodes, n_node) -> G.GraphsTuple:
    """Edgeless graphs with ``n_node[s]`` nodes in slot ``s`` (what the slot-keyed draws read)."""
    none = jnp.zeros((0,), jnp.int32)
    return jraph.GraphsTuple(nodes=nodes, edges=None, senders=none, receivers=none, globals=None,
                             n_node=jnp.asarray(n_node), n_edge=jnp.zeros(len(n_node), jnp.int32))


DROPOUT = jax.jit(A.dropout_by_slot, static_argnums=3)


def test_dropout_by_slot_follows_the_graph_not_the_layout():
    x = jnp.arange(1.0, 41.0).reshape(10, 4)
    whole = np.asarray(DROPOUT(KEY, in_slots(x, [3, 2, 4, 1]), x, 0.4))
    alone_x = jnp.concatenate([x[5:9], jnp.zeros((5, 4))])  # graph 2 alone in its slot, then padding
    alone = np.asarray(DROPOUT(KEY, in_slots(alone_x, [0, 0, 4, 5]), alone_x, 0.4))
    np.testing.assert_array_equal(alone[:4], whole[5:9])
    kept = whole != 0
    np.testing.assert_allclose(whole[kept], np.asarray(x)[kept] / 0.6, rtol=1e-6)  # inverted dropout scale
    ones = jnp.ones((1000, 8))
    dropped = np.asarray(DROPOUT(KEY, in_slots(ones, [500, 500]), ones, 0.4)) == 0
    assert abs(dropped.mean() - 0.4) < 0.03  # 8000 independent draws: sd 0.0055


# ---------------------------------------------------------------------------- diffusion (host)


def small_undirected():
    return random_graph(7, n=12, pairs=20, f=3)


def dense_reference(graph, kind):
    a = G.to_scipy(graph).toarray() + np.eye(G.num_nodes(graph))
    d = a.sum(1)
    if kind == "ppr":
        t = a / np.sqrt(d[:, None] * d[None, :])
        return 0.2 * np.linalg.inv(np.eye(len(d)) - 0.8 * t)
    from scipy.linalg import expm

    return expm(5.0 * (a / d[None, :] - np.eye(len(d))))


@pytest.mark.parametrize("kind", ["ppr", "heat"])
def test_diffusion_matches_formula_and_sparse_path(kind):
    A.clear_cache()
    g = small_undirected()
    full = A.diffusion(g, kind, eps=1e-12)
    dense = np.zeros((12, 12))
    dense[full.senders, full.receivers] = full.edges
    np.testing.assert_allclose(dense, dense_reference(g, kind), rtol=1e-5, atol=1e-7)
    topk_dense = A.diffusion(g, kind, topk=4)
    topk_sparse = A.diffusion(g, kind, topk=4, dense_limit=0, block_size=5, tol=1e-10)
    np.testing.assert_array_equal(np.bincount(topk_dense.receivers, minlength=12), 4)
    np.testing.assert_allclose(
        G.to_scipy(topk_sparse).toarray(), G.to_scipy(topk_dense).toarray(), rtol=1e-4, atol=1e-6
    )
    G.validate(A.diffusion(g, kind, eps="auto"))


def test_diffusion_cache_memory_and_disk(tmp_path, monkeypatch):
    A.clear_cache()
    g = small_undirected()
    first = A.ppr(g, topk=3, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("diffusion-*.npz"))) == 1
    monkeypatch.setattr("gcl_jax.augment.diffusions._compute", lambda *a: pytest.fail("recomputed"))
    np.testing.assert_array_equal(A.ppr(g, topk=3).edges, first.edges)  # memory
    A.clear_cache()
    np.testing.assert_array_equal(A.ppr(g, topk=3, cache_dir=tmp_path).edges, first.edges)  # disk


def test_diffusion_of_a_batch_is_per_graph():
    A.clear_cache()
    graphs = [small_undirected(), random_graph(8, n=6, pairs=8, f=3)]
    batch = A.heat(G.batch(graphs), topk=3)
    single = [A.heat(g, topk=3) for g in graphs]
    np.testing.assert_array_equal(batch.n_edge, [int(s.n_edge[0]) for s in single])
    np.testing.assert_allclose(batch.edges, np.concatenate([s.edges for s in single]), rtol=1e-6)


# ---------------------------------------------------------------------------- GCA (host)


def test_gca_centralities_match_networkx():
    g = random_graph(9, n=25, pairs=60)
    und = nx.Graph(G.to_networkx(g))
    pr = nx.pagerank(G.to_networkx(g), alpha=0.85)
    np.testing.assert_allclose(A.node_centrality(g, "pagerank"), [pr[i] for i in range(25)], atol=1e-6)
    largest = max(nx.connected_components(und), key=len)
    sub = und.subgraph(largest)
    ev = nx.eigenvector_centrality_numpy(sub)
    ours = A.node_centrality(g, "eigenvector")
    nodes = sorted(largest)
    np.testing.assert_allclose(ours[nodes] / np.linalg.norm(ours[nodes]), [ev[i] for i in nodes], atol=1e-5)


@pytest.mark.parametrize("centrality", ["degree", "pagerank", "eigenvector"])
def test_gca_probabilities_follow_centrality_and_cap(centrality):
    g = random_graph(10, n=40, pairs=120)
    probs = A.gca_edge_weights(g, centrality, p=0.3, p_tau=0.7)
    phi = A.node_centrality(g, centrality)[np.asarray(g.receivers)]
    assert probs.shape == g.senders.shape and probs.max() <= 0.7 + 1e-6
    order = np.argsort(phi)
    assert (np.diff(probs[order]) <= 1e-6).all()  # more central receiver, lower drop probability
    feature_probs = A.gca_feature_weights(g, centrality, p=0.3)
    assert feature_probs.shape == (12,) and (feature_probs <= 0.7 + 1e-6).all()
    assert abs(np.mean(A.gca_edge_weights(g, centrality, p=0.1)) - 0.1) < 1e-3  # uncapped: mean = p
    out = jax.jit(A.mask_features)(KEY, g, feature_probs)
    G.validate(as_numpy(out))


def test_gca_degree_probabilities_by_hand():
    """A star 0-{1,2,3} with a tail 3-4 and an isolated node 5: degrees 3, 1, 1, 2, 1, 0. With
    ``offset=1`` (the official GCA code's log(degree + 1)) the receivers score log 4, log 2, log 3;
    with the default ``offset=0`` (log degree) log 3, 0, log 2."""
    pairs = [(0, 1), (0, 2), (0, 3), (3, 4)]
    index = np.array(pairs + [(b, a) for a, b in pairs]).T  # receivers 1, 2, 3, 4, 0, 0, 0, 3
    x = np.array([[1, 0], [1, 0], [0, 1], [0, 0], [0, 1], [0, 1]], np.float32)  # column sums of degree: 4, 2
    g = G.from_edge_index(index, 6, x)
    log2, log3, log4 = np.log(2.0), np.log(3.0), np.log(4.0)
    edge_scores = np.array([log2, log2, log3, log2, log4, log4, log4, log3])
    spread = log4 - edge_scores.mean()
    expected = np.minimum((log4 - edge_scores) / spread * 0.4, 0.7)
    np.testing.assert_allclose(A.gca_edge_weights(g, "degree", p=0.4, offset=1.0), expected, rtol=1e-6)
    assert expected.max() == pytest.approx(0.7) and expected.min() == 0.0  # the cap and the hub both reached
    plain_scores = np.array([0.0, 0.0, log2, 0.0, log3, log3, log3, log2])
    plain = np.minimum((log3 - plain_scores) / (log3 - plain_scores.mean()) * 0.4, 0.7)
    np.testing.assert_allclose(A.gca_edge_weights(g, "degree", p=0.4), plain, rtol=1e-6)
    assert not np.allclose(plain, expected)
    feature_scores = np.array([np.log(5.0), log3])  # log(4 + 1), log(2 + 0 + 1)
    feature_expected = (feature_scores.max() - feature_scores) / (feature_scores.max() - feature_scores.mean()) * 0.2
    np.testing.assert_allclose(A.gca_feature_weights(g, "degree", p=0.2, offset=1.0), feature_expected, rtol=1e-6)
