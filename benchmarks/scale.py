"""GRACE past the N x N matrix: full-graph blockwise training and sharded cluster steps; prints tables.

1. ``full``: GRACE (encoder + projection + InfoNCE with all 2N-1 negatives per anchor, forward and
   backward, Adam update) on whole graphs with the blockwise loss. Reports the compiled step's
   memory (``memory_analysis()``: arguments + temporaries), the same for the dense loss (compiled
   only: it would not fit), the process's peak resident memory, and measured seconds per epoch
   (one epoch = one full-graph step).
2. ``sharded``: one GRACE step on ``synthetic-1m`` split into one cluster part per simulated CPU
   device (:mod:`gcl_jax.partition`), the loss's negatives travelling around the ring, so every
   anchor still sees all 2N-1 others. Reports per-device memory from the compiled SPMD program and,
   for the sizes given to ``--sharded-time-sizes``, measured step time (the 1M step itself
   performs ~(2N)^2 d multiply-adds several times over, hours on a 2-core CPU: time it with
   ``--sharded-time-sizes 1m`` on a machine with the patience or accelerators).

    python benchmarks/scale.py                                    # both sections, defaults
    python benchmarks/scale.py --skip sharded --full-datasets amazon-computers --steps 3
    python benchmarks/scale.py --device gpu --skip sharded --full-datasets amazon-computers,synthetic-1m

``--device gpu`` runs the ``full`` section on the first GPU and adds the XLA allocator's peak
(``peak_bytes_in_use``) to the table; ``sharded`` always uses simulated CPU devices.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from report import device_bytes, gib, print_table


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full-datasets", default="amazon-computers,synthetic-200k")
    p.add_argument("--steps", type=int, default=2, help="timed full-graph epochs per dataset (after compilation)")
    p.add_argument("--block", type=int, default=1024)
    p.add_argument("--devices", type=int, default=8)
    p.add_argument("--sharded-dataset", default="synthetic-1m")
    p.add_argument("--sharded-time-sizes", default="32k,128k", help="synthetic sizes whose sharded step is also timed")
    p.add_argument("--compute-dtype", default="float32", choices=["float32", "bfloat16"],
                   help="GRACE's model.compute_dtype (bfloat16: mixed precision, float32 parameters)")
    p.add_argument("--skip", default="", help="comma list of: full,sharded")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="where the full-graph section runs")
    p.add_argument("--_worker", default="", help=argparse.SUPPRESS)
    return p.parse_args(argv)



def grace_step(dataset: str, block: int | None, devices: int, parts: int = 0, dtype: str = "float32"):
    """(jitted step, train state, batch, num nodes) for GRACE with its config for ``dataset``."""
    import jax

    from gcl_jax import data, parallel, runner, train
    from gcl_jax.methods import grace

    overrides = [f"model.block_size={block or 0}", f"partition.parts={parts}", f"model.compute_dtype='{dtype}'"]
    cfg = runner.resolve_config("grace", dataset, None, overrides)
    ds = data.load(dataset)
    batch_fn, steps = runner.node_batches(grace, ds, cfg, devices, seed=0)
    batch = batch_fn(0)
    model, mesh, spec = dict(cfg["model"]), None, None
    if devices > 1:
        mesh, model["axis_name"] = parallel.make_mesh(devices), parallel.DATA_AXIS
        spec = jax.sharding.PartitionSpec(parallel.DATA_AXIS)
    method = grace.build(model, batch)
    optimizer, _ = train.make_optimizer(cfg["lr"], steps, weight_decay=cfg.get("weight_decay", 0.0))
    state = train.init_state(method, optimizer, 0, batch)
    return jax.jit(train.make_step(method, optimizer, mesh, spec)), state, batch, ds.info()["num_nodes"]


def compile_step(step, state, batch):
    """The compiled step and its per-device bytes: arguments, temporaries and their sum."""
    compiled = step.lower(state, batch).compile()
    analysis = compiled.memory_analysis()
    return compiled, {"arguments": analysis.argument_size_in_bytes, "temp": analysis.temp_size_in_bytes,
                      "total": analysis.argument_size_in_bytes + analysis.temp_size_in_bytes}


def timed_steps(step, state, batch, count: int) -> list[float]:
    """Seconds of each of ``count`` steps of an already compiled ``step``."""
    import jax

    times = []
    for _ in range(count):
        started = time.perf_counter()
        state, loss, _ = step(state, batch)
        jax.block_until_ready(loss)
        times.append(time.perf_counter() - started)
    return times


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def full_worker(dataset: str, block: int, steps: int, dtype: str) -> dict:
    """One dataset, in its own process so peak RSS is this run's alone."""
    import jax

    step, state, batch, n = grace_step(dataset, block, devices=1, dtype=dtype)
    compiled, blockwise = compile_step(step, state, batch)
    times = timed_steps(compiled, state, batch, steps)
    device_peak = device_bytes("peak_bytes_in_use")  # before the dense compile
    dense_step, *_ = grace_step(dataset, None, devices=1, dtype=dtype)
    try:
        _, dense = compile_step(dense_step, state, batch)
    except jax.errors.JaxRuntimeError as error:  # a GPU compile autotunes on real buffers: N x N may not fit
        if "RESOURCE_EXHAUSTED" not in str(error):
            raise
        dense = None
    return {"dataset": dataset, "nodes": n, "blockwise": blockwise, "dense": dense, "seconds": times,
            "peak_rss": peak_rss(), "device_peak": device_peak, "device": f"1 {jax.devices()[0].device_kind}"}


