"""The experiment runner behind ``gcl-jax train``: config -> data -> training -> evaluation -> run folder.

A run folder holds ``config.toml`` (the resolved config), ``metrics.jsonl``, ``checkpoints/``
(orbax, step-numbered), ``results.json`` and the plots ``loss.png`` / ``embeddings.png``.

In a multi-process run (:func:`gcl_jax.parallel.initialize_distributed`) every process calls
:func:`run` with the same arguments and the same ``out`` (a shared filesystem): each loads the
dataset, trains its devices' part, writes checkpoints collectively and evaluates the same final
state; process 0 alone writes the other files.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np

from gcl_jax import config as config_lib
from gcl_jax import data, eval as evaluation, graph as G, methods, parallel, partition, plots, train
from gcl_jax.data import tu
from gcl_jax.data.safeio import atomic_write_text


#: Keys every run's config has (a method's DEFAULTS may override them): steps between
#: checkpoints, and early stopping's patience in epochs (0: train all ``epochs``).
RUN_DEFAULTS = {"checkpoint_every": 50, "patience": 0}


def resolve_config(method: str, dataset: str, config_file: str | None, overrides: Sequence[str]) -> dict[str, Any]:
    """Run defaults, method defaults, then the packaged (method, dataset) config, then ``config_file``,
    then ``--set``."""
    module = methods.get(method)
    resolved = config_lib.merge(config_lib.merge(RUN_DEFAULTS, module.DEFAULTS), {"method": method.lower(), "dataset": dataset})
    for path in (config_lib.packaged(resolved["method"], dataset), config_file):
        if path is not None:
            resolved = config_lib.merge(resolved, config_lib.read(path))
    return config_lib.apply_overrides(resolved, list(overrides))


def node_graph(dataset, cfg: dict) -> G.GraphsTuple:
    """The training graph on the device, features row-normalized when the config asks."""
    graph = jax.device_put(dataset.graph._replace(nodes=np.asarray(dataset.graph.nodes, np.float32)))
    return G.normalize_features(graph) if cfg.get("normalize_features", False) else graph


def _identity(batch):
    return batch


def node_batches(module, dataset, cfg: dict, devices: int, seed: int):
    """``(batch_fn, steps)`` for node-level training: the method's ``dataset_batch(dataset, cfg)``
    when it defines one (heterogeneous or user-item data), else the whole graph every step, or cluster
    mini-batches (:mod:`gcl_jax.partition`, one part per device per step) when the config's
    ``[partition]`` table sets ``parts`` > 0 (and optionally ``halo``)."""
    options = cfg.get("partition", {})
    if hasattr(module, "dataset_batch"):  # the method's own view of the dataset (meta-paths, interactions)
        if options.get("parts", 0):
            raise ValueError(f"partition: {cfg['method']} builds its own batch and does not take a [partition] table")
        batch = module.dataset_batch(dataset, cfg)
        return (lambda step: batch), int(cfg["epochs"])
    graph = node_graph(dataset, cfg)
    if not options.get("parts", 0):
        batch = getattr(module, "prepare_batch", _identity)(graph)
        return (lambda step: batch), int(cfg["epochs"])
    if not getattr(module, "PARTITIONED", False):
        raise ValueError(f"partition: {cfg['method']} does not train on cluster mini-batches; remove the [partition] table")
    batch_fn = partition.ClusterBatches(jax.device_get(graph), int(options["parts"]), devices, int(options.get("halo", 0)), seed)
    return batch_fn, int(cfg["epochs"]) * batch_fn.steps_per_epoch


def batch_budget(dataset, chunks: list, n_graph: int) -> tuple[int, int, int]:
    """One padded shape ``(n_node, n_edge, n_graph)`` for each of ``chunks`` (lists of graph
    indices): the largest chunk's node (+1 padding node) and edge counts, each rounded up by
    :func:`gcl_jax.graph.bucket`. Sized per batch rather than for the dataset's largest graphs,
    it pads PROTEINS batches of 32 to about 1,500 nodes instead of 7,296; few shapes compile."""
    nodes = max(sum(int(np.sum(dataset.graphs[i].n_node)) for i in chunk) for chunk in chunks)
    edges = max(sum(int(np.sum(dataset.graphs[i].n_edge)) for i in chunk) for chunk in chunks)
    return G.bucket(nodes + 1), G.bucket(max(edges, 1)), n_graph


def padded_batch(dataset, indices, budget: tuple[int, int, int], prepare=_identity):
    """The graphs ``indices`` of ``dataset`` (none: an empty batch) as one batch padded to
    ``budget``, then passed through the method's host-side ``prepare_batch`` (e.g. MVGRL's diffusion)."""
    graphs = [dataset.graphs[i] for i in indices]
    batch = G.batch(graphs or [jax.tree_util.tree_map(lambda leaf: leaf[:0], dataset.graphs[0])])
    return prepare(G.pad(batch, *budget))


def graph_batches(dataset, order: np.ndarray, batch_size: int, prepare=_identity) -> list:
    """Consecutive chunks of ``order`` (graph indices), each a :func:`padded_batch` with
    ``batch_size + 1`` graph slots and its own :func:`batch_budget`."""
    chunks = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    return [padded_batch(dataset, chunk, batch_budget(dataset, [chunk], batch_size + 1), prepare) for chunk in chunks]


def device_batches(dataset, order: np.ndarray, batch_size: int, devices: int, prepare=_identity) -> list:
    """:func:`graph_batches` cut for ``devices``: each batch's graphs split into ``devices``
    consecutive sub-batches of ``batch_size / devices``, all padded to one :func:`batch_budget`,
    prepared, moved to the batch's graph slots (:func:`gcl_jax.parallel.in_slots`) and stacked
    into a :class:`gcl_jax.parallel.Partitioned` whose ``owned`` marks each device's filled slots."""
    per = batch_size // devices
    slots = np.arange(batch_size + 1)
    batches = []
    for start in range(0, len(order), batch_size):
        chunks = [order[start + first:start + first + per] for first in range(0, batch_size, per)]
        budget = batch_budget(dataset, chunks, per + 1)
        parts, owned = [], []
        for first, chunk in zip(range(0, batch_size, per), chunks):
            part = padded_batch(dataset, chunk, budget, prepare)
            parts.append(jax.tree_util.tree_map(lambda g: parallel.in_slots(g, first, batch_size), part,
                                                is_leaf=lambda x: isinstance(x, G.GraphsTuple)))
            owned.append((slots >= first) & (slots < first + len(chunk)))
        batches.append(parallel.Partitioned(partition.stack_graphs(_same_edge_counts(parts)), np.stack(owned)))
    return batches


