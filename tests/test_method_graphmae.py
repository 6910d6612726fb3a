"""GraphMAE, node level (embedded Cora) and graph level (embedded MUTAG): training runs and the loss
falls, embeddings have the right shape, and the masked-reconstruction loss matches a hand
computation of the scaled cosine error on exactly the masked nodes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gcl_jax import augment, data, train
from gcl_jax import graph as G
from gcl_jax.config import merge
from gcl_jax.methods import graphmae, graphmae_graph
from helpers import dense_layers, train_steps

STEPS = 20


def _train(method, lr, batch):
    _, ts, losses = train_steps(method, train.make_optimizer(lr, STEPS)[0], batch, STEPS)
    return ts, losses


def _sce(x, recon, mask, alpha):
    x, recon = np.asarray(x, np.float64)[mask], np.asarray(recon, np.float64)[mask]
    norms = np.maximum(np.linalg.norm(x, axis=1), 1e-12) * np.maximum(np.linalg.norm(recon, axis=1), 1e-12)
    return np.mean(np.maximum(1.0 - np.sum(x * recon, 1) / norms, 0.0) ** alpha)


# ----------------------------------------------------------------------------- node level


@pytest.fixture(scope="module")
def node_run():
    # Cora with its 128 most frequent words as features (the full 1433 make a slow CPU test)
    cfg = merge(graphmae.DEFAULTS, {"model": {"hidden": 16, "heads": 2}})
    cora = data.load("cora").graph
    x = np.asarray(cora.nodes, np.float32)
    graph = G.normalize_features(jax.device_put(cora._replace(nodes=x[:, np.argsort(-(x > 0).sum(0), kind="stable")[:128]])))
    method = graphmae.build(cfg["model"], graph)
    ts, losses = _train(method, 1e-2, graph)
    return cfg["model"], graph, method, ts, losses


def test_node_loss_finite_and_decreasing(node_run):
    _, _, _, _, losses = node_run
    assert np.all(np.isfinite(losses))
    assert losses[-5:].mean() < losses[:5].mean() - 0.05


def test_node_embeddings(node_run):
    _, graph, method, ts, _ = node_run
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, graph))
    assert z.shape == (2708, 16) and np.all(np.isfinite(z))


@pytest.mark.parametrize("variant", [graphmae, graphmae_graph])
def test_torch_init_draws_the_official_scales(variant):
    """``torch_init``: GAT kernels xavier-normal with gain sqrt(2) (node level), GIN Linears and
    the encoder_to_decoder map within torch.nn.Linear's +-1/sqrt(fan_in) (graph level, both)."""
    in_dim, hidden = 300, 64
    model = merge(variant.DEFAULTS, {"model": {"hidden": hidden, "torch_init": True}})["model"]
    encoder, to_decoder, _ = variant.networks(model, in_dim)
    graph = G.pad(G.from_edge_index(np.array([[0, 1], [1, 0]]), node_features=np.ones((2, in_dim), np.float32)), 4, 4, 2)
    variables = encoder.init(jax.random.key(0), graph, train=False)
    kernels = [layer["kernel"] for layer in dense_layers(variables["params"]).values()]
    first = kernels[0]
    if variant is graphmae:
        np.testing.assert_allclose(first.std(), np.sqrt(2.0) * np.sqrt(2.0 / (in_dim + hidden)), rtol=0.05)
    else:
        assert first.shape[0] == in_dim and np.abs(first).max() <= in_dim ** -0.5 < 1.05 * np.abs(first).max()
    mapped = np.asarray(to_decoder.init(jax.random.key(1), jnp.zeros((1, hidden)))["params"]["kernel"])
    assert np.abs(mapped).max() <= hidden ** -0.5 < 1.1 * np.abs(mapped).max()


