"""BGRL (Thakoor et al., ICLR 2022, "Large-Scale Representation Learning on Graphs via Bootstrapping").

Two views by edge dropping and feature-column masking. The online GCN (or GAT) encoder (every layer
``GCN -> batch norm -> PReLU``) and a one-hidden-layer PReLU predictor map view ``a`` to ``q_a``;
a target encoder of the same shape, initialized independently and never trained by gradients,
maps view ``b`` to ``y_b``. Loss: ``losses.bootstrap`` symmetrized and halved, which is the
official ``2 - cos(q1, y2) - cos(q2, y1)``. After each optimizer step the target moves towards
the online encoder, ``target <- m * target + (1 - m) * online`` with ``m`` rising from ``ema_base``
to 1 on a cosine schedule (``train.cosine_decay_rate``). Optimizer (from the config): AdamW with
linear warm-up then cosine decay of the learning rate. Embeddings: the online encoder, frozen.

``params`` = online encoder + predictor (what AdamW trains); ``state`` = the online encoder's
batch-norm statistics and the target network (its params and its own batch statistics).
The EMA schedule runs over ``model["total_steps"]``, the run's optimizer steps, which the runner
fills in (so ``--set epochs=N`` shortens both together).
Sharded (``--devices N``): every device runs both networks on the whole (replicated) graph, or,
with a ``[partition]`` table, on its own cluster mini-batch (owned nodes plus a halo). Batch
statistics are taken over the owned rows of all devices (the encoder's ``norm_axis_name``), so they
are the one-device statistics of the full graph or of the union of the parts, and the EMA target
update is the same on every device; the cosine loss is averaged over each device's owned rows and
psum-ed (``losses.bootstrap`` with ``axis_name``).
Defaults are the official Amazon-Photos config (github.com/nerdslab/bgrl, config/amazon-photos.cfg).
``model.layer = "gat"`` swaps the GCN layers for GAT ones (``model.heads`` heads, concatenated to the
layer width or, with ``gat_concat = false``, averaged): GraphMAE's re-run of BGRL on Cora / CiteSeer /
PubMed used GATConv (github.com/THUDM/GraphMAE issue #4).
"""

from __future__ import annotations

import jax

from gcl_jax import augment, losses, parallel, train
from gcl_jax.nn import MLP, GraphEncoder
from gcl_jax.train import Method

LEVEL = "node"
SHARDED = True  # reads model["axis_name"]: the loss's rows split across devices
PARTITIONED = True  # accepts cluster mini-batches: see DEFAULTS["partition"]

DEFAULTS = {
    "epochs": 10000,
    "lr": 1e-4,
    "weight_decay": 1e-5,
    "decoupled_weight_decay": True,
    "schedule": "cosine",
    "warmup_steps": 1000,
    "normalize_features": True,
    "checkpoint_every": 1000,
    "model": {
        "layer": "gcn",
        "heads": 1,
        "gat_concat": True,
        "encoder": [256, 128],
        "predictor_hidden": 512,
        "norm": "batch",
        "activation": "prelu",
        "drop_edge": [0.4, 0.1],
        "drop_feature": [0.1, 0.2],
        "ema_base": 0.99,
    },
    "eval": {"protocol": "random"},
    "partition": {"parts": 0, "halo": 0},  # parts > 0: cluster mini-batches (gcl_jax.partition)
}


def build(model: dict, sample) -> Method:
    axis_name = model.get("axis_name")  # set by the runner for multi-device training
    encoder = GraphEncoder(
        model["layer"], tuple(model["encoder"]), activation=model["activation"], norm=model["norm"],
        heads=int(model["heads"]), gat_concat=bool(model["gat_concat"]), norm_axis_name=axis_name,
    )
    predictor = MLP((model["predictor_hidden"], model["encoder"][-1]), activation="prelu")
    total_steps = int(model["total_steps"])

    def view(key, graph, index):
        return augment.drop_edges_mask_features(key, graph, model["drop_edge"][index], model["drop_feature"][index])

    def init(key, batch):
        graph, _ = parallel.local_graph(batch)
        k_online, k_target, k_pred = jax.random.split(key, 3)
        online = encoder.init(k_online, graph, train=False)
        target = encoder.init(k_target, graph, train=False)  # BGRL re-initializes the target
        h = encoder.apply(online, graph, train=False)
        params = {"encoder": online["params"], "predictor": predictor.init(k_pred, h)}
        state = {"batch_stats": online.get("batch_stats", {}), "target": dict(target)}
        return params, state

    def encode(variables, graph, owned):
        """Training-mode forward (batch statistics over the ``owned`` rows, all of them when None);
        returns the output and the updated batch statistics."""
        if "batch_stats" not in variables or not variables["batch_stats"]:
            return encoder.apply(variables, graph, train=True, node_mask=owned), variables.get("batch_stats", {})
        h, updated = encoder.apply(variables, graph, train=True, node_mask=owned, mutable=["batch_stats"])
        return h, updated["batch_stats"]

    def loss(params, state, key, batch):
        graph, owned = parallel.local_graph(batch)
        k1, k2 = jax.random.split(key)
        g1, g2 = view(k1, graph, 0), view(k2, graph, 1)
        # online and target both run in training mode (batch statistics of the view), as the
        # official code; the online statistics are updated view 1 then view 2.
        h1, stats = encode({"params": params["encoder"], "batch_stats": state["batch_stats"]}, g1, owned)
        h2, stats = encode({"params": params["encoder"], "batch_stats": stats}, g2, owned)
        target = state["target"]
        y2, t_stats = encode({"params": target["params"], "batch_stats": target.get("batch_stats", {})}, g2, owned)
        y1, t_stats = encode({"params": target["params"], "batch_stats": t_stats}, g1, owned)
        q1, q2 = predictor.apply(params["predictor"], h1), predictor.apply(params["predictor"], h2)
        (q1, valid), (q2, _), (y1, _), (y2, _) = (parallel.owned_rows(x, owned, axis_name) for x in (q1, q2, y1, y2))
        value = 0.5 * (losses.bootstrap(q1, y2, valid=valid, axis_name=axis_name)
                       + losses.bootstrap(q2, y1, valid=valid, axis_name=axis_name))
        new_target = {"params": target["params"], **({"batch_stats": t_stats} if t_stats else {})}
        return value, ({"batch_stats": stats, "target": new_target}, {})

    def update_state(params, state, step):
        decay = train.cosine_decay_rate(step, total_steps, model["ema_base"])
        target = dict(state["target"])
        target["params"] = train.ema_update(params["encoder"], target["params"], decay)
        return {**state, "target": target}

    def embed(params, state, graph):
        variables = {"params": params["encoder"]}
        if state["batch_stats"]:
            variables["batch_stats"] = state["batch_stats"]
        return encoder.apply(variables, graph, train=False)

    return Method(jax.jit(init), loss, embed, update_state)