def _same_edge_counts(parts: list) -> list:
    """Prepared sub-batches with each graph of theirs grown to the largest edge count among them
    (a host-side ``prepare_batch`` may pick its edge budget per batch, e.g. MVGRL's diffusion)."""
    is_graph = lambda x: isinstance(x, G.GraphsTuple)
    flat = [jax.tree_util.tree_flatten(part, is_leaf=is_graph) for part in parts]
    widest = [max(leaves[i].senders.shape[0] for leaves, _ in flat) for i in range(len(flat[0][0]))]
    return [jax.tree_util.tree_unflatten(tree, [parallel.with_edges(g, n) for g, n in zip(leaves, widest)])
            for leaves, tree in flat]


class EpochBatches:
    """``batch_fn`` for graph-level training: step ``t`` gets batch ``t % k`` of epoch ``t // k``,
    the epoch's graph order a permutation seeded by ``(seed, epoch)``: exact on resume.

    With ``devices`` > 1 a batch is :func:`device_batches`' stack of per-device sub-batches (the
    same graphs in the same slots as the one-device batch)."""

    def __init__(self, dataset, batch_size: int, seed: int, prepare=_identity, devices: int = 1):
        if batch_size % devices:
            raise ValueError(
                f"batch_size: {batch_size} graphs do not split evenly over --devices {devices}; "
                f"set batch_size to a multiple of {devices}"
            )
        self.dataset, self.batch_size, self.seed, self.prepare, self.devices = dataset, batch_size, seed, prepare, devices
        self.steps_per_epoch = -(-len(dataset.graphs) // batch_size)
        self._epoch, self._batches = None, []

    def __call__(self, step: int):
        epoch, index = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset.graphs))
            if self.devices == 1:
                batches = graph_batches(self.dataset, order, self.batch_size, self.prepare)
            else:
                batches = device_batches(self.dataset, order, self.batch_size, self.devices, self.prepare)
            self._epoch, self._batches = epoch, batches
        return self._batches[index]


