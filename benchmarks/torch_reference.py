"""GRACE, GCA and BGRL in PyTorch + PyTorch Geometric: the reference side of ``side_by_side.py``.

Written for this benchmark from the papers, to the architecture, hyperparameters, augmentations
and schedules that gcl-jax's own ``gcl_jax/methods/grace.py``, ``gca.py`` and ``bgrl.py`` implement, so that
the two frameworks run the same model step for step:

GRACE (Zhu et al. 2020, "Deep Graph Contrastive Representation Learning", arXiv:2006.04131)
    Two views, each: drop every directed edge independently with probability ``drop_edge[i]``,
    zero every feature column (the same columns for all nodes) with probability
    ``drop_feature[i]``. Shared encoder: ``layers`` GCN layers, widths ``2*hidden, ..., hidden``,
    the activation after every layer (``relu`` / ``prelu`` / ``rrelu``). Projection head
    ``Linear(hidden, proj_hidden) -> ELU -> Linear(proj_hidden, hidden)``. Loss: the paper's
    eq. (1)-(2), InfoNCE on cosine similarities / tau with inter- and intra-view negatives,
    averaged over the anchors of both views, written as one 2N x 2N logits matrix with the
    diagonal (an anchor with itself) excluded. Optimizer: Adam with L2 weight decay added to the
    gradient (``torch.optim.Adam(weight_decay=...)``), constant learning rate.

GCA (Zhu et al., WWW 2021, "Graph Contrastive Learning with Adaptive Augmentation"), GCA-DE
    GRACE with per-edge and per-feature-column drop probabilities, computed once from the graph
    with the formulas of the paper (eq. 3-5) in the form of the official code
    (github.com/CRIPAC-DIG/GCA, pGRACE/functional.py): undirected node degree ``d``; edge score
    ``log(d[target] + 1)``; feature-column score ``log(sum_i 1[x_if != 0] d_i + 1)``; weights
    ``(s_max - s) / (s_max - mean s)`` times the view's rate, capped at ``p_tau`` (0.7). Each
    directed edge and each column is then dropped independently with its own probability.

BGRL (Thakoor et al., ICLR 2022, "Large-Scale Representation Learning on Graphs via Bootstrapping")
    Two views as above (rates from the config). Online encoder: every layer
    ``GCN -> BatchNorm -> PReLU``, or ``GAT -> BatchNorm -> PReLU`` with ``model.layer = "gat"``
    (``model.heads`` heads, concatenated to the layer width, or averaged with
    ``model.gat_concat = false``: see :func:`graph_layer`); predictor ``Linear -> PReLU -> Linear``;
    target encoder of the same shape, initialized independently, no gradients, run in training mode (batch statistics).
    Loss ``2 - cos(q1, y2) - cos(q2, y1)`` (node means). After each optimizer step the target
    moves towards the online encoder with ``m = 1 - (1 - ema_base) * (cos(pi * t / T) + 1) / 2``.
    Optimizer: AdamW, learning rate linear warm-up from 0 for ``warmup_steps`` then cosine decay
    to 0 at the last step (optax's ``warmup_cosine_decay_schedule``, evaluated at the step index
    before the update, as gcl-jax's optax chain does).

Choices made to match gcl-jax rather than the official repositories (where they differ):
every Linear weight outside GRACE's projection head is Glorot-uniform with zero bias (flax's
``Dense`` in gcl-jax; torch's default init differs); BatchNorm uses torch momentum 0.1 (gcl-jax's ``Norm``); the graph is
given as ``edge_index`` (both directions of each undirected edge, no self-loops: ``GCNConv`` adds
them and normalizes ``D^-1/2 (A+I) D^-1/2`` on the edges that survive dropping; ``GATConv`` adds
them and takes its softmax over the surviving incoming edges plus the self-loop).
``side_by_side.py`` checks before every benchmark that :func:`graph_layer` and gcl-jax's layers
compute the same function on a small graph (its ``preflight_layers``). Idiomatic
differences that remain: dropped edges are removed from ``edge_index`` here and masked (weight
0) in gcl-jax; random numbers come from torch's generator, not jax's.

This module imports only torch, torch_geometric and numpy (no jax), so that the process in which
``side_by_side.py`` runs it measures PyTorch's memory alone. Entry points: :func:`train`
(``method``, features, ``edge_index``, the resolved gcl-jax config dict, epochs, seed ->
model, per-step wall and CPU seconds, losses) and :func:`embed` (frozen encoder output, eval mode).
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
import torch_geometric.utils
from torch import nn
from torch_geometric.nn import GATConv, GCNConv

# ----------------------------------------------------------------------------- building blocks


def glorot_linear(in_dim: int, out_dim: int) -> nn.Linear:
    """``nn.Linear`` with Glorot-uniform weight and zero bias (flax ``Dense(kernel_init=glorot)``)."""
    layer = nn.Linear(in_dim, out_dim)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def activation(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "prelu":
        return nn.PReLU(num_parameters=1, init=0.25)  # one learned slope, as flax PReLU
    if kind == "rrelu":
        return nn.RReLU(lower=1.0 / 8.0, upper=1.0 / 3.0)  # random slope in training, mean in eval
    if kind == "elu":
        return nn.ELU()
    raise ValueError(f"activation: expected relu, prelu, rrelu or elu, got {kind!r}")


LAYERS = ("gcn", "gat")


def graph_layer(kind: str, in_dim: int, width: int, heads: int = 1, concat: bool = True) -> nn.Module:
    """One graph layer of output width ``width``, mapped as gcl-jax's ``GraphEncoder`` maps it.

    ``gcn``: PyG ``GCNConv`` (self-loops, symmetric normalization; Glorot weight, zero bias).
    ``gat``: PyG ``GATConv`` with gcl-jax's ``GATConv`` semantics: self-loops added, LeakyReLU 0.2,
    no attention dropout, Glorot weight and attention vectors, zero bias; ``concat`` gives each of
    the ``heads`` ``width // heads`` features and concatenates them, else every head has ``width``
    features and they are averaged.
    """
    if kind == "gcn":
        return GCNConv(in_dim, width)
    if kind == "gat":
        if concat and width % heads:
            raise ValueError(f"model.encoder: width {width} is not divisible by model.heads={heads}")
        per_head = width // heads if concat else width
        return GATConv(in_dim, per_head, heads=heads, concat=concat, negative_slope=0.2, dropout=0.0,
                       add_self_loops=True, bias=True)
    raise ValueError(f"model.layer: expected one of {LAYERS}, got {kind!r}")


class GraphEncoder(nn.Module):
    """``layer -> [BatchNorm] -> activation`` per width, the activation after the last layer too."""

    def __init__(self, in_dim: int, widths, act: str, norm: str = "none", layer: str = "gcn", heads: int = 1,
                 concat: bool = True):
        super().__init__()
        dims = [in_dim, *widths]
        self.convs = nn.ModuleList(graph_layer(layer, a, b, heads, concat) for a, b in itertools.pairwise(dims))
        if norm == "batch":
            self.norms = nn.ModuleList(nn.BatchNorm1d(w, eps=1e-5, momentum=0.1) for w in widths)
        elif norm == "none":
            self.norms = nn.ModuleList(nn.Identity() for _ in widths)
        else:
            raise ValueError(f"norm: expected 'batch' or 'none', got {norm!r}")
        self.acts = nn.ModuleList(activation(act) for _ in widths)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        for conv, norm, act in zip(self.convs, self.norms, self.acts):
            x = act(norm(conv(x, edge_index)))
        return x


def view(x: torch.Tensor, edge_index: torch.Tensor, p_edge: float, p_feature: float, gen: torch.Generator):
    """One augmented view: each directed edge dropped with ``p_edge``, each feature column zeroed
    (for every node) with ``p_feature``."""
    keep = torch.rand(edge_index.shape[1], generator=gen, device=x.device) >= p_edge
    drop_col = torch.rand(x.shape[1], generator=gen, device=x.device) < p_feature
    return x.masked_fill(drop_col[None, :], 0.0), edge_index[:, keep]


# ----------------------------------------------------------------------------- GRACE


class GRACE(nn.Module):
    def __init__(self, in_dim: int, model: dict):
        super().__init__()
        hidden, layers = model["hidden"], model.get("layers", 2)
        widths = [2 * hidden] * (layers - 1) + [hidden]
        self.encoder = GraphEncoder(in_dim, widths, model["activation"])  # GCN, as gcl-jax's GRACE always is
        # torch's default Linear init, as the official GRACE head and gcl-jax's ``head_init = "torch"``
        self.projector = nn.Sequential(nn.Linear(hidden, model["proj_hidden"]), nn.ELU(),
                                       nn.Linear(model["proj_hidden"], hidden))
        self.model = model
        self.edge_p, self.feature_p = model["drop_edge"], model["drop_feature"]  # per view

    def loss(self, x, edge_index, gen):
        zs = []
        for i in range(2):
            xv, ev = view(x, edge_index, self.edge_p[i], self.feature_p[i], gen)
            zs.append(self.projector(self.encoder(xv, ev)))
        return info_nce(zs[0], zs[1], self.model["tau"])


def info_nce(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """GRACE eq. (1)-(2): for anchor ``u1_i`` the positive is ``u2_i``, the denominator sums over
    all ``u2_j`` and all ``u1_j, j != i``; the mean over the 2N anchors of both views."""
    n = z1.shape[0]
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (u @ u.T) / tau
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=u.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(u.device)
    return F.cross_entropy(logits, partner)


# ----------------------------------------------------------------------------- GCA


def capped_drop_probabilities(scores: torch.Tensor, p: float, p_tau: float) -> torch.Tensor:
    """GCA eq. (3)/(5): weights ``(s_max - s) / (s_max - mean s)``, rescaled to mean ``p``, capped at
    ``p_tau`` (the official code divides by the weights' mean, which is 1 by construction)."""
    weights = (scores.max() - scores) / (scores.max() - scores.mean())
    return torch.clamp(weights / weights.mean() * p, max=p_tau)


def degree_drop_probabilities(x: torch.Tensor, edge_index: torch.Tensor, model: dict):
    """GCA-DE's per-view ``[E]`` edge and ``[F]`` feature-column drop probabilities: degree of the
    undirected graph ``d``; an edge scores ``log(d[target] + 1)``; a feature column
    ``log(sum_i 1[x_if != 0] d_i + 1)`` (the official code's binarized features and ``+ 1``)."""
    degree = torch_geometric.utils.degree(torch_geometric.utils.to_undirected(edge_index)[1], x.shape[0])
    edge_scores = torch.log(degree[edge_index[1]] + 1.0)
    feature_scores = torch.log((x != 0).to(torch.float32).T @ degree + 1.0)
    p_tau = model.get("p_tau", 0.7)
    edges = [capped_drop_probabilities(edge_scores, p, p_tau) for p in model["drop_edge"]]
    features = [capped_drop_probabilities(feature_scores, p, p_tau) for p in model["drop_feature"]]
    return edges, features


class GCA(GRACE):
    """GRACE whose views drop each directed edge and each feature column with its own GCA-DE
    probability (computed once from the training graph)."""

    def __init__(self, in_dim: int, model: dict, x: torch.Tensor, edge_index: torch.Tensor):
        super().__init__(in_dim, model)
        if model.get("centrality", "degree") != "degree":
            raise ValueError(f"model.centrality: the reference implements 'degree', got {model['centrality']!r}")
        self.edge_p, self.feature_p = degree_drop_probabilities(x, edge_index, model)


# ----------------------------------------------------------------------------- BGRL


class BGRL(nn.Module):
    def __init__(self, in_dim: int, model: dict, total_steps: int):
        super().__init__()
        widths = list(model["encoder"])
        layers = {"layer": model["layer"], "heads": int(model["heads"]), "concat": bool(model["gat_concat"])}
        self.online = GraphEncoder(in_dim, widths, model["activation"], model["norm"], **layers)
        self.target = GraphEncoder(in_dim, widths, model["activation"], model["norm"], **layers)  # independent init
        for p in self.target.parameters():
            p.requires_grad_(False)
        out = widths[-1]
        self.predictor = nn.Sequential(glorot_linear(out, model["predictor_hidden"]), nn.PReLU(1, init=0.25),
                                       glorot_linear(model["predictor_hidden"], out))
        self.model, self.total_steps = model, total_steps
        self.encoder = self.online  # the embedding network

    def trainable(self):
        return list(self.online.parameters()) + list(self.predictor.parameters())

    def loss(self, x, edge_index, gen):
        m = self.model
        x1, e1 = view(x, edge_index, m["drop_edge"][0], m["drop_feature"][0], gen)
        x2, e2 = view(x, edge_index, m["drop_edge"][1], m["drop_feature"][1], gen)
        h1, h2 = self.online(x1, e1), self.online(x2, e2)  # batch stats updated view 1, then view 2
        with torch.no_grad():
            y2, y1 = self.target(x2, e2), self.target(x1, e1)  # target in training mode too
        q1, q2 = self.predictor(h1), self.predictor(h2)
        return 2.0 - F.cosine_similarity(q1, y2, dim=-1).mean() - F.cosine_similarity(q2, y1, dim=-1).mean()

    @torch.no_grad()
    def update_target(self, step: int):
        progress = min(step / max(self.total_steps, 1), 1.0)
        decay = 1.0 - (1.0 - self.model["ema_base"]) * (math.cos(math.pi * progress) + 1.0) / 2.0
        for t, o in zip(self.target.parameters(), self.online.parameters()):
            t.mul_(decay).add_(o, alpha=1.0 - decay)


# ----------------------------------------------------------------------------- optimizer


def lr_at(step: int, cfg: dict, total_steps: int) -> float:
    """gcl-jax's ``train.make_optimizer`` schedule at optimizer step ``step`` (0-based)."""
    peak, warmup = cfg["lr"], int(cfg.get("warmup_steps", 0))
    schedule = cfg.get("schedule", "constant")
    if schedule == "constant":
        return peak * min(step / warmup, 1.0) if warmup else peak
    if schedule == "cosine":  # optax.warmup_cosine_decay_schedule(0, peak, warmup, max(T, warmup+1), 0)
        if warmup and step < warmup:
            return peak * step / warmup
        decay_steps = max(total_steps, warmup + 1) - warmup
        t = min(step - warmup, decay_steps)
        return peak * 0.5 * (1.0 + math.cos(math.pi * t / decay_steps))
    raise ValueError(f"schedule: expected 'constant' or 'cosine', got {schedule!r}")


def make_optimizer(params, cfg: dict) -> torch.optim.Optimizer:
    wd = cfg.get("weight_decay", 0.0)
    if cfg.get("decoupled_weight_decay", False):
        return torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=wd, betas=(0.9, 0.999), eps=1e-8)
    return torch.optim.Adam(params, lr=cfg["lr"], weight_decay=wd, betas=(0.9, 0.999), eps=1e-8)


