"""GraphCL (You et al. 2020, "Graph Contrastive Learning with Augmentations", NeurIPS 2020).

Graph-level contrast of two views of every graph of a batch. Each view picks, per graph, one
augmentation from its list (``aug1`` / ``aug2``; names below). The official ``unsupervised_TU``
code contrasts the graph itself (``aug1 = ["identity"]``) with one augmented view drawn per graph
from ``random2`` = {drop_nodes, subgraph} (README; ``random3`` adds drop_edges, ``random4``
mask_nodes); that is the default here, and ``aug1 = aug2`` gives the paper's two augmented views. A GIN encoder (``BN(ReLU(GIN(x)))`` per layer,
the sum readouts of all layers concatenated, InfoGraph's backbone) embeds each view, a two-layer
ReLU projection head maps it, and NT-Xent (``losses.nt_xent``, temperature ``tau``) contrasts
the batch's graphs; padding graphs are neither anchors nor negatives. Embeddings for evaluation
are the encoder's graph readouts of the unaugmented graphs. Defaults: the official
``unsupervised_TU`` code (github.com/Shen-Lab/GraphCL: go.sh, arguments.py, gsimclr.py, aug.py).

Augmentations (rates from aug.py):

- ``identity``: the graph as it is;
- ``drop_nodes``: drop each node with probability ``drop_node`` (aug.py: 10% of the nodes);
- ``subgraph``: keep the nodes of a random walk of ``walk_length`` steps (aug.py keeps 20% of the
  nodes; a static walk length approximates that per dataset);
- ``drop_edges``: drop each edge with probability ``drop_edge`` (aug.py ``permute_edges``
  removes 10% of the edges and adds none);
- ``mask_nodes``: a ``mask_node`` share of the nodes get features drawn from N(0.5, 0.5^2).

Data parallel (``model["axis_name"]``, ``--devices``): each device encodes its sub-batch of graphs
(:func:`gcl_jax.parallel.in_slots` layout), batch norm takes its statistics over all devices'
nodes (the encoder's ``norm_axis_name``), and NT-Xent contrasts every device's graphs
(``axis_name``). Every random draw is keyed by graph slot (per-graph choices and walks by
``augment.graph_keys``, node and edge drops with ``per_graph=True``), so 1 and
``D`` devices see the same views. ``mask_nodes`` masks a share of the whole batch's nodes, which
no device sees whole: it is refused under ``axis_name``.

Differences from the official code: its loss is one-directional InfoNCE against the other
view only with the positive left out of the denominator; here NT-Xent (both directions, in-view
negatives included). Its ``drop_nodes`` / ``subgraph`` implementations keep the edges *among
dropped nodes* (a known bug); here dropped nodes and their edges go, and readouts and batch norm
skip them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gcl_jax import augment, losses, parallel
from gcl_jax import graph as G
from gcl_jax.nn import MLP, GraphEncoder, readout
from gcl_jax.train import Method

LEVEL = "graph"
SHARDED = True  # reads model["axis_name"]: sub-batches of graphs per device, NT-Xent and batch norm across them

DEFAULTS = {
    "epochs": 20,
    "lr": 0.01,
    "weight_decay": 0.0,
    "batch_size": 128,
    "checkpoint_every": 100,
    "model": {
        "hidden": 32,
        "layers": 3,
        "aug1": ["identity"],
        "aug2": ["drop_nodes", "subgraph"],
        "drop_node": 0.1,
        "walk_length": 4,
        "drop_edge": 0.1,
        "mask_node": 0.1,
        "tau": 0.2,
        "self_loops": True,
        "block_size": 0,
        "torch_init": False,  # True: every Linear as torch.nn.Linear initializes it (the official code's)
    },
    "eval": {"protocol": "svm", "seeds": [0, 1, 2, 3, 4]},
}

AUGMENTATIONS = ("identity", "drop_nodes", "subgraph", "drop_edges", "mask_nodes")


def dense_initializer(model: dict) -> str:
    """The Dense initialization ``model["torch_init"]`` selects: ``torch.nn.Linear``'s default, as
    the official PyTorch code runs, or Glorot-uniform with zero bias (``layers.dense_init``)."""
    return "torch" if model["torch_init"] else "glorot"


def gin_encoder(model: dict) -> GraphEncoder:
    """InfoGraph / GraphCL's GIN: ``layers`` GIN-0 layers of width ``hidden``, ``BN(ReLU(.))`` after
    each, all layers' node states concatenated (``hidden * layers`` features); batch statistics
    over all devices' nodes under ``model["axis_name"]``; MLPs initialized per :func:`dense_initializer`."""
    return GraphEncoder(
        "gin", (model["hidden"],) * model["layers"], activation="relu", norm="batch",
        norm_after_activation=True, concat_layers=True, norm_axis_name=model.get("axis_name"),
        gin_initializer=dense_initializer(model),
    )


