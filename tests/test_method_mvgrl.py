"""MVGRL, node level (embedded Cora) and graph level (embedded MUTAG): training, embeddings, and
the views (normalized adjacency, PPR diffusion, sampled windows) against dense hand computations.

Both losses are O(N) / O(N G) JSD estimators (``losses.jsd``, ``losses.local_global_jsd``) with no
N x N term, so there is no blockwise mode to compare against.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gcl_jax import data, train
from gcl_jax import graph as G
from gcl_jax.methods import mvgrl, mvgrl_graph
from helpers import dense_layers

ALPHA = 0.2


def dense_ppr(adjacency: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    a = adjacency + np.eye(len(adjacency))
    d = 1.0 / np.sqrt(a.sum(1))
    return alpha * np.linalg.inv(np.eye(len(a)) - (1 - alpha) * d[:, None] * a * d[None, :])


def dense_gcn(adjacency: np.ndarray) -> np.ndarray:
    a = adjacency + np.eye(len(adjacency))
    d = 1.0 / np.sqrt(a.sum(1))
    return d[:, None] * a * d[None, :]


def to_dense(graph, n=None):
    """``M[r, s] = weight of s -> r`` (what aggregation multiplies by)."""
    n = n or G.num_nodes(graph)
    m = np.zeros((n, n))
    np.add.at(m, (np.asarray(graph.receivers), np.asarray(graph.senders)), np.asarray(G.edge_weights(graph)))
    return m


@pytest.fixture(scope="module")
def cora():
    """The subgraph of embedded Cora induced by its first 800 nodes (dense checks stay quick)."""
    ds = data.load("cora")
    n = 800
    adjacency = G.to_scipy(ds.graph)[:n, :n]
    sub = G.from_scipy(adjacency, np.asarray(ds.graph.nodes, np.float32)[:n])
    return G.normalize_features(jax.device_put(sub))


# ----------------------------------------------------------------------------- node level


def test_node_level_trains_on_windows(cora):
    model = {**mvgrl.DEFAULTS["model"], "hidden": 16, "sample_size": 300, "batch_size": 2}
    method = mvgrl.build(model, cora)
    optimizer, _ = train.make_optimizer(1e-2, 30)
    step = jax.jit(train.make_step(method, optimizer))
    ts = train.init_state(method, optimizer, 0, cora)
    values = []
    for _ in range(25):
        ts, loss, _ = step(ts, cora)
        values.append(float(loss))
    assert np.all(np.isfinite(values))
    assert abs(values[0] - np.log(2.0)) < 0.05
    assert np.mean(values[-5:]) < values[0] - 0.01
    z = jax.jit(method.embed)(ts.params, ts.state, cora)
    assert z.shape == (G.num_nodes(cora), 16) and bool(jnp.all(jnp.isfinite(z)))
    # full-graph mode (sample_size 0) runs too
    full = mvgrl.build({**model, "sample_size": 0}, cora)
    params, state = full.init(jax.random.PRNGKey(1), cora)
    assert np.isfinite(float(full.loss(params, state, jax.random.PRNGKey(2), cora)[0]))


def test_views_match_dense_formulas(cora):
    adjacency = G.to_scipy(cora).toarray()
    np.testing.assert_allclose(to_dense(mvgrl.normalized_adjacency(cora)), dense_gcn(adjacency), atol=1e-6)
    s = dense_ppr(adjacency)
    diff = mvgrl.diffusion_view(cora, {"alpha": ALPHA, "diffusion_eps": 0.01})
    kept = to_dense(diff)
    np.testing.assert_allclose(kept, np.where(s >= 0.01, s, 0.0), atol=1e-5)
    # min-max scaling: every column of S (edges leaving one sender) peaks at exactly 1
    scaled = mvgrl.diffusion_view(cora, {"alpha": ALPHA, "diffusion_eps": 0.01, "diffusion_scale": "minmax"})
    np.testing.assert_allclose(to_dense(scaled).max(axis=0), 1.0, rtol=1e-6)


def test_window_is_the_induced_subgraph(cora):
    adj = mvgrl.normalized_adjacency(cora)
    size, n = 300, G.num_nodes(cora)
    windows = mvgrl._Windows(adj, n, size)
    full = to_dense(adj)
    starts = jnp.array([0, 234, n - size])
    batch = mvgrl.window_batch(cora.nodes, windows, starts)
    dense = to_dense(batch)
    for b, start in enumerate(np.asarray(starts)):
        block = dense[b * size:(b + 1) * size, b * size:(b + 1) * size]
        np.testing.assert_allclose(block, full[start:start + size, start:start + size], atol=1e-7)
        np.testing.assert_array_equal(np.asarray(batch.nodes)[b * size:(b + 1) * size],
                                      np.asarray(cora.nodes)[start:start + size])
    # no edge crosses between windows
    off = dense.copy()
    for b in range(len(starts)):
        off[b * size:(b + 1) * size, b * size:(b + 1) * size] = 0
    assert not off.any()


# ----------------------------------------------------------------------------- graph level


@pytest.fixture(scope="module")
def mutag_batch():
    ds = data.load("mutag")
    graphs = ds.graphs[:16]
    padded = G.pad(G.batch(graphs), *G.budget(graphs, len(graphs)))
    return graphs, mvgrl_graph.prepare_batch(padded)


def test_graph_views_match_dense_formulas(mutag_batch):
    graphs, (adj, diff) = mutag_batch
    assert np.array_equal(np.asarray(adj.n_node), np.asarray(diff.n_node))
    dense_adj, dense_diff = to_dense(adj), to_dense(diff)
    start = 0
    for g in graphs[:5]:
        n = int(g.n_node[0])
        a = G.to_scipy(g).toarray()
        block = slice(start, start + n)
        np.testing.assert_allclose(dense_adj[block, block], dense_gcn(a), atol=1e-6)
        np.testing.assert_allclose(dense_diff[block, block], dense_ppr(a), atol=1e-5)
        start += n
    # views never connect different graphs (block-diagonal): total weight equals the blocks' sum
    blocks = sum(dense_diff[s:s + n, s:s + n].sum() for s, n in
                 zip(np.cumsum([0] + [int(g.n_node[0]) for g in graphs])[:-1], [int(g.n_node[0]) for g in graphs]))
    np.testing.assert_allclose(dense_diff.sum(), blocks, rtol=1e-5)


def test_graph_level_trains_and_embeds(mutag_batch):
    _, views = mutag_batch
    model = {**mvgrl_graph.DEFAULTS["model"], "hidden": 16, "layers": 2}
    method = mvgrl_graph.build(model, views)
    optimizer, _ = train.make_optimizer(1e-3, 30)
    step = jax.jit(train.make_step(method, optimizer))
    ts = train.init_state(method, optimizer, 0, views)
    values = []
    for _ in range(20):
        ts, loss, _ = step(ts, views)
        values.append(float(loss))
    assert np.all(np.isfinite(values))
    assert np.mean(values[-5:]) < values[0]
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, views))
    assert z.shape == (views[0].n_node.shape[0], 16) and np.all(np.isfinite(z))
    assert not z[-1].any()  # the padding graph's row


def test_graph_level_head_init_names_the_heads_initialization(mutag_batch):
    """``head_init = "torch"``: every head Linear's kernel and bias uniform in +-1/sqrt(fan_in), as the
    official torch.nn.Linear heads; ``"glorot"``: zero biases."""
    _, views = mutag_batch
    model = {**mvgrl_graph.DEFAULTS["model"], "hidden": 16, "layers": 2}
    for kind in ("torch", "glorot"):
        params, _ = mvgrl_graph.build({**model, "head_init": kind}, views).init(jax.random.key(0), views)
        for head in ("node_head", "graph_head"):
            dense = dense_layers(params[head])
            assert len(dense) == 4  # three block layers and the shortcut
            for layer in dense.values():
                kernel, bias = np.asarray(layer["kernel"]), np.asarray(layer["bias"])
                if kind == "torch":
                    bound = kernel.shape[0] ** -0.5
                    assert np.abs(kernel).max() <= bound and 0 < np.abs(bias).max() <= bound
                else:
                    assert not bias.any()