# ----------------------------------------------------------------------------- training


def build(method: str, in_dim: int, cfg: dict, epochs: int, x: torch.Tensor | None = None,
          edge_index: torch.Tensor | None = None) -> nn.Module:
    """The reference model; GCA also needs the training graph (``x``, ``edge_index``)."""
    if method == "grace":
        return GRACE(in_dim, cfg["model"])
    if method == "gca":
        return GCA(in_dim, cfg["model"], x, edge_index)
    if method == "bgrl":
        return BGRL(in_dim, cfg["model"], epochs)
    raise ValueError(f"method: expected grace, gca or bgrl, got {method!r}")


def train(method: str, x: torch.Tensor, edge_index: torch.Tensor, cfg: dict, epochs: int, seed: int):
    """Train for ``epochs`` full-graph steps on the device ``x`` lives on (CPU or CUDA); returns
    (model, per-step wall seconds, per-step CPU seconds of the process, losses)."""
    torch.manual_seed(seed)
    gen = torch.Generator(device=x.device).manual_seed(seed + 1)
    model = build(method, x.shape[1], cfg, epochs, x, edge_index).to(x.device)
    params = model.trainable() if method == "bgrl" else list(model.parameters())
    opt = make_optimizer(params, cfg)
    model.train()
    seconds, cpu_seconds, losses = [], [], []
    for step in range(epochs):
        started, cpu_started = time.perf_counter(), time.process_time()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg, epochs)
        opt.zero_grad(set_to_none=True)
        loss = model.loss(x, edge_index, gen)
        loss.backward()
        opt.step()
        if method == "bgrl":
            model.update_target(step)
        value = loss.item()  # host sync each step, as gcl-jax's train.fit does with float(loss)
        seconds.append(time.perf_counter() - started)
        cpu_seconds.append(time.process_time() - cpu_started)
        if not math.isfinite(value):
            raise FloatingPointError(f"loss is {value} at step {step}")
        losses.append(value)
    return model, seconds, cpu_seconds, losses


@torch.no_grad()
def embed(model: nn.Module, x: torch.Tensor, edge_index: torch.Tensor) -> np.ndarray:
    model.eval()
    return model.encoder(x, edge_index).cpu().numpy()