def test_node_loss_is_sce_on_masked_nodes(node_run):
    model, graph, method, ts, _ = node_run
    encoder, to_decoder, decoder = graphmae.networks(model, graph.nodes.shape[-1])
    p = ts.params

    @jax.jit
    def both(key, graph):
        loss, _ = method.loss(p, ts.state, key, graph)
        _, (recon, mask) = graphmae.masked_reconstruction(
            key, graph, p["mask_token"],
            lambda g, k: encoder.apply(p["encoder"], g, train=True, rngs={"dropout": k}),
            lambda h: to_decoder.apply(p["to_decoder"], h),
            lambda g, k: decoder.apply(p["decoder"], g, train=True, rngs={"dropout": k}),
            mask_rate=model["mask_rate"], replace_rate=model["replace_rate"], alpha=model["alpha"],
        )
        return loss, recon, mask

    loss, recon, mask = both(jax.random.PRNGKey(7), graph)
    mask = np.asarray(mask)
    assert mask.sum() == int(model["mask_rate"] * 2708)
    np.testing.assert_allclose(float(loss), _sce(graph.nodes, recon, mask, model["alpha"]), rtol=1e-4)
    # the [MASK] token is learned: training moved it away from its zero init
    assert float(jnp.abs(p["mask_token"]).sum()) > 0


# ----------------------------------------------------------------------------- graph level


@pytest.fixture(scope="module")
def graph_run():
    ds = data.load("mutag")
    model = merge(graphmae_graph.DEFAULTS["model"], {"hidden": 16, "layers": 2})
    batch = G.pad(G.batch(ds.graphs), *G.budget(ds.graphs, len(ds.graphs)))
    method = graphmae_graph.build(model, batch)
    ts, losses = _train(method, 5e-3, batch)
    return ds, model, batch, method, ts, losses


def test_graph_loss_finite_and_decreasing(graph_run):
    *_, ts, losses = graph_run
    assert np.all(np.isfinite(losses))
    assert losses[-5:].mean() < losses[:5].mean() - 0.05


def test_graph_embeddings_and_batch_stats(graph_run):
    ds, model, batch, method, ts, _ = graph_run
    embed = jax.jit(method.embed)
    z = np.asarray(embed(ts.params, ts.state, batch))
    assert z.shape == (len(ds.graphs) + 1, 16) and np.all(np.isfinite(z))
    np.testing.assert_array_equal(z[-1], 0.0)  # the padding graph reads out as zeros
    # batch-norm running statistics live in state and were updated (flax initializes the mean at 0)
    assert np.abs(np.asarray(ts.state["encoder"]["gin_0"]["Norm_0"]["BatchNorm_0"]["mean"])).sum() > 0
    # padding never influences real graphs (eval mode): a looser budget gives the same rows
    n, e, g = G.budget(ds.graphs, len(ds.graphs))
    bigger = G.pad(G.batch(ds.graphs), n + 64, e + 64, g + 3)
    np.testing.assert_allclose(np.asarray(embed(ts.params, ts.state, bigger))[: len(ds.graphs)], z[:-1], rtol=1e-4, atol=1e-4)


def test_graph_loss_is_sce_on_masked_real_nodes(graph_run):
    ds, model, batch, method, ts, _ = graph_run
    encoder, to_decoder, decoder = graphmae_graph.networks(model, batch.nodes.shape[-1])
    p, s = ts.params, ts.state

    @jax.jit
    def both(key, batch):
        loss, _ = method.loss(p, s, key, batch)
        graph = G.add_self_loops(batch)
        real = G.real_node_mask(graph, True)

        def run(module, name, g, k):
            return module.apply({"params": p[name], "batch_stats": s[name]}, g, train=True, node_mask=real,
                                rngs={"dropout": k}, mutable=["batch_stats"])[0]

        _, (recon, mask) = graphmae.masked_reconstruction(
            key, graph, p["mask_token"], lambda g, k: run(encoder, "encoder", g, k),
            lambda h: to_decoder.apply(p["to_decoder"], h), lambda g, k: run(decoder, "decoder", g, k),
            mask_rate=model["mask_rate"], replace_rate=model["replace_rate"], alpha=model["alpha"], padded=True,
            mask_nodes=augment.mask_nodes_by_slot,
        )
        return loss, recon, mask, real

    loss, recon, mask, real = both(jax.random.PRNGKey(3), batch)
    mask, real = np.asarray(mask), np.asarray(real)
    num_real = int(sum(int(g.n_node.sum()) for g in ds.graphs))
    assert mask.sum() == int(model["mask_rate"] * num_real) and not mask[~real].any()
    np.testing.assert_allclose(float(loss), _sce(batch.nodes, recon, mask, model["alpha"]), rtol=1e-4)
