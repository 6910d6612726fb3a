"""AdaMEOW in PyTorch on gcl-jax's own inputs, scored as gcl-jax scores its runs.

    python benchmarks/adameow_reference.py --epochs 500 --every 100

Why: gcl-jax's AdaMEOW on MEOW's ACM reaches Macro-F1 (20 labels per class) of about 80 after 400
of the official 1,200 epochs, where the official run log reports 91.69 at epoch 500. This script
trains the official model (code_adameow/module/adameow.py and encoder.py of
github.com/jianxiangyu/MEOW, written here from its description) in PyTorch on the batch that
``gcl_jax.methods.adameow.dataset_batch`` builds, so the PathSim top-k graphs, the masked graphs
and features and the context operators are the same arrays, and only the model and its training
differ:

- per node type ``ELU(dropout(Linear(x)))`` (one-hot types: a Linear on the identity);
- per meta-path ``ELU(h_target + dropout(Linear_nobias(mean of the context type's inputs)))``, and the
  same with the masked target features;
- one shared GCN ``layernorm(A dropout(PReLU(A dropout(x W1))) W2)`` (weights uniform in
  ``+-1/sqrt(out)``), run on the coarse view (target inputs, mean of the meta-path graphs) and on
  each meta-path's view and masked view; those ``2M`` outputs, L2-normalized, fused by semantic
  attention (Xavier-normal, gain 1.414);
- both views through ``normalize(tanh(Linear))``; loss ``-log(e^{s_ii} / sum_j W_ij e^{s_ij})``
  with ``s = f c^T / tau`` and ``W_ij = sigmoid(MLP(f_i + c_j))``, MLP ``Linear(64, 16), tanh,
  Linear(16, 1)``; Adam with the config's lr and L2 (``weight_decay``); ``torch.nn`` default
  initialization elsewhere, as the official code leaves it.

First it checks that both compute the same function: gcl-jax's parameters copied into the PyTorch
model, dropout off, the loss, embeddings and gradients agree. With ``--train-checks K`` it checks
what that cannot see: each parameter's spread at initialization on both sides, ``K`` training
steps without dropout from the shared start (gcl-jax's train step against ``torch.optim.Adam``),
and the mean training loss over ``K`` dropout draws on each side (all printed, kept in the JSON).
Then every ``--every`` epochs it scores the fused fine view with gcl-jax's ``hetero`` protocol (the
config's ``[eval]`` table, HeCo's Adam probe as the ``heco_*`` extras), once from the epoch's
training forward pass (dropout on: what the official ``get_embeds`` returns) and once without
dropout (what gcl-jax reports). Prints the curve and writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gcl_jax import data, runner, train
from gcl_jax.methods import adameow, meow

HERE = Path(__file__).parent


def sparse(rows, cols, values, shape) -> torch.Tensor:
    index = torch.as_tensor(np.stack([np.asarray(rows), np.asarray(cols)]), dtype=torch.long)
    return torch.sparse_coo_tensor(index, torch.as_tensor(np.asarray(values), dtype=torch.float32), shape).coalesce()


def operator(op, n: int) -> torch.Tensor:
    """A meow meta-path operator as the matrix ``A`` of ``A @ x``: dense as stored, or the weighted
    graph's ``A[receiver, sender] = weight`` (gcl-jax's ``propagate`` sums senders into receivers)."""
    if isinstance(op, jax.Array):
        return torch.as_tensor(np.asarray(op))
    return sparse(op.receivers, op.senders, op.edges, (n, n))


def torch_batch(batch: dict) -> dict:
    n = batch["masked_target"].shape[0]
    features = {k: torch.as_tensor(np.asarray(v)) for k, v in batch["features"].items()}
    contexts = {p: sparse(c["rows"], c["cols"], c["weights"], (n, features[p[-1]].shape[0]))
                for p, c in batch["contexts"].items()}
    return {
        "features": features,
        "masked_target": torch.as_tensor(np.asarray(batch["masked_target"])),
        "contexts": contexts,
        "metapaths": {m: operator(op, n) for m, op in batch["metapaths"].items()},
        "masked_metapaths": {m: operator(op, n) for m, op in batch["masked_metapaths"].items()},
    }


def product(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.sparse.mm(a, x) if a.is_sparse else a @ x


class TypeInput(nn.Module):
    """``Linear`` on a type's features, or on the identity for one-hot ids (integer input)."""

    def __init__(self, x: torch.Tensor, hidden: int):
        super().__init__()
        self.linear = nn.Linear(x.shape[0] if x.dim() == 1 else x.shape[1], hidden)

    def forward(self, x):
        if x.dim() == 1:
            return self.linear.weight.T[x] + self.linear.bias
        return self.linear(x)


