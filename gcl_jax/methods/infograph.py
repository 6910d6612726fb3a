"""InfoGraph (Sun et al. 2020, "InfoGraph: Unsupervised and Semi-supervised Graph-Level
Representation Learning via Mutual Information Maximization", ICLR 2020).

A GIN encoder (``BN(ReLU(GIN(x)))`` per layer) gives patch (node) representations, the
concatenation of every layer's node states, and a graph representation, the concatenation of
every layer's sum readout. Two feed-forward heads (three ReLU layers plus a linear shortcut, the
official ``FF``: ``nn.ShortcutMLP``) map nodes and graphs into one space; the Jensen-Shannon
local-global loss (``losses.local_global_jsd``) scores every node against every graph of the
batch, its own graph the positive. Padding nodes are excluded; padding graphs are dropped (the
trailing one) or have their head output zeroed (see ``loss``). Embeddings for evaluation are the
encoder's graph readouts. Defaults: the official unsupervised code (github.com/sunfanyunn/InfoGraph:
unsupervised/arguments.py, main.py, README.md), no prior term. ``model.torch_init`` initializes
every Linear as ``torch.nn.Linear`` does (the official code's); off by default, as on MUTAG it
scored 86.55 ± 0.54 against Glorot's 86.00 ± 0.20 over 3 seeds (``experiments/RESULTS.md``, tag
torch-init): initialization does not explain the gap to the paper's 89.01.

Data parallel (``model["axis_name"]``): each device encodes its sub-batch of graphs (batch norm
over all devices' nodes, the encoder's ``norm_axis_name``), the graph embeddings of all
devices are summed into every device's copy (:func:`gcl_jax.parallel.all_graphs`: each holds its
own slots, zeros elsewhere), and every device scores its own nodes against all of them, the JSD
means counted over all devices (``losses.local_global_jsd`` with ``axis_name``).
"""

from __future__ import annotations

import jax

from gcl_jax import graph as G
from gcl_jax import losses, parallel
from gcl_jax.methods.graphcl import dense_initializer, gin_encoder
from gcl_jax.nn import ShortcutMLP, readout
from gcl_jax.train import Method

LEVEL = "graph"
SHARDED = True  # reads model["axis_name"]: sub-batches of graphs per device, every device's graphs gathered for the JSD

DEFAULTS = {
    "epochs": 20,
    "lr": 0.001,
    "weight_decay": 0.0,
    "batch_size": 128,
    "checkpoint_every": 100,
    "model": {
        "hidden": 32,
        "layers": 5,
        "torch_init": False,  # True: every Linear as torch.nn.Linear initializes it (the official code's)
    },
    "eval": {"protocol": "svm", "seeds": [0, 1, 2, 3, 4]},
}


def build(model: dict, sample) -> Method:
    encoder = gin_encoder(model)
    width = model["hidden"] * model["layers"]
    local_head, global_head = (ShortcutMLP(width, "relu", initializer=dense_initializer(model)) for _ in range(2))
    axis_name = model.get("axis_name")  # set by the runner for multi-device training

    def representations(params, state, batch, train: bool):
        """``(nodes [N, D], graphs [G, D], batch_stats)`` from the encoder (before the heads)."""
        real = G.real_node_mask(batch, True)
        variables = {"params": params["encoder"], "batch_stats": state["encoder"]}
        if train:
            h, updates = encoder.apply(variables, batch, train=True, node_mask=real, mutable=["batch_stats"])
            stats = updates["batch_stats"]
        else:
            h, stats = encoder.apply(variables, batch, train=False, node_mask=real), state["encoder"]
        return h, readout(batch, h, "sum", padded=True), stats

    def init(key, batch):
        batch, _ = parallel.local_graph(batch)
        real = G.real_node_mask(batch, True)
        k_enc, k_local, k_global = jax.random.split(key, 3)
        variables = encoder.init(k_enc, batch, train=False, node_mask=real)
        h = encoder.apply(variables, batch, train=False, node_mask=real)
        y = readout(batch, h, "sum", padded=True)
        params = {
            "encoder": variables["params"],
            "local": local_head.init(k_local, h),
            "global": global_head.init(k_global, y),
        }
        return params, {"encoder": variables["batch_stats"]}

    def loss(params, state, key, batch):
        del key  # deterministic: no augmentation, no dropout
        batch, owned = parallel.local_graph(batch)
        h, y, stats = representations(params, state, batch, train=True)
        local = local_head.apply(params["local"], h)
        # The last graph of a padded batch is always padding: drop it (static slice). Further padding
        # graphs (a short last batch) get a zero head output: their pairs add a constant, no gradient.
        global_ = parallel.all_graphs(global_head.apply(params["global"], y), batch, owned, axis_name)[:-1]
        value = losses.local_global_jsd(local, global_, G.node_graph_ids(batch), valid=G.real_node_mask(batch, True),
                                        axis_name=axis_name)
        return value, ({"encoder": stats}, {})

    def embed(params, state, batch):
        return representations(params, state, batch, train=False)[1]

    return Method(init, loss, embed)