def sharded_worker(dataset: str, block: int, devices: int, execute: bool, dtype: str) -> dict:
    step, state, batch, n = grace_step(dataset, block, devices, parts=devices, dtype=dtype)
    compiled, memory = compile_step(step, state, batch)
    record = {"dataset": dataset, "nodes": n, "part_rows": int(batch.owned.shape[1]), "memory": memory}
    if execute:
        record["seconds"] = timed_steps(compiled, state, batch, 1)
    record["peak_rss"] = peak_rss()
    return record


def _spawn(args, worker: str, devices: int = 1, gpu: bool = False) -> dict:
    """Run ``worker`` in a fresh process: on the GPU, or on ``devices`` simulated CPU devices."""
    env = dict(os.environ)
    if not gpu:
        env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    cmd = [sys.executable, __file__, "--_worker", worker, "--block", str(args.block), "--steps", str(args.steps),
           "--devices", str(devices), "--compute-dtype", args.compute_dtype]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"worker {worker} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def full(args):
    rows, gpu, device = [], args.device == "gpu", f"1 CPU device ({os.cpu_count()} cores)"
    for dataset in filter(None, args.full_datasets.split(",")):
        r = _spawn(args, f"full:{dataset}", gpu=gpu)
        per_epoch = sorted(r["seconds"])[len(r["seconds"]) // 2]
        dense = gib(r["dense"]["total"]) if r["dense"] else "more than the device (compile ran out of memory)"
        rows.append([dataset, f"{r['nodes']:,}", gib(r["blockwise"]["total"]), dense,
                     *([gib(r["device_peak"])] if gpu else []), gib(r["peak_rss"]), f"{per_epoch:,.3f}", len(r["seconds"])])
        device = r["device"] if gpu else device
    print_table(f"GRACE full-graph training, blockwise InfoNCE (block {args.block}), {args.compute_dtype}, {device}",
           ["dataset", "nodes", "step memory (compiled)", "dense loss would need", *(["GPU peak (allocator)"] if gpu else []),
            "process peak RSS", "s / epoch (median)", "epochs timed"], rows)


def sharded(args):
    rows = []
    sizes = [(args.sharded_dataset, False)] + [(f"synthetic-{s}", True) for s in filter(None, args.sharded_time_sizes.split(","))]
    for dataset, execute in sizes:
        r = _spawn(args, f"sharded:{dataset}:{int(execute)}", devices=args.devices)
        m = r["memory"]
        seconds = f"{r['seconds'][0]:,.1f}" if "seconds" in r else "not run (compile only)"
        rows.append([dataset, f"{r['nodes']:,}", f"{r['part_rows']:,}", gib(m["arguments"]), gib(m["temp"]),
                     gib(m["total"]), seconds])
    print_table(f"GRACE step on cluster parts, {args.devices} simulated CPU devices, ring InfoNCE over all nodes "
           f"(block {args.block}), {args.compute_dtype}; memory per device from the compiled program",
           ["dataset", "nodes", "rows per device (padded)", "arguments", "temporaries", "total", "step s"], rows)


def main(argv=None):
    args = _parse(argv)
    if args._worker:
        kind, dataset, *rest = args._worker.split(":")
        record = (full_worker(dataset, args.block, args.steps, args.compute_dtype) if kind == "full"
                  else sharded_worker(dataset, args.block, args.devices, rest == ["1"], args.compute_dtype))
        print(json.dumps(record))
        return
    skip = set(filter(None, args.skip.split(",")))
    if "full" not in skip:
        full(args)
    if "sharded" not in skip:
        sharded(args)


if __name__ == "__main__":
    main()
