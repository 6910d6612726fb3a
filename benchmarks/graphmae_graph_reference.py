"""GraphMAE (graph level) in PyTorch next to gcl-jax, over many seeds, on a TU dataset.

    python benchmarks/graphmae_graph_reference.py --dataset mutag --seeds 20
    python benchmarks/graphmae_graph_reference.py --dataset mutag --seeds 20 --torch-init glorot --jax-set model.torch_init=false

Why: on MUTAG, 188 graphs, the accuracy of one pre-training seed spreads over several points, so a
5-seed mean says little about a method. This script trains the official model (``main_graph.py``
and ``graphmae/models/gin.py`` of github.com/THUDM/GraphMAE, written here from its description:
GIN layers ``MLP(x_i + sum_j x_j)`` with ``MLP = Linear -> BatchNorm -> PReLU -> Linear``, the
encoder's layers followed by ``BatchNorm -> PReLU``, feature dropout before every layer, a
bias-free encoder-to-decoder map, re-masking, a one-layer GIN decoder, the scaled cosine error on
the masked nodes; ``torch.nn`` default initialization) in PyTorch for each seed, and gcl-jax's
``graphmae-graph`` with the same resolved config, and scores both with the official protocol: SVC,
C chosen by inner 5-fold CV from ``[1e-3 .. 10]``, 10 stratified folds of fold seed 0
(``gcl_jax.eval.svm_cv``). Hyperparameters come from gcl-jax's packaged config for the dataset.
Masking draws as the official ``encoding_mask_noise`` (distinct noise sources, ``int()`` counts).

Prints per-seed accuracies and mean ± std for both, and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gcl_jax import data, runner
from gcl_jax import eval as evaluation

HERE = Path(__file__).parent


def torch_graphs(dataset, self_loops: bool) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(features, senders, receivers)`` per graph, self-loops replaced as the official loader does."""
    graphs = []
    for g in dataset.graphs:
        x = torch.tensor(np.asarray(g.nodes), dtype=torch.float32)
        senders, receivers = np.asarray(g.senders), np.asarray(g.receivers)
        if self_loops:
            keep, loops = senders != receivers, np.arange(x.shape[0])
            senders, receivers = np.concatenate([senders[keep], loops]), np.concatenate([receivers[keep], loops])
        graphs.append((x, torch.as_tensor(senders, dtype=torch.long), torch.as_tensor(receivers, dtype=torch.long)))
    return graphs


def collate(graphs, indices):
    """One disjoint-union batch: features, senders, receivers, graph id per node, graph count."""
    xs, senders, receivers, ids, offset = [], [], [], [], 0
    for slot, i in enumerate(indices):
        x, s, r = graphs[i]
        xs.append(x)
        senders.append(s + offset)
        receivers.append(r + offset)
        ids.append(torch.full((x.shape[0],), slot))
        offset += x.shape[0]
    return torch.cat(xs), torch.cat(senders), torch.cat(receivers), torch.cat(ids), len(indices)


class GINLayer(nn.Module):
    """``MLP(x_i + sum_j x_j)``; in the encoder followed by ``BatchNorm -> PReLU``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, encoding: bool):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.PReLU(), nn.Linear(hidden, out_dim))
        self.post = nn.Sequential(nn.BatchNorm1d(out_dim), nn.PReLU()) if encoding else nn.Identity()

    def forward(self, x, senders, receivers):
        summed = x + torch.zeros_like(x).index_add_(0, receivers, x[senders])
        return self.post(self.mlp(summed))


class GIN(nn.Module):
    def __init__(self, dims: list[int], hidden: int, encoding: bool, dropout: float):
        super().__init__()
        self.dropout = dropout
        self.layers = nn.ModuleList(GINLayer(a, hidden, b, encoding) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x, senders, receivers):
        for layer in self.layers:
            x = layer(F.dropout(x, self.dropout, self.training), senders, receivers)
        return x


def glorot_(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for every Linear (gcl-jax's ``torch_init = false``)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def mask_batch(x: torch.Tensor, token: torch.Tensor, mask_rate: float, replace_rate: float):
    """The official ``encoding_mask_noise``: ``int(mask_rate N)`` masked nodes, of them
    ``int(replace_rate masked)`` given other nodes' features, the rest the learnable token."""
    n = x.shape[0]
    masked = torch.randperm(n)[: int(mask_rate * n)]
    count = masked.shape[0]
    order = torch.randperm(count)
    noisy = int(replace_rate * count)
    token_nodes = masked[order[: int((1 - replace_rate) * count)]]
    out = x.clone()
    out[token_nodes] = 0.0
    if noisy:
        out[masked[order[-noisy:]]] = x[torch.randperm(n)[:noisy]]
    out[token_nodes] += token
    return out, masked