class GCN(nn.Module):
    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        bound = hidden ** -0.5
        self.weights = nn.ParameterList([nn.Parameter(torch.empty(hidden, hidden).uniform_(-bound, bound)) for _ in range(2)])
        self.prelu = nn.PReLU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x, a):
        h = self.prelu(product(a, self.drop(x @ self.weights[0])))
        z = product(a, self.drop(h @ self.weights[1]))
        return (z - z.mean()) / torch.sqrt(z.var(unbiased=False) + 1e-5)


class Attention(nn.Module):
    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(hidden, hidden)
        nn.init.xavier_normal_(self.fc.weight, gain=1.414)
        self.att = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, hidden), gain=1.414))
        self.drop = nn.Dropout(dropout)

    def forward(self, views):
        att = self.drop(self.att)
        beta = torch.softmax(torch.cat([att @ torch.tanh(self.fc(v)).mean(0) for v in views]), dim=0)
        return sum(b * v for b, v in zip(beta, views))


class AdaMEOW(nn.Module):
    def __init__(self, batch: dict, model: dict):
        super().__init__()
        hidden, dropout = model["hidden"], model["dropout"]
        self.metapaths = sorted(batch["metapaths"])
        self.prefixes = {m: meow.context_prefixes(m) for m in self.metapaths}
        self.inputs = nn.ModuleDict({k: TypeInput(x, hidden) for k, x in batch["features"].items()})
        self.context_maps = nn.ModuleDict({p: nn.Linear(hidden, hidden, bias=False)
                                           for m in self.metapaths for p in self.prefixes[m]})
        self.gcn = GCN(hidden, dropout)
        self.attention = Attention(hidden, dropout)
        self.project = nn.Linear(hidden, hidden)
        self.weigher = nn.Sequential(nn.Linear(hidden, model["weigher_hidden"]), nn.Tanh(), nn.Linear(model["weigher_hidden"], 1))
        self.drop = nn.Dropout(dropout)
        self.tau = model["tau"]

    def forward(self, b: dict):
        act = {k: F.elu(self.drop(self.inputs[k](x))) for k, x in b["features"].items()}
        masked = F.elu(self.drop(self.inputs["target"](b["masked_target"])))
        views = []
        for m in self.metapaths:
            def context():
                return sum(self.drop(self.context_maps[p](product(b["contexts"][p], act[p[-1]]))) for p in self.prefixes[m])
            views.append(self.gcn(F.elu(act["target"] + context()), b["metapaths"][m]))
            views.append(self.gcn(F.elu(masked + context()), b["masked_metapaths"][m]))
        fine = self.attention([F.normalize(v, dim=1) for v in views])
        coarse_graph = sum(b["metapaths"][m].to_dense() for m in self.metapaths) / len(self.metapaths)
        coarse = self.gcn(act["target"], coarse_graph)
        f, c = (F.normalize(torch.tanh(self.project(z)), dim=1) for z in (fine, coarse))
        first, second = self.weigher[0], self.weigher[2]
        pairwise = torch.tanh((f @ first.weight.T + first.bias)[:, None, :] + (c @ first.weight.T)[None, :, :])
        weights = torch.sigmoid(second(pairwise)[..., 0])
        s = f @ c.T / self.tau
        loss = (torch.logsumexp(s + torch.log(weights), dim=1) - s.diagonal()).mean()
        return loss, fine


