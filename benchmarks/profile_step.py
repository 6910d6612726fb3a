"""Where a GRACE / BGRL train step spends its time: each part jitted and timed on its own.

Usage (one thread, as ``side_by_side.py --threads 1`` measures)::

    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false GCL_JAX_DATA=/work/shared/data \\
        taskset -c 0 python benchmarks/profile_step.py --datasets cora amazon-photo

For every dataset it builds the packaged configs' models on ``runner.node_graph`` (the graph
the runner trains on) and prints process CPU ms (one thread: the work done; median of
``--repeats`` calls after one warm-up):

- ``step``: the whole jitted ``train.make_step`` (forward, backward, optimizer update);
- ``drop_edges`` / ``mask_features``: one view's augmentations (``gcl_jax.augment``);
- ``encoder fwd`` / ``encoder fwd+bwd``: the GCN encoder on one view (``jax.vjp`` of its output,
  parameter gradients only, as the step takes them);
- ``mask + X@W fwd+bwd``: one view's column mask and the first layer's transform;
- ``aggregation``: one ``propagate`` over the GCN-normalized edges at the first layer's width;
- ``loss fwd+bwd``: the method's loss on random embeddings of the encoder's output shape
  (GRACE: ``losses.info_nce`` dense and blockwise; BGRL: the two ``losses.bootstrap`` terms).

A step runs two views (GRACE: two encoder passes; BGRL: four, two of them without gradients),
so the parts do not add up to ``step`` one to one.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from gcl_jax import augment, data, losses, methods, nn, runner, train
from gcl_jax import graph as G


def median_ms(fn, *args, repeats: int) -> float:
    """Median process CPU time of ``fn(*args)`` (already jitted), in ms, after one warm-up call:
    with one thread it is the work done, steadier than wall time on a shared machine."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        jax.block_until_ready(fn(*args))
        times.append(time.process_time() - t0)
    return 1e3 * statistics.median(times)


def step_ms(name: str, dataset_name: str, batch, repeats: int) -> float:
    """The full jitted train step of method ``name`` (packaged config) on ``batch``."""
    cfg = runner.resolve_config(name, dataset_name, None, [])
    optimizer, _ = train.make_optimizer(cfg["lr"], cfg["epochs"], weight_decay=cfg.get("weight_decay", 0.0),
                                        decoupled=cfg.get("decoupled_weight_decay", False),
                                        warmup_steps=cfg.get("warmup_steps", 0), schedule=cfg.get("schedule", "constant"))
    method = methods.get(name).build({**cfg["model"], "total_steps": cfg["epochs"]}, batch)
    ts = train.init_state(method, optimizer, 0, batch)
    step = jax.jit(train.make_step(method, optimizer))
    return median_ms(lambda s: step(s, batch)[1], ts, repeats=repeats)


def encoder_parts(encoder: nn.GraphEncoder, graph, repeats: int) -> dict:
    """Forward and forward+backward (parameter gradients) of ``encoder`` on ``graph``."""
    variables = encoder.init(jax.random.PRNGKey(0), graph, train=False)
    params, rest = variables["params"], {k: v for k, v in variables.items() if k != "params"}

    def forward(p, g):  # training mode; batch statistics (BGRL) are updated and dropped
        if not rest:
            return encoder.apply({"params": p}, g, train=True)
        return encoder.apply({"params": p, **rest}, g, train=True, mutable=list(rest))[0]

    def fwd_bwd(p, g):
        out, pullback = jax.vjp(lambda q: forward(q, g), p)
        return pullback(jnp.ones_like(out))

    return {
        "encoder fwd": median_ms(jax.jit(forward), params, graph, repeats=repeats),
        "encoder fwd+bwd": median_ms(jax.jit(fwd_bwd), params, graph, repeats=repeats),
    }