def train_torch(graphs, cfg: dict, seed: int, init: str) -> np.ndarray:
    """Pre-train the PyTorch GraphMAE for ``cfg["epochs"]`` epochs; frozen graph embeddings [G, D]."""
    torch.manual_seed(seed)
    model, in_dim = cfg["model"], graphs[0][0].shape[1]
    if model["activation"] != "prelu" or model["norm"] != "batch":
        raise ValueError("the PyTorch reference builds the configs' PReLU + BatchNorm GIN only")
    hidden = model["hidden"]
    encoder = GIN([in_dim] + [hidden] * model["layers"], hidden, True, model["in_drop"])
    decoder = GIN([hidden, in_dim], hidden, False, model["in_drop"])
    to_decoder = nn.Linear(hidden, hidden, bias=False)
    token = nn.Parameter(torch.zeros(1, in_dim))
    if init == "glorot":
        for part in (encoder, decoder, to_decoder):
            glorot_(part)
    parameters = [*encoder.parameters(), *decoder.parameters(), *to_decoder.parameters(), token]
    optimizer = torch.optim.Adam(parameters, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    if cfg["schedule"] == "cosine":
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: (1 + np.cos(e * np.pi / cfg["epochs"])) / 2)
    elif cfg["schedule"] == "constant":
        scheduler = None
    else:
        raise ValueError(f"schedule: the reference knows 'constant' and 'cosine', got {cfg['schedule']!r}")
    batch_size = cfg["batch_size"]
    for _ in range(cfg["epochs"]):
        encoder.train(), decoder.train()
        order = torch.randperm(len(graphs)).tolist()
        for start in range(0, len(order), batch_size):
            x, senders, receivers, _, _ = collate(graphs, order[start:start + batch_size])
            inputs, masked = mask_batch(x, token, model["mask_rate"], model["replace_rate"])
            hidden_rep = to_decoder(encoder(inputs, senders, receivers))
            hidden_rep[masked] = 0.0
            recon = decoder(hidden_rep, senders, receivers)
            cosine = (F.normalize(recon[masked], dim=-1) * F.normalize(x[masked], dim=-1)).sum(-1)
            loss = (1 - cosine).pow(model["alpha"]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
    encoder.eval()
    rows = []
    with torch.no_grad():
        for start in range(0, len(graphs), batch_size):
            x, senders, receivers, ids, count = collate(graphs, range(start, min(start + batch_size, len(graphs))))
            h = encoder(x, senders, receivers)
            pooled = torch.zeros(count, h.shape[1]).index_add_(0, ids, h)
            if model["pooling"] == "mean":
                pooled = pooled / torch.bincount(ids, minlength=count).unsqueeze(1)
            elif model["pooling"] != "sum":
                raise ValueError(f"pooling: the reference knows 'sum' and 'mean', got {model['pooling']!r}")
            rows.append(pooled.numpy())
    return np.concatenate(rows)


def official_score(embeddings: np.ndarray, labels: np.ndarray, cs) -> float:
    """GraphMAE's evaluation: fold seed 0 only."""
    return evaluation.svm_cv(embeddings, labels, seeds=[0], cs=cs).test_mean


def summary(values: list[float]) -> dict:
    a = 100 * np.asarray(values)
    return {"mean": float(a.mean()), "std": float(a.std()), "sem": float(a.std() / np.sqrt(len(a))),
            "first5_mean": float(a[:5].mean()), "per_seed": [round(float(v), 2) for v in a]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mutag")
    p.add_argument("--seeds", type=int, default=20, help="pre-training seeds 0 .. N-1 (default 20)")
    p.add_argument("--torch-init", choices=["torch", "glorot"], default="torch",
                   help="PyTorch side: torch.nn defaults (the official code) or Glorot with zero bias")
    p.add_argument("--jax-set", action="append", default=[], help="extra gcl-jax config override, key=value")
    p.add_argument("--skip-jax", action="store_true", help="run the PyTorch side only")
    p.add_argument("--json", default=None, help="output JSON (default benchmarks/graphmae_graph_reference-DATASET.json)")
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    cfg = runner.resolve_config("graphmae-graph", args.dataset, None, args.jax_set)
    dataset = data.load(args.dataset)
    labels = np.asarray(dataset.labels).reshape(-1)
    cs = cfg["eval"]["cs"]
    graphs = torch_graphs(dataset, cfg["model"]["self_loops"])
    results = {"dataset": args.dataset, "config": cfg, "torch_init": args.torch_init, "jax_set": args.jax_set}
    started = time.perf_counter()
    scores = [official_score(train_torch(graphs, cfg, seed, args.torch_init), labels, cs) for seed in range(args.seeds)]
    results["torch"] = {**summary(scores), "seconds": round(time.perf_counter() - started, 1)}
    if not args.skip_jax:
        started, scores = time.perf_counter(), []
        with tempfile.TemporaryDirectory() as tmp:
            for seed in range(args.seeds):
                record = runner.run("graphmae-graph", args.dataset, overrides=[*args.jax_set, "eval.seeds=[0]"], seed=seed,
                                    out=Path(tmp) / f"seed{seed}", progress=False, plot=False)
                scores.append(record["test_mean"])
        results["gcl-jax"] = {**summary(scores), "seconds": round(time.perf_counter() - started, 1)}
    for side in ("torch", "gcl-jax"):
        if side in results:
            r = results[side]
            print(f"{side:8s} {args.dataset}: {r['mean']:.2f} ± {r['std']:.2f} (sem {r['sem']:.2f}) over {args.seeds} seeds; "
                  f"seeds 0-4: {r['first5_mean']:.2f}; {r['seconds']} s\n         per seed: {r['per_seed']}")
    out = Path(args.json or HERE / f"graphmae_graph_reference-{args.dataset}.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
