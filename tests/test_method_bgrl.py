"""BGRL: trains on Cora, embeddings, the EMA target update against a hand computation, configs."""

import jax
import numpy as np
import pytest

from gcl_jax import config as config_lib
from gcl_jax import runner, train
from gcl_jax.methods import bgrl
from helpers import assert_loss_decreases, cora_graph, train_steps

STEPS = 25


@pytest.fixture(scope="module")
def setup():
    graph = cora_graph()
    model = config_lib.merge(bgrl.DEFAULTS["model"], {"encoder": [32, 16], "predictor_hidden": 32, "total_steps": STEPS})
    method = bgrl.build(model, graph)
    optimizer, _ = train.make_optimizer(1e-3, STEPS, weight_decay=1e-5, decoupled=True, warmup_steps=3, schedule="cosine")
    step = jax.jit(train.make_step(method, optimizer))
    ts0, ts, history = train_steps(method, optimizer, graph, STEPS)
    return graph, model, method, optimizer, step, ts0, ts, history


def test_loss_finite_and_decreases(setup):
    *_, history = setup
    assert 0.0 <= history.min() and history.max() <= 4.0  # 2 - cos - cos
    assert_loss_decreases(history, 0.1)


def test_embeddings_finite_with_encoder_width(setup):
    graph, _, method, _, _, _, ts, _ = setup
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, graph))
    assert z.shape == (2708, 16) and np.isfinite(z).all()


def test_target_is_independent_init_and_not_trained_by_gradients(setup):
    _, _, _, _, _, ts0, _, _ = setup
    online, target = ts0.params["encoder"], ts0.state["target"]["params"]
    assert jax.tree_util.tree_structure(online) == jax.tree_util.tree_structure(target)
    assert not np.allclose(online["gcn_0"]["Dense_0"]["kernel"], target["gcn_0"]["Dense_0"]["kernel"])
    assert "target" not in ts0.params  # the optimizer never sees the target


def test_step_moves_target_by_hand_computed_ema(setup):
    graph, model, _, _, step, _, ts, _ = setup
    before = ts.state["target"]["params"]
    after_ts, _, _ = step(ts, graph)
    t = int(ts.step)  # update_state sees the pre-increment step, as the official train(epoch - 1)
    m = 1.0 - (1.0 - model["ema_base"]) * (np.cos(np.pi * min(t / STEPS, 1.0)) + 1.0) / 2.0
    expected = jax.tree_util.tree_map(
        lambda tgt, onl: m * np.asarray(tgt) + (1.0 - m) * np.asarray(onl), before, after_ts.params["encoder"]
    )
    jax.tree_util.tree_map(
        lambda e, a: np.testing.assert_allclose(np.asarray(a), e, rtol=1e-5, atol=1e-7),
        expected, after_ts.state["target"]["params"],
    )
    # at step 0 the decay is the base (0.99): the official mm schedule
    assert float(train.cosine_decay_rate(0, STEPS, 0.99)) == pytest.approx(0.99)


def test_online_batch_stats_update_and_state_structure_is_stable(setup):
    _, _, _, _, _, ts0, ts, _ = setup
    assert jax.tree_util.tree_structure(ts0.state) == jax.tree_util.tree_structure(ts.state)
    mean0 = np.asarray(ts0.state["batch_stats"]["norm_0"]["BatchNorm_0"]["mean"])
    mean = np.asarray(ts.state["batch_stats"]["norm_0"]["BatchNorm_0"]["mean"])
    assert not np.allclose(mean0, mean)


def test_gat_variant_trains_with_multi_head_attention_parameters():
    """``model.layer = "gat"`` (GraphMAE's BGRL re-run): GAT layers with ``heads`` concatenated heads."""
    graph = cora_graph()
    model = config_lib.merge(bgrl.DEFAULTS["model"], {
        "layer": "gat", "heads": 2, "encoder": [32, 16], "predictor_hidden": 32, "total_steps": STEPS,
    })
    method = bgrl.build(model, graph)
    optimizer, _ = train.make_optimizer(
        1e-3, STEPS, weight_decay=1e-5, decoupled=True, warmup_steps=3, schedule="cosine"
    )
    ts0, ts, history = train_steps(method, optimizer, graph, STEPS)
    assert_loss_decreases(history, 0.1)
    online = ts0.params["encoder"]
    assert set(online) >= {"gat_0", "gat_1"} and not any(name.startswith("gcn") for name in online)
    assert online["gat_0"]["att_src"].shape == (1, 2, 16)  # 2 heads of 32 // 2 features
    assert online["gat_1"]["att_dst"].shape == (1, 2, 8)
    assert jax.tree_util.tree_structure(ts0.state["target"]["params"]) == jax.tree_util.tree_structure(online)
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, graph))
    assert z.shape == (2708, 16) and np.isfinite(z).all()


@pytest.mark.parametrize("dataset", ["cora", "citeseer", "amazon-computers", "amazon-photo"])
def test_packaged_configs_use_known_keys(dataset):
    cfg = runner.resolve_config("bgrl", dataset, None, [])
    assert config_lib.packaged("bgrl", dataset) is not None
    assert set(cfg["model"]) == set(bgrl.DEFAULTS["model"])
    assert cfg["warmup_steps"] < cfg["epochs"]
    assert cfg["decoupled_weight_decay"] and cfg["schedule"] == "cosine"
