"""GraphCLIP on a small real graph (200 nodes of the embedded Cora) with synthetic "text" embeddings
(Cora's word features through a fixed random map, unit-normalised), so no text encoder or torch is
needed: the loss falls, shapes hold, ego graphs match a hand-built graph, the CLIP loss and its
logit-scale gradient match a numpy computation, the sharded loss equals the one-device loss, and
zero-shot scoring matches a hand computation; the runner trains and evaluates it end to end."""

import json

import jax
import numpy as np
import pytest
import scipy.sparse as sp

from gcl_jax import data, parallel, runner, train
from gcl_jax import graph as G
from gcl_jax.config import merge
from gcl_jax.data.tag import TextNodeDataset
from gcl_jax.eval import zeroshot
from gcl_jax.methods import graphclip
from helpers import assert_loss_decreases, train_steps

NODES, TEXT_DIM, STEPS = 200, 16, 20
MODEL = merge(graphclip.DEFAULTS["model"], {"hidden": 16, "proj_hidden": 16, "max_nodes": 8})
STILL = merge(MODEL, {"drop_edge": 0.0, "drop_feature": 0.0})  # deterministic views


def small_text_graph() -> TextNodeDataset:
    """Cora's first ``NODES`` nodes (induced graph) with text-like unit features of width ``TEXT_DIM``
    and one random unit "prompt" per class."""
    cora = data.load("cora")
    adjacency = G.to_scipy(cora.graph)[:NODES, :NODES]
    rng = np.random.default_rng(0)
    words = np.asarray(cora.graph.nodes)[:NODES] @ rng.normal(size=(np.shape(cora.graph.nodes)[1], TEXT_DIM))
    text = (words / np.linalg.norm(words, axis=1, keepdims=True)).astype(np.float32)
    prompts = rng.normal(size=(cora.num_classes, TEXT_DIM)).astype(np.float32)
    return TextNodeDataset("tiny-tag", G.from_scipy(adjacency, text), cora.labels[:NODES], cora.num_classes, {},
                           prompt_embeddings=prompts)


@pytest.fixture(scope="module")
def run():
    dataset = small_text_graph()
    batch = graphclip.dataset_batch(dataset, {"model": MODEL})
    method = graphclip.build(MODEL, batch)
    optimizer, _ = train.make_optimizer(0.01, STEPS)
    ts0, ts, losses = train_steps(method, optimizer, batch, STEPS)
    return dataset, batch, ts0, ts, losses


def test_loss_finite_and_decreasing(run):
    *_, losses = run
    assert_loss_decreases(losses, margin=0.3)


def test_embeddings_live_in_the_text_space(run):
    _, batch, _, ts, _ = run
    z = np.asarray(jax.jit(graphclip.build(MODEL, batch).embed)(ts.params, ts.state, batch))
    assert z.shape == (NODES, TEXT_DIM) and np.isfinite(z).all()
    assert batch.graph.n_node.shape == (NODES + 1,)  # one ego graph per node, plus padding
    assert int(np.max(np.asarray(batch.graph.n_node)[:-1])) <= MODEL["max_nodes"]


def test_logit_scale_is_learned(run):
    _, _, ts0, ts, _ = run
    assert float(ts0.params["logit_scale"]) == pytest.approx(np.log(1 / 0.07))
    assert abs(float(ts.params["logit_scale"]) - float(ts0.params["logit_scale"])) > 1e-3


def test_ego_graphs_by_hand():
    # 0 - 1 - 2 - 3 - 4 (a path) plus 1 - 5; ego graphs centre first, then by hop
    pairs = [(0, 1), (1, 2), (2, 3), (3, 4), (1, 5)]
    rows, cols = zip(*(pairs + [(b, a) for a, b in pairs]))
    adjacency = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(6, 6))
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(graphclip.ego_nodes(adjacency, 2, 1, 10, rng), [2, 1, 3])
    np.testing.assert_array_equal(graphclip.ego_nodes(adjacency, 2, 2, 10, rng), [2, 1, 3, 0, 4, 5])
    capped = graphclip.ego_nodes(adjacency, 2, 2, 4, rng)  # the second hop only has room for one of {0, 4, 5}
    assert list(capped[:3]) == [2, 1, 3] and len(capped) == 4 and capped[3] in (0, 4, 5)
    features = np.arange(6, dtype=np.float32)[:, None]
    egos = graphclip.ego_batch(G.from_scipy(adjacency, features), hops=1, max_nodes=10, seed=0)
    np.testing.assert_array_equal(np.asarray(egos.n_node), [2, 4, 3, 3, 2, 2, 1])  # last: padding
    # node 1's ego graph {1, 0, 2, 5} is a star around 1: 3 undirected edges, both directions
    start, count = 2, 4
    np.testing.assert_array_equal(np.asarray(egos.nodes)[start:start + count, 0], [1, 0, 2, 5])
    senders, receivers = np.asarray(egos.senders), np.asarray(egos.receivers)
    first_edge = int(np.sum(np.asarray(egos.n_edge)[:1]))
    mine = slice(first_edge, first_edge + int(egos.n_edge[1]))
    local = {(int(s) - start, int(r) - start) for s, r in zip(senders[mine], receivers[mine])}
    assert local == {(0, 1), (1, 0), (0, 2), (2, 0), (0, 3), (3, 0)}


