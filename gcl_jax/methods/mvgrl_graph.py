"""MVGRL, graph level (Hassani & Khasahmadi 2020, "Contrastive Multi-View Representation Learning
on Graphs", ICML; arXiv:2006.05582).

Two views of every graph of a batch: the GCN-normalized adjacency ``D^-1/2 (A + I) D^-1/2`` and the
dense personalized-PageRank diffusion ``alpha (I - (1 - alpha) D^-1/2 (A + I) D^-1/2)^-1``
(alpha = 0.2), both made on the host by :func:`prepare_batch` (``augment.ppr`` per graph, cached by
graph content, so each graph is diffused once per run). As in the official ``graph/train.py``
(github.com/kavehhassani/mvgrl) each view has its own stack of ``layers`` GCN layers (512, PReLU)
aggregating with those weights as given; a graph's view embedding is the concatenation over
layers of the sum readout; node embeddings are the last layer's. Two projection heads shared by
the views (``nn.ShortcutMLP``: 3 x [Dense, PReLU] plus a linear shortcut), one for nodes, one for
graphs. The loss is the cross-view local-global JSD, ``losses.local_global_jsd(nodes_1, graphs_2) +
local_global_jsd(nodes_2, graphs_1)`` (the official one plus the constant ``4 log 2``).
Embeddings: ``graphs_1 + graphs_2`` after the head (official ``embed``).

``head_init`` names the heads' initialization. The official heads are torch.nn.Linear ("torch"),
but Glorot stays the default: ``gcl-jax train mvgrl-graph mutag --seed K --set
model.head_init=torch|glorot`` for K = 0, 1, 2 scored 85.48 against 84.76 on average, within
seed noise.

The official encoder is a GCN (dense ``bmm`` with the normalized matrices), not GIN, so GCN is
used here. Padding: padding nodes are neither anchors nor counted by readouts; the padding
graph's projected row is zeroed, so as a negative it adds a constant ``log 2`` per node with no
gradient, but ``local_global_jsd`` still divides the negative term by ``G - 1`` with ``G``
counting the padding graph (a factor ``(G_real - 1)/(G - 1)`` on it; the shared loss has no
graph mask). The loss is O(N G): no N x N term, no ``block_size``.

Data parallel (``model["axis_name"]``): each device encodes its sub-batch of graphs (both views
made on the host per sub-batch), the projected graph rows of all devices are summed into every
device's copy (:func:`gcl_jax.parallel.all_graphs`), and each device scores its own nodes against
them, the JSD means counted over all devices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gcl_jax import augment, losses, parallel
from gcl_jax import graph as G
from gcl_jax.methods.mvgrl import WeightedGCN
from gcl_jax.nn import ShortcutMLP, readout
from gcl_jax.train import Method

LEVEL = "graph"
SHARDED = True  # reads model["axis_name"]: sub-batches of graphs per device, every device's graphs gathered for the JSD

ALPHA = 0.2  # MVGRL's teleport probability (utils.compute_ppr's default, used by graph/dataset.py)

DEFAULTS = {
    "epochs": 40,
    "batch_size": 64,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "checkpoint_every": 100,
    "degree_features": False,  # append one-hot degrees to the node features (official, for data without attributes)
    "model": {
        "hidden": 512,
        "layers": 4,
        "activation": "prelu",
        "head_init": "glorot",  # "torch": the heads' Linears as torch.nn.Linear initializes them (the official code's)
    },
    "eval": {"protocol": "svm", "kernel": "linear", "seeds": [0, 1, 2, 3, 4]},
}


_gcn_normalize = jax.jit(G.gcn_normalize)  # host-side, compiled once per batch budget


def prepare_batch(batch: G.GraphsTuple) -> tuple[G.GraphsTuple, G.GraphsTuple]:
    """A padded batch -> ``(adjacency view, diffusion view)``, padded alike (same nodes and graphs).

    The diffusion is dense per graph (every pair of a graph's nodes is an edge, as the official
    dense matrices); its edge budget is the batch's count rounded up by :func:`gcl_jax.graph.bucket`,
    so only a few shapes ever compile.
    """
    batch = jax.tree_util.tree_map(np.asarray, batch)
    n_node, n_graph = int(np.sum(batch.n_node)), int(batch.n_node.shape[0])
    adj = jax.tree_util.tree_map(np.asarray, _gcn_normalize(batch))
    real = G.unpad(batch)
    diff = G.batch([augment.ppr(g, alpha=ALPHA, eps=0.0) for g in jraph.unbatch_np(real)] or [real])  # [real]: no graphs
    n_edge = G.bucket(int(np.sum(diff.n_edge)))
    diff = jax.tree_util.tree_map(np.asarray, G.pad(diff, n_node, n_edge, n_graph))
    return adj, diff._replace(nodes=adj.nodes)


def build(model: dict, sample) -> Method:
    widths = (model["hidden"],) * model["layers"]
    enc_adj = WeightedGCN(widths, model["activation"])
    enc_diff = WeightedGCN(widths, model["activation"])
    node_head, graph_head = (ShortcutMLP(model["hidden"], "prelu", initializer=model["head_init"]) for _ in range(2))
    axis_name = model.get("axis_name")  # set by the runner for multi-device training

    def encode(params, enc, name, view, owned=None):
        """Projected node rows of this device and the projected rows of every device's graphs."""
        outs = enc.apply(params[name], view)
        graphs = jnp.concatenate([readout(view, h, "sum", padded=True) for h in outs], axis=-1)
        graphs = parallel.all_graphs(graph_head.apply(params["graph_head"], graphs), view, owned, axis_name)
        return node_head.apply(params["node_head"], outs[-1]), graphs

    def init(key, views):
        (adj, diff), _ = parallel.local_graph(views)
        k1, k2, k3, k4 = jax.random.split(key, 4)
        p_adj, p_diff = enc_adj.init(k1, adj), enc_diff.init(k2, diff)
        outs = enc_adj.apply(p_adj, adj)
        graphs = jnp.concatenate([readout(adj, h, "sum") for h in outs], axis=-1)
        params = {"enc_adj": p_adj, "enc_diff": p_diff,
                  "node_head": node_head.init(k3, outs[-1]), "graph_head": graph_head.init(k4, graphs)}
        return params, {}

    def loss(params, state, key, views):
        (adj, diff), owned = parallel.local_graph(views)
        local1, global1 = encode(params, enc_adj, "enc_adj", adj, owned)
        local2, global2 = encode(params, enc_diff, "enc_diff", diff, owned)
        ids, valid = G.node_graph_ids(adj), G.node_mask(adj)
        value = (losses.local_global_jsd(local1, global2, ids, valid=valid, axis_name=axis_name)
                 + losses.local_global_jsd(local2, global1, ids, valid=valid, axis_name=axis_name))
        return value, (state, {})

    def embed(params, state, views):
        adj, diff = views
        return encode(params, enc_adj, "enc_adj", adj)[1] + encode(params, enc_diff, "enc_diff", diff)[1]

    return Method(init, loss, embed)