def load_jax_parameters(model: AdaMEOW, params: dict) -> None:
    """Copy a gcl-jax AdaMEOW parameter tree (``model.torch_init = true`` layout) into ``model``."""
    e, c = params["encoder"]["params"], params["contrast"]["params"]

    def put(linear, kernel, bias=None):
        linear.weight.copy_(torch.as_tensor(np.asarray(kernel)).T)
        if bias is not None:
            linear.bias.copy_(torch.as_tensor(np.asarray(bias)))

    with torch.no_grad():
        for kind, module in model.inputs.items():
            layer = e[f"inputs_{kind}"]
            kernel, bias = (layer["Dense_0"]["kernel"], layer["Dense_0"]["bias"]) if "Dense_0" in layer \
                else (layer["Embed_0"]["embedding"], layer["bias"])
            put(module.linear, kernel, bias)
        for m in model.metapaths:
            for prefix in model.prefixes[m]:
                put(model.context_maps[prefix], e[f"context_maps_{m}_{prefix}"]["kernel"])
        for index, weight in enumerate(model.gcn.weights):
            weight.copy_(torch.as_tensor(np.asarray(e["gcn"][f"weight_{index}"])))
        model.gcn.prelu.weight.fill_(float(e["gcn"]["Activation_0"]["PReLU_0"]["negative_slope"]))
        put(model.attention.fc, e["attention"]["Dense_0"]["kernel"], e["attention"]["Dense_0"]["bias"])
        model.attention.att.copy_(torch.as_tensor(np.asarray(e["attention"]["attention"])))
        put(model.project, e["project"]["kernel"], e["project"]["bias"])
        put(model.weigher[0], c["kernel_1"], c["bias_1"])
        put(model.weigher[2], c["kernel_2"], c["bias_2"])


def shared_start(batch: dict, tbatch: dict, cfg: dict, dropout: float, steps: int = 1):
    """gcl-jax's AdaMEOW (``torch_init``, the given dropout), its optimizer as the runner builds it and
    its initial train state; and the PyTorch model holding the same initial parameters."""
    model_cfg = {**cfg["model"], "torch_init": True, "dropout": dropout}
    method = adameow.build(model_cfg, batch)
    optimizer, _ = train.make_optimizer(cfg["lr"], steps, weight_decay=cfg["weight_decay"])
    ts = train.init_state(method, optimizer, 0, batch)
    model = AdaMEOW(tbatch, model_cfg)
    load_jax_parameters(model, ts.params)
    return method, optimizer, ts, model


def parity(batch: dict, tbatch: dict, cfg: dict) -> dict:
    """The same parameters in both, dropout off: gcl-jax's loss, embeddings and gradients against
    this model's. Largest absolute differences."""
    method, _, ts, model = shared_start(batch, tbatch, cfg, 0.0)
    (value, _), grads = jax.value_and_grad(method.loss, has_aux=True)(ts.params, ts.state, ts.key, batch)
    z = method.embed(ts.params, ts.state, batch)
    loss, fine = model(tbatch)
    loss.backward()
    g = grads["encoder"]["params"]
    pairs = ((g["project"]["kernel"], model.project.weight.grad.T), (g["gcn"]["weight_0"], model.gcn.weights[0].grad),
             (grads["contrast"]["params"]["kernel_1"], model.weigher[0].weight.grad.T),
             (g["inputs_target"]["Dense_0"]["kernel"], model.inputs["target"].linear.weight.grad.T))
    grad_gap = max(float(np.abs(np.asarray(a) - b.numpy()).max()) for a, b in pairs)
    return {"loss_jax": float(value), "loss_torch": loss.item(),
            "embedding_gap": float(np.abs(np.asarray(z) - fine.detach().numpy()).max()), "gradient_gap": grad_gap}


def init_spread(batch: dict, tbatch: dict, cfg: dict) -> dict:
    """Each parameter's standard deviation at initialization (its value if a scalar): PyTorch's own
    draw against gcl-jax's ``torch_init`` draw. A layer drawn from another distribution stands out."""
    model = shared_start(batch, tbatch, cfg, 0.0)[3]
    torch.manual_seed(0)
    own = AdaMEOW(tbatch, cfg["model"])

    def spread(t):
        return round(float(t.detach().std()) if t.numel() > 1 else float(t.detach()), 4)

    return {name: [spread(a), spread(b)] for (name, a), (_, b) in zip(own.named_parameters(), model.named_parameters())}


