"""Node-level methods beyond GRACE, sharded: 1 device and 8 simulated devices train alike.

Each method encodes the replicated graph on every device, keeps its own rows and reduces its loss
(and any global statistic: DGI's and MVGRL's summaries, GraphMAE's masked-node mean) over the mesh,
so a few optimizer steps on 8 devices must give the one-device parameters and state up to float
rounding. None of these losses has an N x N term, hence no blockwise (``block_size``) variant.
"""

import jax
import numpy as np
import optax
import pytest

from gcl_jax import data, parallel, train
from gcl_jax import graph as G
from gcl_jax.methods import bgrl, cca_ssg, dgi, gbt, graphmae, mvgrl

STEPS = 3

# Plain SGD makes each update proportional to the gradient, so a gradient off by a factor (a mean
# over one device's rows instead of all) shows up; Adam would normalize it away. Elementwise
# clipping bounds GraphMAE's first gradients (reconstructions near 0 make the cosine error steep).
OPTIMIZER = optax.chain(optax.clip(1.0), optax.sgd(0.05))

NODES = 500  # 8 devices own 63 rows each, the last 59 + 4 padding rows

SMALL = {
    bgrl: {"encoder": [16], "predictor_hidden": 16, "total_steps": STEPS},
    cca_ssg: {"hidden": 16, "out": 16},
    gbt: {"emb_dim": 16},
    dgi: {"hidden": 16},
    graphmae: {"hidden": 16, "heads": 2, "layers": 1},
    mvgrl: {"hidden": 16, "sample_size": 150, "batch_size": 2},  # 300 window rows: padded too
}


@pytest.fixture(scope="module")
def graph():
    """The subgraph of Cora induced by its first ``NODES`` nodes, features row-normalized."""
    cora = data.load("cora").graph
    sub = G.from_scipy(G.to_scipy(cora)[:NODES, :NODES], np.asarray(cora.nodes, np.float32)[:NODES])
    return G.normalize_features(jax.device_put(sub))


def leaves(state):
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(jax.device_get((state.params, state.state)))]


def run(module, graph, devices: int):
    """Leaves of ``(params, state)`` at the start and after ``STEPS`` optimizer steps on ``devices`` devices."""
    model = {**module.DEFAULTS["model"], **SMALL[module]}
    mesh = None
    if devices > 1:
        mesh = parallel.make_mesh(devices)
        model["axis_name"] = parallel.DATA_AXIS
    method = module.build(model, graph)
    start = train.init_state(method, OPTIMIZER, 1, graph)  # what fit starts from (same seed)
    final = train.fit(method, OPTIMIZER, lambda t: graph, STEPS, seed=1, progress=False, mesh=mesh)
    return leaves(start), leaves(final)


@pytest.mark.parametrize("module", list(SMALL), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_eight_devices_match_one_device(module, graph):
    assert module.SHARDED
    (start, one), (_, eight) = run(module, graph, 1), run(module, graph, 8)
    largest_update = max(np.max(np.abs(b - a)) for a, b in zip(start, one))
    assert largest_update > 1e-5  # the steps moved the parameters: the comparison means something
    # Tolerance: 1e-4 of the run's largest update (the two runs sum their gradients in different
    # orders; measured differences are <= 1e-5 of it) plus 1e-6 of each value (float32 rounding of
    # the values themselves). A reduction missing a device's rows changes updates by O(1/8) of
    # their size, far outside. Parameters that only a normalization follows (a GCN bias before
    # batch norm or a standardizing loss) have a zero gradient: both runs leave them near 0.
    for a, b in zip(one, eight):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-4 * largest_update)