def clip_numpy(z, t, scale):
    """Symmetric CLIP loss and its derivative in the log scale, by hand."""
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    v = t / np.linalg.norm(t, axis=1, keepdims=True)
    sim = u @ v.T
    logits = np.exp(scale) * sim

    def direction(m, s):
        p = np.exp(m - m.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        loss = np.mean(-np.log(np.diag(p)))
        grad = np.mean((p * s).sum(axis=1) - np.diag(s)) * np.exp(scale)  # d/d(scale) of the mean CE
        return loss, grad

    (l1, g1), (l2, g2) = direction(logits, sim), direction(logits.T, sim.T)
    return (l1 + l2) / 2, (g1 + g2) / 2


def test_clip_loss_and_logit_scale_gradient_match_numpy(run):
    _, batch, _, ts, _ = run
    method = graphclip.build(STILL, batch)
    key = jax.random.PRNGKey(3)
    value, grads = jax.jit(jax.value_and_grad(lambda p: method.loss(p, ts.state, key, batch)[0]))(ts.params)
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, batch), np.float64)
    expected, expected_grad = clip_numpy(z, np.asarray(batch.text, np.float64), float(ts.params["logit_scale"]))
    np.testing.assert_allclose(float(value), expected, rtol=1e-4)
    np.testing.assert_allclose(float(grads["logit_scale"]), expected_grad, rtol=1e-3, atol=1e-6)
    # past CLIP's bound the scale is clipped at log(100): the loss uses the bound and the gradient is 0
    over = dict(ts.params, logit_scale=np.float32(7.0))
    value, grads = jax.jit(jax.value_and_grad(lambda p: method.loss(p, ts.state, key, batch)[0]))(over)
    bounded, _ = clip_numpy(z, np.asarray(batch.text, np.float64), np.log(100.0))
    np.testing.assert_allclose(float(value), bounded, rtol=1e-4)
    assert float(grads["logit_scale"]) == 0.0


def test_sharded_loss_equals_one_device(run):
    _, batch, _, ts, _ = run
    key = jax.random.PRNGKey(5)
    single = graphclip.build(MODEL, batch).loss(ts.params, ts.state, key, batch)[0]
    sharded = graphclip.build(merge(MODEL, {"axis_name": parallel.DATA_AXIS, "block_size": 32}), batch)
    mesh = parallel.make_mesh(2)
    loss = jax.jit(jax.shard_map(lambda p, b: sharded.loss(p, ts.state, key, b)[0], mesh=mesh,
                                 in_specs=(parallel.REPLICATED, parallel.REPLICATED), out_specs=parallel.REPLICATED))
    np.testing.assert_allclose(float(loss(ts.params, batch)), float(single), rtol=1e-5)


def test_zero_shot_by_hand():
    x = np.array([[1.0, 0.1], [0.2, 3.0], [-1.0, 0.0], [0.5, 0.4]])
    prompts = np.array([[1.0, 0.0], [0.0, 2.0]])  # cosine: the length of a prompt must not matter
    np.testing.assert_array_equal(zeroshot.zero_shot_predict(x, prompts), [0, 1, 1, 0])
    scores = zeroshot.zero_shot_scores(x, prompts, np.array([0, 1, 0, 1]), np.array([0, 1, 2]))
    assert scores["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="text space"):
        zeroshot.zero_shot_predict(np.ones((2, 3)), prompts)


def test_sgc_baseline_matches_dense_propagation():
    dataset = small_text_graph()
    adjacency = G.to_scipy(dataset.graph).toarray() + np.eye(NODES)
    norm = 1 / np.sqrt(adjacency.sum(axis=1))
    propagation = norm[:, None] * adjacency * norm[None, :]
    expected = propagation @ propagation @ np.asarray(dataset.graph.nodes, np.float64)
    np.testing.assert_allclose(zeroshot.sgc_features(dataset.graph, 2), expected, atol=1e-5)


def test_zeroshot_protocol(run):
    dataset, batch, _, ts, _ = run
    z = np.asarray(jax.jit(graphclip.build(MODEL, batch).embed)(ts.params, ts.state, batch))
    result = zeroshot.zeroshot_eval(z, dataset, seed=4, baselines=True, cs=(1.0,))
    test = data.splits.random_split(NODES, 0.6, 0.2, 4)["test"]
    assert len(test) == NODES - int(0.6 * NODES) - int(0.2 * NODES)
    prompts = dataset.prompt_embeddings / np.linalg.norm(dataset.prompt_embeddings, axis=1, keepdims=True)
    hand = np.mean(np.argmax(z[test] @ prompts.T, axis=1) == dataset.labels[test])  # row norms of z: no effect
    assert result.metric == "zeroshot_accuracy" and result.test_mean == pytest.approx(hand)
    assert {"probe_accuracy", "text_zeroshot_accuracy", "text_probe_accuracy", "sgc_zeroshot_accuracy",
            "sgc_probe_accuracy"} <= set(result.extra)
    with pytest.raises(ValueError, match="class-prompt embeddings"):
        zeroshot.zeroshot_eval(z, data.load("cora"), seed=0, cs=(1.0,))


def test_runner_trains_and_scores_zero_shot(tmp_path, monkeypatch):
    dataset = small_text_graph()
    monkeypatch.setattr(runner.data, "load", lambda name, root=None: dataset)
    overrides = ["epochs=3", "model.hidden=16", "model.proj_hidden=16", "model.max_nodes=8", "eval.baselines=false"]
    record = runner.run("graphclip", "tiny-tag", overrides=overrides, out=tmp_path, progress=False, plot=False)
    assert record["protocol"] == "zeroshot" and 0.0 <= record["test_mean"] <= 1.0
    assert json.loads((tmp_path / "results.json").read_text())["extra"]["probe_accuracy"]


def test_packaged_config_resolves():
    cfg = runner.resolve_config("graphclip", "citeseer-tag", None, [])
    assert (cfg["model"]["hops"], cfg["model"]["max_nodes"], cfg["model"]["batch_size"]) == (2, 16, 1024)
    assert cfg["eval"]["protocol"] == "zeroshot" and cfg["normalize_features"] is False