def embed_all(method_fns: train.Method, final: train.TrainState, dataset, batch_fn) -> np.ndarray:
    """Frozen embeddings for evaluation: nodes of the graph, or one row per graph in dataset order."""
    embed = jax.jit(method_fns.embed)
    if isinstance(batch_fn, partition.ClusterBatches):
        return np.asarray(embed(final.params, final.state, batch_fn.graph))
    if not isinstance(batch_fn, EpochBatches):
        return np.asarray(embed(final.params, final.state, batch_fn(0)))
    size, order = batch_fn.batch_size, np.arange(len(dataset.graphs))
    batches = graph_batches(dataset, order, size, batch_fn.prepare)
    rows = [
        np.asarray(embed(final.params, final.state, batch))[: min(size, len(order) - start)]
        for start, batch in zip(range(0, len(order), size), batches)
    ]
    return np.concatenate(rows)


def _planetoid(embeddings, dataset, seed, **options) -> evaluation.EvalResult:
    if not getattr(dataset, "splits", None):
        raise ValueError(f"{dataset.name} has no public split; use protocol 'random' or 'grace'")
    s = dataset.splits
    return evaluation.planetoid_probe(embeddings, dataset.labels, s["train"], s["val"], s["test"], seed=seed, **options)


def _clustering(embeddings, dataset, seed, **options) -> evaluation.EvalResult:
    """k-means on the embeddings (``n_init`` restarts seeded by the run's seed): ACC, with NMI, ARI and
    macro-F1 as extras."""
    scores = evaluation.kmeans_eval(embeddings, dataset.labels, seeds=(seed,), **options)
    acc = scores.pop("acc")
    return evaluation.summarize("clustering_acc", acc.per_split, **{k: r.per_split for k, r in scores.items()})


#: Evaluation protocols by the name a config's ``[eval] protocol`` gives; each takes
#: ``(embeddings, dataset, seed, **options)`` with the rest of the ``[eval]`` table as options.
PROTOCOLS = {
    "planetoid": _planetoid,
    "random": lambda x, ds, seed, **o: evaluation.random_split_probe(x, ds.labels, seed=seed, **o),
    "grace": lambda x, ds, seed, **o: evaluation.grace_probe(x, ds.labels, seed=seed, **o),
    "svm": lambda x, ds, seed, **o: evaluation.svm_cv(x, ds.labels, **o),
    "hetero": lambda x, ds, seed, **o: evaluation.hetero_probe(x, ds.labels, ds.splits, seed=seed, **o),
    "clustering": _clustering,
    "ranking": lambda x, ds, seed, **o: evaluation.ranking_eval(x, ds, **o),
    "zeroshot": lambda x, ds, seed, **o: evaluation.zeroshot_eval(x, ds, seed=seed, **o),
}


def evaluate(protocol: dict, embeddings: np.ndarray, dataset, seed: int) -> evaluation.EvalResult:
    """Score frozen embeddings with the protocol named in the config's ``[eval]`` table."""
    options = {k: v for k, v in protocol.items() if k != "protocol"}
    name = protocol["protocol"]
    if name not in PROTOCOLS:
        raise ValueError(f"eval.protocol: expected one of {', '.join(PROTOCOLS)}, got {name!r}")
    return PROTOCOLS[name](embeddings, dataset, seed, **options)