def first_layer_parts(graph, width: int, feature_p: float, repeats: int) -> dict:
    """One view's column masking + first-layer transform ``X @ W``, fwd+bwd in ``W`` (a ``tanh``
    after it keeps the forward alive); and one GCN aggregation at that width."""
    kernel = jax.random.normal(jax.random.PRNGKey(1), (graph.nodes.shape[1], width)) * 0.05
    key = jax.random.PRNGKey(2)

    def dense(w, k):
        return jnp.sum(jnp.tanh(augment.mask_features(k, graph, feature_p).nodes @ w))

    h = jax.random.normal(jax.random.PRNGKey(3), (graph.nodes.shape[0], width))
    return {
        "mask + X@W fwd+bwd": median_ms(jax.jit(jax.grad(dense)), kernel, key, repeats=repeats),
        "aggregation (normalize + propagate)": median_ms(jax.jit(lambda g, h: nn.propagate(G.gcn_normalize(g), h)),
                                                         graph, h, repeats=repeats),
    }


def augment_parts(graph, edge_p: float, feature_p: float, repeats: int) -> dict:
    key = jax.random.PRNGKey(3)
    return {
        "drop_edges": median_ms(jax.jit(lambda k, g: augment.drop_edges(k, g, edge_p)), key, graph, repeats=repeats),
        "mask_features": median_ms(jax.jit(lambda k, g: augment.mask_features(k, g, feature_p)), key, graph,
                                   repeats=repeats),
    }


def loss_ms(loss_fn, n: int, d: int, repeats: int) -> float:
    """fwd+bwd of ``loss_fn(z1, z2)`` on random ``[n, d]`` embeddings."""
    k1, k2 = jax.random.split(jax.random.PRNGKey(4))
    z1, z2 = jax.random.normal(k1, (n, d)), jax.random.normal(k2, (n, d))
    return median_ms(jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1))), z1, z2, repeats=repeats)


def info_nce_parts(n: int, d: int, tau: float, block_size: int, repeats: int) -> dict:
    """GRACE's loss dense (four ``N x N`` blocks, plain autodiff) and blockwise (the inter-view
    block once, symmetric blocks by halves, custom VJP)."""
    loss = lambda block: lambda a, b: losses.info_nce(a, b, temperature=tau, block_size=block)
    return {"loss fwd+bwd, dense": loss_ms(loss(None), n, d, repeats),
            f"loss fwd+bwd, block_size={block_size}": loss_ms(loss(block_size), n, d, repeats)}


def profile(dataset_name: str, repeats: int) -> list[tuple[str, str, float]]:
    dataset = data.load(dataset_name)
    rows = []
    for name in ("grace", "bgrl"):
        cfg = runner.resolve_config(name, dataset_name, None, [])
        graph = runner.node_graph(dataset, cfg)
        model = cfg["model"]
        rows.append((name, "step", step_ms(name, dataset_name, graph, repeats)))
        if name == "grace":
            encoder = nn.GraphEncoder("gcn", methods.grace.encoder_widths(model["hidden"], model["layers"]),
                                      activation=model["activation"])
            block = losses.tile_size(model["block_size"]) or 256
            loss_rows = info_nce_parts(G.num_nodes(graph), encoder.widths[-1], model["tau"], block, repeats)
        else:
            encoder = nn.GraphEncoder(model["layer"], tuple(model["encoder"]), activation=model["activation"],
                                      norm=model["norm"], heads=model["heads"], gat_concat=model["gat_concat"])
            bootstrap = lambda a, b: 0.5 * (losses.bootstrap(a, b) + losses.bootstrap(b, a))
            loss_rows = {"loss fwd+bwd": loss_ms(bootstrap, G.num_nodes(graph), encoder.widths[-1], repeats)}
        parts = {**augment_parts(graph, model["drop_edge"][0], model["drop_feature"][0], repeats),
                 **encoder_parts(encoder, graph, repeats),
                 **first_layer_parts(graph, encoder.widths[0], model["drop_feature"][0], repeats), **loss_rows}
        rows.extend((name, part, ms) for part, ms in parts.items())
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["cora"])
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per part (median)")
    args = parser.parse_args(argv)
    print(f"{'dataset':<16} | {'method':<6} | {'part':<40} | ms")
    print(f"{'-' * 16}-|-{'-' * 6}-|-{'-' * 40}-|---------")
    for name in args.datasets:
        for method, part, ms in profile(name, args.repeats):
            print(f"{name:<16} | {method:<6} | {part:<40} | {ms:8.2f}", flush=True)


if __name__ == "__main__":
    main()
