"""InfoGraph on embedded MUTAG: training lowers the loss, embeddings have the right shape, the loss
equals the official JSD local-global objective computed by hand (up to its constant 2 log 2), and
padding nodes never change it."""

import jax
import numpy as np
import pytest

from gcl_jax import data, train
from gcl_jax import graph as G
from gcl_jax.config import merge
from gcl_jax.methods import graphcl, infograph
from gcl_jax.nn import ShortcutMLP, readout
from helpers import dense_layers, train_steps

STEPS = 20
MODEL = merge(infograph.DEFAULTS["model"], {"hidden": 16, "layers": 3})


@pytest.fixture(scope="module")
def run():
    ds = data.load("mutag")
    batch = G.pad(G.batch(ds.graphs), *G.budget(ds.graphs, len(ds.graphs)))
    method = infograph.build(MODEL, batch)
    optimizer, _ = train.make_optimizer(0.001, STEPS)
    _, ts, losses = train_steps(method, optimizer, batch, STEPS)
    return ds, batch, method, ts, losses


def test_loss_finite_and_decreasing(run):
    *_, losses = run
    assert np.all(np.isfinite(losses)) and losses[-3:].mean() < losses[:3].mean()


def test_embeddings(run):
    ds, batch, method, ts, _ = run
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, batch))
    assert z.shape == (len(ds.graphs) + 1, 48) and np.all(np.isfinite(z))
    np.testing.assert_array_equal(z[-1], 0.0)


def _softplus(x):
    return np.logaddexp(0.0, x)


def test_loss_matches_official_jsd_by_hand(run):
    ds, batch, method, ts, _ = run
    encoder = graphcl.gin_encoder(MODEL)
    p, s = ts.params, ts.state

    @jax.jit
    def parts(batch):
        real = G.real_node_mask(batch, True)
        h, _ = encoder.apply({"params": p["encoder"], "batch_stats": s["encoder"]}, batch, train=True,
                             node_mask=real, mutable=["batch_stats"])
        y = readout(batch, h, "sum", padded=True)
        head = ShortcutMLP(h.shape[-1], "relu")
        local, global_ = head.apply(p["local"], h), head.apply(p["global"], y)
        return method.loss(p, s, None, batch)[0], local, global_, real

    loss, local, global_, real = parts(batch)
    local, global_, real = (np.asarray(a, np.float64) for a in (local, global_, real))
    local, global_ = local[real.astype(bool)], global_[: len(ds.graphs)]
    ids = np.repeat(np.arange(len(ds.graphs)), [int(g.n_node.sum()) for g in ds.graphs])
    scores = local @ global_.T
    pos = ids[:, None] == np.arange(len(ds.graphs))[None, :]
    n, g = len(ids), len(ds.graphs)
    # InfoGraph losses.py local_global_loss_ with measure="JSD" (cortex_DIM gan_losses)
    e_pos = np.sum(np.where(pos, np.log(2.0) - _softplus(-scores), 0.0)) / n
    e_neg = np.sum(np.where(~pos, _softplus(scores) - np.log(2.0), 0.0)) / (n * (g - 1))
    np.testing.assert_allclose(float(loss), e_neg - e_pos + 2 * np.log(2.0), rtol=1e-4)


def test_padding_nodes_never_change_the_loss(run):
    ds, batch, method, ts, _ = run
    n, e, g = G.budget(ds.graphs, len(ds.graphs))
    bigger = G.pad(G.batch(ds.graphs), n + 64, e + 64, g)
    loss = jax.jit(method.loss)
    np.testing.assert_allclose(float(loss(ts.params, ts.state, None, bigger)[0]),
                               float(loss(ts.params, ts.state, None, batch)[0]), rtol=1e-5)


@pytest.mark.parametrize("variant", [infograph, graphcl])
def test_torch_init_draws_every_linear_within_torch_bound(variant):
    """``torch_init``: the GIN MLPs and the heads (InfoGraph's FF, GraphCL's projector) draw kernel and
    bias uniform in torch.nn.Linear's +-1/sqrt(fan_in); the default leaves every bias zero."""
    batch = G.pad(G.batch(data.load("mutag").graphs[:4]), 128, 512, 5)
    model = merge(variant.DEFAULTS["model"], {"hidden": 16, "layers": 2})

    def linears(torch_init):
        return dense_layers(variant.build({**model, "torch_init": torch_init}, batch).init(jax.random.key(0), batch)[0])

    torch_layers = linears(True)
    assert {name.split("'")[1] for name in torch_layers} >= {"encoder", "local" if variant is infograph else "projector"}
    for name, layer in torch_layers.items():
        bound = layer["kernel"].shape[0] ** -0.5
        assert np.abs(layer["kernel"]).max() <= bound and np.abs(layer["bias"]).max() <= bound, name
        assert np.abs(layer["bias"]).max() > 0, name
    assert not any(np.any(layer["bias"]) for layer in linears(False).values())