def _noise_nodes(key, graph, rate):
    """GraphCL's attribute masking: a ``rate`` share of the real nodes get N(0.5, 0.5^2) features."""
    k_pick, k_noise = jax.random.split(key)
    token = jnp.zeros(graph.nodes.shape[-1], graph.nodes.dtype)
    _, picked = augment.mask_nodes(k_pick, graph, token, rate, padded=True)
    noise = 0.5 + 0.5 * jax.random.normal(k_noise, graph.nodes.shape, graph.nodes.dtype)
    return graph._replace(nodes=jnp.where(picked[:, None], noise, graph.nodes))


def augmentation(name: str, model: dict):
    """The named augmentation as a ``(key, graph) -> graph | (graph, keep)`` function on padded batches."""
    table = {
        "identity": augment.identity,
        "drop_nodes": lambda k, g: augment.drop_nodes(k, g, model["drop_node"], padded=True, per_graph=True),
        "subgraph": lambda k, g: augment.subgraph_random_walk(k, g, model["walk_length"], padded=True),
        "drop_edges": lambda k, g: augment.drop_edges(k, g, model["drop_edge"], per_graph=True),
        "mask_nodes": lambda k, g: _noise_nodes(k, g, model["mask_node"]),
    }
    if name not in table:
        raise ValueError(f"augmentation: expected one of {AUGMENTATIONS}, got {name!r}")
    if name == "mask_nodes" and model.get("axis_name") is not None:
        raise ValueError("aug1/aug2: 'mask_nodes' masks a share of the whole batch and cannot be split across devices; "
                         "use --devices 1 or the other augmentations")
    return table[name]


def view_function(names, model: dict):
    """``(key, graph) -> (graph, keep [N])``: each graph of the batch gets one of ``names`` at random."""
    choice = augment.random_choice([augmentation(n, model) for n in names], per_graph=True)

    def view(key, graph):
        out = choice(key, graph)
        if isinstance(out, G.GraphsTuple):
            return out, G.real_node_mask(graph, True)
        return out[0], out[1] & G.real_node_mask(graph, True)

    return view


def build(model: dict, sample) -> Method:
    encoder = gin_encoder(model)
    width = model["hidden"] * model["layers"]
    projector = MLP((width, width), activation="relu", initializer=dense_initializer(model))
    views = (view_function(model["aug1"], model), view_function(model["aug2"], model))
    block_size = losses.tile_size(model["block_size"])
    axis_name = model.get("axis_name")  # set by the runner for multi-device training

    def prepare(batch):
        graph, owned = parallel.local_graph(batch)
        return (G.add_self_loops(graph) if model["self_loops"] else graph), owned

    def init(key, batch):
        graph, _ = prepare(batch)
        real = G.real_node_mask(graph, True)
        k_enc, k_proj = jax.random.split(key)
        variables = encoder.init(k_enc, graph, train=False, node_mask=real)
        y = readout(graph, encoder.apply(variables, graph, train=False, node_mask=real), "sum", padded=True)
        params = {"encoder": variables["params"], "projector": projector.init(k_proj, y)}
        return params, {"encoder": variables["batch_stats"]}

    def project(params, stats, graph, keep, owned):
        """Train-mode projections of one view's graph rows this device owns, their validity, and the
        updated batch statistics."""
        h, updates = encoder.apply(
            {"params": params["encoder"], "batch_stats": stats}, graph, train=True, node_mask=keep,
            mutable=["batch_stats"],
        )
        y, valid = parallel.owned_graphs(readout(graph, h, "sum", padded=True, node_mask=keep), graph, owned, axis_name)
        return projector.apply(params["projector"], y), valid, updates["batch_stats"]

    def loss(params, state, key, batch):
        graph, owned = prepare(batch)
        stats = state["encoder"]
        zs = []
        for view, k in zip(views, jax.random.split(key)):
            z, valid, stats = project(params, stats, *view(k, graph), owned)
            zs.append(z)
        value = losses.nt_xent(zs[0], zs[1], temperature=model["tau"], valid=valid, block_size=block_size, axis_name=axis_name)
        return value, ({"encoder": stats}, {})

    def embed(params, state, batch):
        graph, _ = prepare(batch)
        real = G.real_node_mask(graph, True)
        h = encoder.apply({"params": params["encoder"], "batch_stats": state["encoder"]}, graph, train=False, node_mask=real)
        return readout(graph, h, "sum", padded=True)

    return Method(init, loss, embed)
