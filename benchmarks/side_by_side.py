"""gcl-jax against a PyTorch + PyTorch Geometric reference: GRACE and BGRL, side by side.

Usage (the ``bench`` extra installs torch and torch_geometric next to gcl-jax)::

    python3 -m venv /tmp/venv-bench && /tmp/venv-bench/bin/pip install -e '.[bench]'
    GCL_JAX_DATA=/work/shared/data /tmp/venv-bench/bin/python benchmarks/side_by_side.py
    ... side_by_side.py --datasets cora --methods grace,bgrl --epochs 100 --threads 2 --repeats 3

For every (dataset, method) cell both frameworks train the same model, from the same config,
on the same arrays, for the same number of epochs (one full-graph step = one epoch):

- gcl-jax: the library's own path: ``runner.resolve_config`` (the packaged paper config),
  ``data.load`` + ``runner.node_graph`` (row-normalized features), ``methods.<m>.build``,
  ``train.make_optimizer``, ``train.init_state`` and the jit-compiled ``train.make_step``, looped
  as ``train.fit`` does (``float(loss)`` each step), minus checkpoints and logging; then
  ``method.embed``.
- PyTorch: ``benchmarks/torch_reference.py``, GRACE and BGRL written from the papers to the
  same architecture (BGRL's layers GCN or GAT as the config's ``model.layer`` says), augmentations,
  loss, optimizer and schedules (see its docstring); it gets the very feature matrix and edge list
  gcl-jax trains on, through an ``.npz`` file.

Pre-flight, before anything is measured: a short child process (the only one that imports both
frameworks) copies gcl-jax's GCN and GAT layer parameters (one head; two heads concatenated and
averaged) into the PyTorch reference's layers on a 5-node graph with a dropped edge and stops
the benchmark unless the outputs agree to 1e-5 (:func:`preflight_layers`).

Measured, per framework:

- ``s/epoch``: wall time of one training step including the host sync on the loss, median over
  the epochs after the first ``--warmup`` ones (default 5; at most a fifth of a short run).
  ``gcl-jax compile s``: the time to build the method, run the jitted ``init`` and
  ``lower().compile()`` the train step, ahead of the loop, so it is not in s/epoch. The JSON
  also has each framework's first step minus its median (``first_step_overhead_seconds``).
- ``CPU-time speed-up``: the same ratio for the process CPU time (user + system, all threads)
  per step, median. On a shared machine a descheduled process loses wall time but not CPU
  time, so with ``--threads 1`` this is the steadier measure of work done; with more threads it
  also counts spin-waiting.
- ``cores``: (user + system CPU time) / wall time over the training loop: how many of the
  ``--threads`` cores a framework actually kept busy (below the thread count: other jobs
  took the cores, or the framework ran serial code).
- ``peak MiB``: each framework trains in its own subprocess that imports only its own stack
  (the PyTorch worker never imports jax); the peak resident set size ``ru_maxrss`` of that
  process at the end. ``+train`` is the peak minus the resident set size after imports and data
  loading (``VmRSS``), i.e. what training added on top of the runtime and the dataset (import
  transients that were freed again can make the peak itself come from the imports). For
  gcl-jax it includes XLA's compilation of the step.
- ``acc``: the frozen embeddings of each framework, scored by the SAME gcl-jax evaluator in
  this parent process (``runner.evaluate`` with the config's ``[eval]`` protocol: the public
  split for Cora, 20 random 10/10/80 splits for the Amazon graphs), mean test accuracy in %.
  Run ``r`` of ``--repeats`` trains with seed ``--seed + r`` (the evaluation splits stay those of
  ``--seed``); the table shows the mean over the runs, ``±`` the std over the runs (training
  seeds) when there are several, else the std over the 20 random splits.

Fairness: float32 on both sides; the same thread budget: each worker is pinned with
``sched_setaffinity`` to the first ``--threads`` CPUs before it imports its framework,
PyTorch gets ``torch.set_num_threads(threads)`` (intra-op OpenMP pool), XLA's CPU client sizes
its intra-op (Eigen) pool from the CPUs it may run on, i.e. the same pinned set (with
``--threads 1`` also ``--xla_cpu_multi_thread_eigen=false``). Neither side is tuned: no
``torch.compile``, gcl-jax's configs as packaged (GRACE's loss blockwise, ``block_size="auto"``:
256-tiles on the CPU, 4096 on a GPU). The two workers of a cell run one after the other, the
order alternating between repeats; with ``--repeats R`` the table shows the median over the R runs
of each framework's s/epoch (the machine is shared, so look at the spread in the JSON too) and the
mean accuracy over them.

Threads on a shared machine: PyTorch's OpenMP threads spin-wait at the end of every parallel
region. When other processes occupy the cores, one of the ``--threads`` threads is often
descheduled and its partner spins through the scheduler's time slice, so multi-threaded
PyTorch can run many times slower than single-threaded (seen here: BGRL on Cora, its earlier
GCN config, 3.4 s/epoch with 2 threads against 0.30 s with 1, under a load average of 2.5 on 2 cores). XLA's pool
does not degrade like that. ``--threads 1`` compares the frameworks' work free of this effect;
``--omp-wait-policy PASSIVE`` lets PyTorch's idle threads sleep instead (a standard OpenMP
setting, recorded in the output). The script prints a note when the machine is busy.

Epochs: the packaged configs ask for 200 (GRACE Cora), 2000 (GRACE Amazon), 100 (BGRL Cora)
and 10000 (BGRL Amazon) epochs, far too long for a 2-core CPU, so the defaults
(``DEFAULT_EPOCHS``) are shorter and the table prints the epochs each cell used; ``--epochs N`` sets every cell. When a cell runs fewer
epochs than its config, a linear warm-up (BGRL's 1000 of 10000 steps, 10 of 100 on Cora) is scaled by the same
factor, so the learning-rate schedule keeps its shape; BGRL's EMA schedule spans the run's steps
on both sides (as ``gcl-jax train --set epochs=N`` does). Accuracies from shortened runs are for
comparing the two frameworks with each other, not with the papers.

On a GPU (``--device gpu``): both workers train on the first CUDA device (gcl-jax through
jax's GPU backend, PyTorch on ``cuda``), each with the config's full number of epochs unless
``--epochs`` says otherwise; ``loss.item()`` / ``float(loss)`` synchronize every step, so
s/epoch is wall time of finished GPU work. Memory is the device's: ``GPU peak MiB`` is
``torch.cuda.max_memory_allocated`` and, for gcl-jax, the XLA allocator's ``peak_bytes_in_use``
(``+train`` again the peak minus what was allocated after the data were on the device); the
CPU-time columns are left out. Both multiply float32 matrices in TF32: XLA's default on GPUs
since Ampere, and PyTorch's once ``torch.set_float32_matmul_precision("high")`` asks for it (the
H100 records ``side_by_side-gpu-h100-*.json`` predate that line: PyTorch ran full float32
there). The parent process, which evaluates, keeps jax on the CPU so it holds no GPU memory
while the workers run.

Output: the table on stdout and ``--json`` (default ``benchmarks/side_by_side.json``) with every
number, the per-run s/epoch and accuracies, the loss every ``loss_curve_every`` epochs, the
resolved configs, the machine and the package versions. ``benchmarks/side_by_side-*.json`` are
recorded runs (their ``command`` and ``table`` fields say how each was made).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import report

HERE = Path(__file__).resolve().parent
DATASETS = ("cora", "amazon-photo", "amazon-computers")
METHODS = ("grace", "bgrl")
#: Epochs per (method, dataset) when --epochs is not given: chosen so the six cells finish in
#: well under an hour on a 2-core CPU (config epochs: GRACE 200 / 2000 / 2000, BGRL 10000).
#: Single-threaded s/epoch measured here (gcl-jax + torch): GRACE 0.9+1.4 / 10+13 / 19+30,
#: BGRL 11.4+8.1 / 1.1+2.7 / 2.3+4.1 (Cora / Photo / Computers; BGRL Cora is GAT 4096/1024 since
#: its config follows GraphMAE's re-run, the others GCN); the dense 2N x 2N GRACE loss makes its
#: Amazon cells expensive, the wide GAT layers BGRL's Cora cell.
DEFAULT_EPOCHS = {
    ("grace", "cora"): 200,
    ("grace", "amazon-photo"): 20,
    ("grace", "amazon-computers"): 8,
    ("bgrl", "cora"): 20,
    ("bgrl", "amazon-photo"): 100,
    ("bgrl", "amazon-computers"): 50,
}


# ----------------------------------------------------------------------------- worker helpers


def _pin(threads: int) -> None:
    """Restrict this process to the first ``threads`` CPUs it may use (before any framework loads)."""
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, allowed[:threads])


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _current_rss_mib() -> float:
    """Resident set size now (``VmRSS``), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def jax_worker(job: dict) -> None:
    """Train with gcl-jax in this (fresh) process; write embeddings.npy and result.json."""
    import jax

    from gcl_jax import data, methods, runner, train

    if job["device"] == "gpu" and jax.default_backend() != "gpu":
        raise RuntimeError(f"--device gpu: jax's default backend is {jax.default_backend()!r}, not 'gpu'")
    out = Path(job["out"])
    cfg, name, epochs = job["config"], job["dataset"], int(job["epochs"])
    module = methods.get(job["method"])
    ds = data.load(name)
    graph = runner.node_graph(ds, cfg)
    reference = np.load(job["data"])  # the arrays the PyTorch side gets: check they are these
    if not (np.allclose(np.asarray(graph.nodes), reference["x"], rtol=1e-5, atol=1e-7)
            and np.array_equal(np.stack([np.asarray(graph.senders), np.asarray(graph.receivers)]), reference["edge_index"])):
        raise RuntimeError("gcl-jax's training graph differs from the arrays handed to PyTorch")
    # the parent normalized the features on the CPU; a GPU rounds the division differently, so
    # train on the parent's very bits, as PyTorch does
    graph = graph._replace(nodes=jax.numpy.asarray(reference["x"]))
    jax.block_until_ready(graph)
    baseline, device_baseline = _current_rss_mib(), _jax_device_mib("bytes_in_use")

    started = time.perf_counter()
    optimizer, _ = train.make_optimizer(
        cfg["lr"], epochs, weight_decay=cfg.get("weight_decay", 0.0), decoupled=cfg.get("decoupled_weight_decay", False),
        warmup_steps=cfg.get("warmup_steps", 0), schedule=cfg.get("schedule", "constant"), clip_norm=cfg.get("clip_norm"),
    )
    method = module.build({**cfg["model"], "total_steps": epochs}, graph)
    ts = jax.block_until_ready(train.init_state(method, optimizer, int(job["seed"]), graph))
    step_fn = jax.jit(train.make_step(method, optimizer)).lower(ts, graph).compile()
    setup_seconds = time.perf_counter() - started

    seconds, cpu_seconds, losses = [], [], []
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    for step in range(epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        ts, loss, _ = step_fn(ts, graph)
        value = float(loss)  # the host sync train.fit does every step
        seconds.append(time.perf_counter() - t0)
        cpu_seconds.append(time.process_time() - c0)
        if not np.isfinite(value):
            raise FloatingPointError(f"loss is {value} at step {step}")
        losses.append(value)
    cores = (_cpu_seconds() - cpu0) / (time.perf_counter() - wall0)
    device_peak = _jax_device_mib("peak_bytes_in_use")
    embeddings = np.asarray(jax.jit(method.embed)(ts.params, ts.state, graph))
    np.save(out / "embeddings.npy", embeddings)
    record = {
        "framework": "gcl-jax",
        "versions": {"jax": jax.__version__, "jaxlib": __import__("jaxlib").__version__},
        "devices": [str(d) for d in jax.devices()],
        "step_seconds": seconds,
        "step_cpu_seconds": cpu_seconds,
        "losses": losses,
        "setup_seconds": setup_seconds,
        "cores": cores,
        "rss_baseline_mib": baseline,
        "rss_peak_mib": _peak_rss_mib(),
        "device_baseline_mib": device_baseline,
        "device_peak_mib": device_peak,
    }
    (out / "result.json").write_text(json.dumps(record))


def _jax_device_mib(stat: str) -> float:
    """:func:`report.device_bytes` in MiB, NaN where the backend keeps no statistics."""
    value = report.device_bytes(stat)
    return float("nan") if value is None else value / 2**20


def torch_worker(job: dict) -> None:
    """Train the PyTorch reference in this (fresh) process; the same outputs as :func:`jax_worker`."""
    sys.path.insert(0, str(HERE))
    import torch

    import torch_reference as ref

    torch.set_num_threads(int(job["threads"]))
    gpu = job["device"] == "gpu"
    if gpu and not torch.cuda.is_available():
        raise RuntimeError("--device gpu: torch.cuda.is_available() is False")
    device = torch.device("cuda" if gpu else "cpu")
    if gpu:
        torch.set_float32_matmul_precision("high")  # TF32, as XLA multiplies float32 on the GPU
    out = Path(job["out"])
    arrays = np.load(job["data"])
    x = torch.from_numpy(np.ascontiguousarray(arrays["x"], dtype=np.float32)).to(device)
    edge_index = torch.from_numpy(np.ascontiguousarray(arrays["edge_index"], dtype=np.int64)).to(device)
    baseline = _current_rss_mib()
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    device_baseline = torch.cuda.memory_allocated() / 2**20 if gpu else float("nan")
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    model, seconds, cpu_seconds, losses = ref.train(job["method"], x, edge_index, job["config"], int(job["epochs"]), int(job["seed"]))
    cores = (_cpu_seconds() - cpu0) / (time.perf_counter() - wall0)
    device_peak = torch.cuda.max_memory_allocated() / 2**20 if gpu else float("nan")
    np.save(out / "embeddings.npy", ref.embed(model, x, edge_index))
    record = {
        "framework": "torch",
        "versions": {"torch": torch.__version__, "torch_geometric": __import__("torch_geometric").__version__},
        "devices": [torch.cuda.get_device_name() if gpu else "cpu"],
        "threads": torch.get_num_threads(),
        "step_seconds": seconds,
        "step_cpu_seconds": cpu_seconds,
        "losses": losses,
        "setup_seconds": 0.0,
        "cores": cores,
        "rss_baseline_mib": baseline,
        "rss_peak_mib": _peak_rss_mib(),
        "device_baseline_mib": device_baseline,
        "device_peak_mib": device_peak,
    }
    (out / "result.json").write_text(json.dumps(record))


# ----------------------------------------------------------------------------- pre-flight

#: (layer, heads, gat_concat) settings whose two implementations the pre-flight compares
PREFLIGHT_LAYERS = (("gcn", 1, True), ("gat", 1, True), ("gat", 2, True), ("gat", 2, False))


def _load_flax_layer(torch_layer, params: dict) -> None:
    """Copy one gcl-jax GCNConv / GATConv's flax params into its PyG twin (kernels transposed)."""
    import torch

    names = {"Dense_0", "bias", *(("att_src", "att_dst") if "att_src" in params else ())}
    if set(params) != names:
        raise RuntimeError(f"pre-flight: unexpected gcl-jax layer params {sorted(params)}, expected {sorted(names)}")
    pairs = [(torch_layer.lin.weight, np.asarray(params["Dense_0"]["kernel"]).T, "Dense_0.kernel (transposed)"),
             (torch_layer.bias, params["bias"], "bias")]
    pairs += [(getattr(torch_layer, name), params[name], name) for name in sorted(names & {"att_src", "att_dst"})]
    with torch.no_grad():
        for target, value, name in pairs:
            value = torch.from_numpy(np.array(value, dtype=np.float32))
            if target.shape != value.shape:
                raise RuntimeError(f"pre-flight: gcl-jax param {name} has shape {tuple(value.shape)}, "
                                   f"the PyTorch layer's {tuple(target.shape)}: the layers are built differently")
            target.copy_(value)


def preflight_layers(tolerance: float = 1e-5) -> None:
    """Check that both frameworks' graph layers compute the same function; raise if not.

    On a 5-node graph (directed edges, node 2 without in-edges, one edge dropped: masked for
    gcl-jax, removed for PyG, as in training) a one-layer gcl-jax ``GraphEncoder`` (so its
    width -> heads mapping is checked too) and ``torch_reference.graph_layer`` with the same
    parameters must agree to ``tolerance`` for every setting in ``PREFLIGHT_LAYERS``.
    Imports jax and torch together, so it runs in its own short process (``--_preflight``).
    """
    sys.path.insert(0, str(HERE))
    import jax
    import torch
    import torch_reference as ref

    from gcl_jax import graph as G
    from gcl_jax.nn import GraphEncoder

    in_dim, width = 3, 4
    x = np.random.default_rng(0).normal(size=(5, in_dim)).astype(np.float32)
    edge_index = np.array([[0, 1, 1, 3, 4, 0, 2, 2], [1, 0, 3, 1, 1, 4, 4, 0]])
    keep = np.array([True] * 7 + [False])  # the last edge is dropped
    graph = G.mask_edges(G.from_edge_index(edge_index, node_features=x), keep)
    torch_edges = torch.from_numpy(edge_index[:, keep])
    for layer, heads, concat in PREFLIGHT_LAYERS:
        encoder = GraphEncoder(layer, (width,), activate_last=False, heads=heads, gat_concat=concat)
        variables = encoder.init(jax.random.PRNGKey(1), graph, train=False)
        expected = np.asarray(encoder.apply(variables, graph, train=False))
        torch_layer = ref.graph_layer(layer, in_dim, width, heads, concat)
        _load_flax_layer(torch_layer, variables["params"][f"{layer}_0"])
        with torch.no_grad():
            got = torch_layer(torch.from_numpy(x), torch_edges).numpy()
        setting = f"layer={layer!r} heads={heads} gat_concat={concat}"
        if got.shape != expected.shape or not np.allclose(got, expected, atol=tolerance, rtol=0.0):
            error = np.abs(got - expected).max() if got.shape == expected.shape else "n/a"
            raise RuntimeError(f"pre-flight: gcl-jax and PyTorch layers disagree for {setting}: shapes "
                               f"{expected.shape} vs {got.shape}, max |difference| {error} (tolerance {tolerance})")
        print(f"pre-flight: {setting}: layers agree (max |difference| {np.abs(got - expected).max():.1e})",
              file=sys.stderr)


def run_preflight() -> None:
    """:func:`preflight_layers` in a child process, so neither measured worker nor this parent
    loads both frameworks."""
    subprocess.run([sys.executable, __file__, "--_preflight"], check=True)


# ----------------------------------------------------------------------------- parent


def cell_config(method: str, dataset: str, epochs: int | None) -> dict:
    """The packaged gcl-jax config with ``epochs`` (and a proportionally scaled warm-up); ``None``
    keeps the config's epochs."""
    from gcl_jax import runner

    full = runner.resolve_config(method, dataset, None, [])
    epochs = int(full["epochs"]) if epochs is None else epochs
    overrides = [f"epochs={epochs}"]
    warmup = int(full.get("warmup_steps", 0) or 0)
    if warmup and epochs != int(full["epochs"]):
        overrides.append(f"warmup_steps={max(1, round(warmup * epochs / int(full['epochs'])))}")
    cfg = runner.resolve_config(method, dataset, None, overrides)
    cfg["config_epochs"] = int(full["epochs"])
    return cfg


def run_worker(framework: str, job: dict, workdir: Path) -> dict:
    out = workdir / f"{framework}-{job['round']}"
    out.mkdir(parents=True, exist_ok=True)
    job = {**job, "out": str(out)}
    (out / "job.json").write_text(json.dumps(job))
    env = dict(os.environ)
    threads = int(job["threads"])
    env["OMP_NUM_THREADS"] = str(threads)
    if job.get("omp_wait_policy"):
        env["OMP_WAIT_POLICY"] = job["omp_wait_policy"]  # PyTorch's OpenMP pool; XLA does not use OpenMP
    if job["device"] == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
    else:
        env.pop("JAX_PLATFORMS", None)  # the parent keeps jax on the CPU; this worker gets the GPU
    if threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    load = os.getloadavg()[0]
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--_worker", framework, "--_job", str(out / "job.json")], env=env, check=True)
    result = json.loads((out / "result.json").read_text())
    result["embeddings"] = np.load(out / "embeddings.npy")
    result["process_seconds"] = time.perf_counter() - started
    result["loadavg_before"] = load
    return result


def summarize_run(result: dict, warmup: int) -> dict:
    steps = result["step_seconds"]
    warmup = min(warmup, max(1, len(steps) // 5))  # short runs (GRACE on Amazon) keep 80% of their epochs
    steady = steps[warmup:] if len(steps) > warmup else steps
    median = statistics.median(steady)
    cpu = result["step_cpu_seconds"]
    every = max(1, len(steps) // 200)  # the loss every k-th epoch, ~200 points: enough to see a run diverge or collapse
    return {
        "s_per_epoch": median,
        "cpu_s_per_epoch": statistics.median(cpu[warmup:] if len(cpu) > warmup else cpu),
        "s_per_epoch_p10_p90": [float(np.percentile(steady, 10)), float(np.percentile(steady, 90))],
        "compile_seconds": result["setup_seconds"],
        "first_step_overhead_seconds": steps[0] - median,
        "cores": result["cores"],
        "rss_peak_mib": result["rss_peak_mib"],
        "rss_train_mib": result["rss_peak_mib"] - result["rss_baseline_mib"],
        "device_peak_mib": result["device_peak_mib"],
        "device_train_mib": result["device_peak_mib"] - result["device_baseline_mib"],
        "devices": result["devices"],
        "loss_first_last": [result["losses"][0], result["losses"][-1]],
        "loss_curve_every": every,
        "loss_curve": result["losses"][::every],
        "process_seconds": result["process_seconds"],
        "loadavg_before": result["loadavg_before"],
        "versions": result["versions"],
    }


def run_cell(method: str, dataset: str, epochs: int | None, args, workdir: Path) -> dict:
    from gcl_jax import data, runner

    cfg = cell_config(method, dataset, epochs)
    epochs = int(cfg["epochs"])
    ds = data.load(dataset)
    graph = runner.node_graph(ds, cfg)
    arrays = workdir / f"{method}-{dataset}.npz"
    np.savez(arrays, x=np.asarray(graph.nodes, np.float32),
             edge_index=np.stack([np.asarray(graph.senders), np.asarray(graph.receivers)]).astype(np.int64))
    job = {"method": method, "dataset": dataset, "epochs": epochs, "config": cfg, "seed": args.seed,
           "threads": args.threads, "data": str(arrays), "omp_wait_policy": args.omp_wait_policy, "device": args.device}
    runs = {"gcl-jax": [], "torch": []}
    for r in range(args.repeats):
        order = ("gcl-jax", "torch") if r % 2 == 0 else ("torch", "gcl-jax")
        for framework in order:
            print(f"  {method} {dataset}: {framework} run {r + 1}/{args.repeats}, {epochs} epochs ...", file=sys.stderr, flush=True)
            # run r trains with seed + r (the evaluation splits stay those of --seed)
            result = run_worker(framework, {**job, "round": r, "seed": args.seed + r}, workdir / f"{method}-{dataset}")
            summary = summarize_run(result, args.warmup)
            summary["eval"] = runner.evaluate(cfg["eval"], result["embeddings"], ds, args.seed).as_dict()
            runs[framework].append(summary)
            peak = summary["device_peak_mib" if args.device == "gpu" else "rss_peak_mib"]
            print(f"    {summary['s_per_epoch'] * 1e3:.1f} ms/epoch, {summary['cores']:.2f} cores, "
                  f"peak {peak:.0f} MiB, acc {100 * summary['eval']['test_mean']:.2f}",
                  file=sys.stderr, flush=True)
    cell = {"method": method, "dataset": dataset, "epochs": epochs, "config_epochs": cfg["config_epochs"],
            "num_nodes": int(graph.nodes.shape[0]), "num_edges": int(np.asarray(graph.senders).shape[0]),
            "protocol": cfg["eval"]["protocol"], "config": cfg, "runs": runs}
    for framework, rs in runs.items():
        cell[framework] = {
            "s_per_epoch": statistics.median(r["s_per_epoch"] for r in rs),
            "s_per_epoch_runs": [r["s_per_epoch"] for r in rs],
            "cpu_s_per_epoch": statistics.median(r["cpu_s_per_epoch"] for r in rs),
            "compile_seconds": rs[0]["compile_seconds"],
            "first_step_overhead_seconds": statistics.median(r["first_step_overhead_seconds"] for r in rs),
            "cores": statistics.median(r["cores"] for r in rs),
            "rss_peak_mib": max(r["rss_peak_mib"] for r in rs),
            "rss_train_mib": max(r["rss_train_mib"] for r in rs),
            "device_peak_mib": max(r["device_peak_mib"] for r in rs),
            "device_train_mib": max(r["device_train_mib"] for r in rs),
            "devices": rs[0]["devices"],
            "accuracy": float(np.mean([r["eval"]["test_mean"] for r in rs])),
            # over the training seeds when there are several runs, else over the evaluation splits
            "accuracy_std": float(np.std([r["eval"]["test_mean"] for r in rs])) if len(rs) > 1 else rs[0]["eval"]["test_std"],
            "accuracy_runs": [r["eval"]["test_mean"] for r in rs],
        }
    cell["speedup"] = cell["torch"]["s_per_epoch"] / cell["gcl-jax"]["s_per_epoch"]
    cell["cpu_speedup"] = cell["torch"]["cpu_s_per_epoch"] / cell["gcl-jax"]["cpu_s_per_epoch"]
    cell["accuracy_gap_points"] = 100 * (cell["gcl-jax"]["accuracy"] - cell["torch"]["accuracy"])
    return cell


def format_table(cells: list[dict], device: str = "cpu") -> str:
    """The side-by-side table; on a GPU the memory columns are the device's and the CPU-time
    columns are left out."""
    gpu = device == "gpu"
    memory, where = ("device", "GPU ") if gpu else ("rss", "")
    header = ["dataset", "method", "epochs (config)", "gcl-jax s/epoch", "torch s/epoch", "speed-up",
              *([] if gpu else ["CPU-time speed-up"]), "gcl-jax compile s", *([] if gpu else ["cores jax/torch"]),
              f"gcl-jax {where}peak MiB (+train)", f"torch {where}peak MiB (+train)",
              "gcl-jax acc %", "torch acc %"]
    rows = []
    for c in cells:
        j, t = c["gcl-jax"], c["torch"]
        spread = c["protocol"] != "planetoid" or len(j["accuracy_runs"]) > 1
        acc = lambda f: f"{100 * f['accuracy']:.2f}" + (f" ± {100 * f['accuracy_std']:.2f}" if spread else "")
        mib = lambda f: f"{f[memory + '_peak_mib']:.0f} (+{f[memory + '_train_mib']:.0f})"
        rows.append([
            c["dataset"], c["method"], f"{c['epochs']} ({c['config_epochs']})",
            f"{j['s_per_epoch']:.4f}", f"{t['s_per_epoch']:.4f}", f"{c['speedup']:.2f}x",
            *([] if gpu else [f"{c['cpu_speedup']:.2f}x"]), f"{j['compile_seconds']:.1f}",
            *([] if gpu else [f"{j['cores']:.2f}/{t['cores']:.2f}"]), mib(j), mib(t), acc(j), acc(t),
        ])
    return report.format_table(header, rows)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma list of {', '.join(DATASETS)}")
    p.add_argument("--methods", default=",".join(METHODS), help="comma list of grace, bgrl")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs for every cell (default: DEFAULT_EPOCHS per cell on the CPU, the config's on a GPU)")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="where both frameworks train (default cpu)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for both frameworks (default 2)")
    p.add_argument("--omp-wait-policy", choices=["PASSIVE", "ACTIVE"], default=None,
                   help="OMP_WAIT_POLICY for the PyTorch worker (default: unset, OpenMP's spin-then-sleep)")
    p.add_argument("--repeats", type=int, default=1, help="runs per framework and cell, alternating order (default 1)")
    p.add_argument("--warmup", type=int, default=5, help="first epochs left out of the s/epoch median (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=str(HERE / "side_by_side.json"), help="where to write the results as JSON")
    p.add_argument("--workdir", default=None, help="folder for the workers' files (default: a temporary one)")
    p.add_argument("--_worker", choices=["gcl-jax", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--_job", help=argparse.SUPPRESS)
    p.add_argument("--_preflight", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args._preflight:
        preflight_layers()
        return
    if args._worker:
        job = json.loads(Path(args._job).read_text())
        _pin(int(job["threads"]))
        (jax_worker if args._worker == "gcl-jax" else torch_worker)(job)
        return
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    methods_ = [m.strip() for m in args.methods.split(",") if m.strip()]
    for d in datasets:
        if d not in DATASETS:
            raise SystemExit(f"--datasets: unknown {d!r}; expected some of {', '.join(DATASETS)}")
    for m in methods_:
        if m not in METHODS:
            raise SystemExit(f"--methods: unknown {m!r}; expected some of {', '.join(METHODS)}")
    if not 1 <= args.threads <= len(os.sched_getaffinity(0)):
        raise SystemExit(f"--threads: expected 1..{len(os.sched_getaffinity(0))}, got {args.threads}")
    busy = os.getloadavg()[0]
    if args.threads > 1 and busy > 0.5:
        print(f"note: load average {busy:.1f} before the run: other processes compete for the cores, and "
              "OpenMP threads that spin-wait for a descheduled partner slow PyTorch down; see the docstring",
              file=sys.stderr)
    if args.device == "gpu":
        os.environ["JAX_PLATFORMS"] = "cpu"  # this parent only evaluates; the workers hold the GPU
    run_preflight()  # before any measurement: the two frameworks' layers must agree
    started = time.perf_counter()
    cells = []
    with tempfile.TemporaryDirectory(prefix="side_by_side-") as tmp:
        workdir = Path(args.workdir or tmp)
        for dataset in datasets:
            for method in methods_:
                epochs = args.epochs or (DEFAULT_EPOCHS[(method, dataset)] if args.device == "cpu" else None)
                cells.append(run_cell(method, dataset, epochs, args, workdir))
    table = format_table(cells, args.device)
    print(table)
    omp = f", OMP_WAIT_POLICY={args.omp_wait_policy}" if args.omp_wait_policy else ""
    on = f"device {args.device} ({cells[0]['gcl-jax']['devices'][0]} / {cells[0]['torch']['devices'][0]}), " if cells else ""
    print(f"\n{on}threads {args.threads}{omp}, repeats {args.repeats}, s/epoch = median after min({args.warmup}, epochs // 5) warm-up epochs; "
          f"accuracy: gcl_jax.eval on each framework's frozen embeddings; total {time.perf_counter() - started:.0f} s")
    record = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus_available": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "device": args.device, "threads": args.threads, "omp_wait_policy": args.omp_wait_policy, "repeats": args.repeats, "warmup_epochs": args.warmup, "seed": args.seed,
        "total_seconds": time.perf_counter() - started, "table": table, "cells": cells,
    }
    Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