def run(
    method: str,
    dataset: str,
    *,
    config_file: str | None = None,
    overrides: Sequence[str] = (),
    seed: int = 0,
    out: str | Path | None = None,
    resume: bool = False,
    root: str | None = None,
    devices: int | None = None,
    progress: bool = True,
    plot: bool = True,
) -> dict[str, Any]:
    """Train ``method`` on ``dataset``, evaluate with its standard protocol, write the run folder.

    ``devices`` > 1 trains data-parallel over a mesh of that many devices (node-level: the loss's
    negatives are sharded across them; graph-level: each batch's graphs are split across them,
    ``batch_size`` a multiple of ``devices``); it counts the devices of all processes and defaults
    to 1 on one process, to all devices on several. Returns the ``results.json`` record: method,
    dataset, metric, test_mean, test_std, seconds, ...
    """
    started = time.perf_counter()
    cfg = resolve_config(method, dataset, config_file, overrides)
    module = methods.get(method)
    primary = jax.process_index() == 0
    devices = devices or (jax.device_count() if jax.process_count() > 1 else 1)
    out = Path(out or f"runs/{cfg['method']}-{dataset}-seed{seed}")
    out.mkdir(parents=True, exist_ok=True)
    if primary:
        atomic_write_text(out / "config.toml", config_lib.to_toml(cfg))

    ds = data.load(dataset, root=root)
    if cfg.get("degree_features", False):  # graph-level data: append one-hot degrees (MVGRL's features)
        ds = tu.with_degree_features(ds)
    data_parallel = devices > 1 or jax.process_count() > 1
    if data_parallel and not getattr(module, "SHARDED", False):
        raise ValueError(f"devices: {cfg['method']} does not shard its loss across devices yet; run it with --devices 1")
    if module.LEVEL == "node":
        batch_fn, steps = node_batches(module, ds, cfg, devices, seed)
    else:
        batch_fn = EpochBatches(ds, int(cfg["batch_size"]), seed, getattr(module, "prepare_batch", _identity), devices)
        steps = int(cfg["epochs"]) * batch_fn.steps_per_epoch
    sample = batch_fn(0)
    optimizer, lr = train.make_optimizer(
        cfg["lr"], steps, weight_decay=cfg.get("weight_decay", 0.0), decoupled=cfg.get("decoupled_weight_decay", False),
        warmup_steps=cfg.get("warmup_steps", 0), schedule=cfg.get("schedule", "constant"), clip_norm=cfg.get("clip_norm"),
    )
    mesh = None
    train_batches = batch_fn
    stacked = isinstance(sample, parallel.Partitioned)  # one part / sub-batch per device, sharded along the mesh
    model_cfg = {**cfg["model"], "total_steps": steps}  # schedules inside a method (BGRL's EMA) span the run
    if data_parallel:
        mesh = parallel.make_mesh(devices)
        model_cfg = {**model_cfg, "axis_name": parallel.DATA_AXIS}
        if module.LEVEL == "node" and not stacked:  # the one training graph moves onto the mesh once, not every step
            placed = parallel.global_arrays(sample, mesh)
            train_batches = lambda step: placed
    method_fns = module.build(model_cfg, sample)
    steps_per_epoch = getattr(batch_fn, "steps_per_epoch", 1)
    final = train.fit(
        method_fns, optimizer, train_batches, steps, seed=seed, out_dir=out, resume=resume,
        checkpoint_every=cfg["checkpoint_every"], learning_rate=lr, progress=progress, mesh=mesh,
        batch_spec=jax.sharding.PartitionSpec(parallel.DATA_AXIS) if stacked else None,
        steps_per_epoch=steps_per_epoch, patience=int(cfg["patience"]),
    )
    # the training clock of metrics.jsonl (process 0 writes it): a resumed run counts all its parts
    train_seconds = train.logged_seconds(out / "metrics.jsonl") if primary else None
    epochs_run = int(final.step) // steps_per_epoch
    stopping = {} if final.best is None else {"epochs_run": epochs_run, "best_epoch": int(final.best.epoch)}
    final = jax.device_get(train.best_weights(final))  # host copy: evaluation runs on each process's own devices
    embeddings = embed_all(module.build({**cfg["model"], "total_steps": steps}, sample), final, ds, batch_fn)
    result = evaluate(cfg["eval"], embeddings, ds, seed)
    record = {
        "method": cfg["method"],
        "dataset": dataset,
        "seed": seed,
        "protocol": cfg["eval"]["protocol"],
        **result.as_dict(),
        "rankme": float(evaluation.rankme(embeddings)),
        **stopping,
        "train_seconds": train_seconds and round(train_seconds, 2),
        "seconds": round(time.perf_counter() - started, 2),
        "devices": devices,
        "processes": jax.process_count(),
        "machine": f"{platform.machine()} {jax.devices()[0].platform} x{jax.device_count()}",
    }
    if not primary:
        return record
    atomic_write_text(out / "results.json", json.dumps(record, indent=2) + "\n")
    if plot:
        plots.loss_curve(out / "metrics.jsonl", out / "loss.png")
        if getattr(ds, "labels", None) is not None:  # user-item data has no labels to colour by
            plots.embedding_map(embeddings, ds.labels, out / "embeddings.png", title=f"{cfg['method']} on {dataset}")
    return record