def step_parity(batch: dict, tbatch: dict, cfg: dict, steps: int) -> dict:
    """From a shared start, dropout off: ``steps`` steps of gcl-jax's own train step
    (``train.make_step``) against ``torch.optim.Adam`` with L2; the loss per step on each side and
    the projection kernels' largest difference at the end."""
    method, optimizer, ts, model = shared_start(batch, tbatch, cfg, 0.0, steps)
    step = jax.jit(train.make_step(method, optimizer))
    torch_optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    jax_curve, torch_curve = [], []
    for _ in range(steps):
        ts, loss, _ = step(ts, batch)
        jax_curve.append(float(loss))
        value, _ = model(tbatch)
        torch_optimizer.zero_grad()
        value.backward()
        torch_optimizer.step()
        torch_curve.append(value.item())
    gap = np.abs(np.asarray(ts.params["encoder"]["params"]["project"]["kernel"]) - model.project.weight.detach().numpy().T)
    return {"loss_jax": jax_curve, "loss_torch": torch_curve, "project_kernel_gap": float(gap.max())}


def dropout_parity(batch: dict, tbatch: dict, cfg: dict, draws: int) -> dict:
    """The training loss at a shared start over ``draws`` dropout draws per side: mean and standard
    error. A dropout placed or scaled differently moves the mean."""
    method, _, ts, model = shared_start(batch, tbatch, cfg, cfg["model"]["dropout"])
    loss = jax.jit(lambda key: method.loss(ts.params, ts.state, key, batch)[0])
    jax_draws = [float(loss(k)) for k in jax.random.split(jax.random.key(1), draws)]
    model.train()
    torch.manual_seed(1)
    with torch.no_grad():
        torch_draws = [model(tbatch)[0].item() for _ in range(draws)]
    return {side: {"mean": float(np.mean(v)), "sem": float(np.std(v, ddof=1) / np.sqrt(draws))}
            for side, v in (("jax", jax_draws), ("torch", torch_draws))}


def score(cfg: dict, dataset, z: torch.Tensor) -> dict:
    result = runner.evaluate(cfg["eval"], z.detach().numpy(), dataset, 0)
    extras = {k: round(100 * float(np.mean(v)), 2) for k, v in result.extra.items() if k.startswith("heco_macro_f1_20")}
    return {"macro_f1_20": round(100 * result.test_mean, 2), **extras}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="meow-acm")
    p.add_argument("--epochs", type=int, default=500)
    p.add_argument("--every", type=int, default=100, help="score every this many epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], help="gcl-jax config override, key=value")
    p.add_argument("--train-checks", type=int, default=20,
                   help="optimizer steps without dropout, and dropout draws, compared from a shared start (0: skip)")
    p.add_argument("--json", default=None, help="output JSON (default benchmarks/adameow_reference-DATASET.json)")
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    cfg = runner.resolve_config("adameow", args.dataset, None, args.set)
    dataset = data.load(args.dataset)
    jax_batch = adameow.dataset_batch(dataset, cfg)
    batch = torch_batch(jax_batch)
    check = parity(jax_batch, batch, cfg)
    print("same parameters, no dropout:", json.dumps(check), flush=True)
    if args.train_checks:
        check["init_std"] = init_spread(jax_batch, batch, cfg)
        check["steps_no_dropout"] = step_parity(jax_batch, batch, cfg, args.train_checks)
        check["dropout_loss"] = dropout_parity(jax_batch, batch, cfg, args.train_checks)
        for name in ("init_std", "steps_no_dropout", "dropout_loss"):
            print(f"{name}:", json.dumps(check[name]), flush=True)
    torch.manual_seed(args.seed)
    model = AdaMEOW(batch, cfg["model"])
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    curve, started = [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        loss, fine = model(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if epoch % args.every == 0:
            model.eval()
            with torch.no_grad():
                _, eval_fine = model(batch)
            point = {"epoch": epoch, "loss": round(loss.item(), 4), "seconds": round(time.perf_counter() - started, 1),
                     "train_mode": score(cfg, dataset, fine), "eval_mode": score(cfg, dataset, eval_fine)}
            curve.append(point)
            print(json.dumps(point), flush=True)
    out = Path(args.json or HERE / f"adameow_reference-{args.dataset}.json")
    out.write_text(json.dumps({"dataset": args.dataset, "seed": args.seed, "config": cfg, "parity": check, "curve": curve},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
