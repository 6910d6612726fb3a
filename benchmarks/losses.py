"""Memory and speed of the InfoNCE (GRACE form: both views, intra-view negatives).

Four tables:

1. memory: compiled ``memory_analysis()`` temp bytes of ``value_and_grad(info_nce)``,
   blockwise vs dense (compile only, nothing is allocated);
2. speed: fwd+bwd time of blockwise vs dense InfoNCE and of one plain
   ``jnp.dot`` of an (N x d) @ (d x N) matmul, with achieved FLOP/s;
3. sharded: per-device temp bytes of the ring (and all-gather) sharded loss on P
   simulated CPU devices vs one device (run in a subprocess, since the device
   count must be set before jax is imported).

FLOP accounting (GRACE, 2N anchors x 2N columns, T = ceil(N / block) tiles per
view): the cosine matrix is symmetric, so the blockwise program visits only the
tiles (I, J) with I <= J of the two intra-view blocks and all tiles of the
inter-view block, and reads each tile in both orientations: 2 + 1/T N x N x d
products per pass.  The forward makes one pass (1 product per tile), the
backward recomputes the tile and forms the gradients of both of its sides (3):
``8 + 4/T`` N x N x d matmuls in all, i.e. ``(8 + 4/T) * 2 N^2 d`` FLOPs.
Dense autodiff (the 2N x 2N logits kept): 4 forward + 8 backward = 12.

    python benchmarks/losses.py                       # small sizes for a laptop CPU
    python benchmarks/losses.py --mem-sizes 8192,32768,131072 --speed-n 16384
    python benchmarks/losses.py --skip memory,speed,sharded     # the scaling table only

4. scaling: temp bytes of dense / blockwise / 8-device ring as N grows to 1M (compiled only) and
   measured fwd+bwd seconds up to ``--scaling-time-max``: time grows as N^2, memory as N*d.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from report import best_seconds, mib, print_table


def _parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--block", type=int, default=1024)
    p.add_argument("--mem-sizes", default="8192,32768,131072")
    p.add_argument("--dense-mem-max", type=int, default=32768,
                   help="largest N for which the dense program is compiled")
    p.add_argument("--speed-n", type=int, default=4096)
    p.add_argument("--speed-dense-max", type=int, default=16384,
                   help="largest N for which dense is timed (its logits must fit)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--devices", type=int, default=8)
    p.add_argument("--sharded-n", type=int, default=32768)
    p.add_argument("--scaling-sizes", default="8192,16384,32768,131072,1048576")
    p.add_argument("--scaling-time-max", type=int, default=16384, help="largest N whose fwd+bwd is timed in the scaling table")
    p.add_argument("--skip", default="", help="comma list of: memory,speed,sharded,scaling")
    p.add_argument("--_sharded-worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()



def _grad_fn(block, **kw):
    import jax

    from gcl_jax import losses

    def loss(z1, z2):
        return losses.info_nce(z1, z2, temperature=0.5, block_size=block, **kw)

    return jax.value_and_grad(loss, argnums=(0, 1))


def _temp_bytes(fn, n, d, dtype):
    import jax

    spec = jax.ShapeDtypeStruct((n, d), dtype)
    return jax.jit(fn).lower(spec, spec).compile().memory_analysis().temp_size_in_bytes


def memory(args):
    rows = []
    for n in [int(x) for x in args.mem_sizes.split(",")]:
        blk = _temp_bytes(_grad_fn(args.block), n, args.d, args.dtype)
        dense = (mib(_temp_bytes(_grad_fn(None), n, args.d, args.dtype))
                 if n <= args.dense_mem_max else "(not compiled)")
        nd = n * args.d * (2 if args.dtype == "bfloat16" else 4)
        rows.append([n, args.d, args.dtype, mib(blk), f"{blk / nd:.1f}", dense])
    print_table(f"memory: value_and_grad(info_nce) temp bytes (block={args.block})",
           ["N", "d", "dtype", "blockwise", "blockwise / (N*d*itemsize)", "dense"], rows)


def blockwise_matmuls(n, block):
    """N x N x d matmuls of blockwise GRACE fwd+bwd (see the module docstring)."""
    return 8 + 4 / -(-n // min(block, n))


def speed(args):
    import jax
    import jax.numpy as jnp

    n, d = args.speed_n, args.d
    k1, k2 = jax.random.split(jax.random.key(0))
    z1 = jax.random.normal(k1, (n, d), args.dtype)
    z2 = jax.random.normal(k2, (n, d), args.dtype)
    flops_one = 2.0 * n * n * d
    dot = jax.jit(lambda a, b: jnp.dot(a, b.T, preferred_element_type=jnp.float32))
    t_dot = best_seconds(dot, z1, z2, repeats=args.repeats)
    ref = flops_one / t_dot
    rows = [["jnp.dot (N x d)@(d x N)", 1, f"{t_dot * 1e3:,.1f}", f"{ref / 1e9:,.1f}", "100%", ""]]
    t_blk = best_seconds(jax.jit(_grad_fn(args.block)), z1, z2, repeats=args.repeats)
    matmuls = blockwise_matmuls(n, args.block)
    rate = matmuls * flops_one / t_blk
    rows.append([f"blockwise fwd+bwd (block={args.block})", f"{matmuls:g}", f"{t_blk * 1e3:,.1f}",
                 f"{rate / 1e9:,.1f}", f"{100 * rate / ref:.0f}%", ""])
    if n <= args.speed_dense_max:
        t_den = best_seconds(jax.jit(_grad_fn(None)), z1, z2, repeats=args.repeats)
        rate = 12 * flops_one / t_den
        rows.append(["dense fwd+bwd", 12, f"{t_den * 1e3:,.1f}", f"{rate / 1e9:,.1f}",
                     f"{100 * rate / ref:.0f}%", ""])
        rows[1][-1] = f"{t_blk / t_den:.2f}x dense"
    print_table(f"speed: InfoNCE (GRACE) N={n}, d={d}, {args.dtype}, {jax.devices()[0].platform} "
           f"({os.cpu_count()} cores)",
           ["program", "N x N x d matmuls", "time [ms]", "GFLOP/s", "vs jnp.dot", "ratio"], rows)


def sharded_worker(args):
    """Runs with P simulated devices: prints per-device temp bytes (and step seconds where asked)
    for every N in ``--scaling-sizes`` as JSON. Collectives: ring, plus all-gather at ``--sharded-n``."""
    from functools import partial

    import jax
    from jax.sharding import PartitionSpec as P

    from gcl_jax import losses

    mesh = jax.make_mesh((args.devices,), ("d",), axis_types=(jax.sharding.AxisType.Auto,))
    out = {}
    for n in [int(x) for x in args.scaling_sizes.split(",")]:
        out[n] = {"single": _temp_bytes(_grad_fn(args.block), n, args.d, args.dtype)}
        for coll in ("ring", "all_gather") if n == args.sharded_n else ("ring",):
            loss = partial(losses.info_nce, temperature=0.5, block_size=args.block, axis_name="d", collective=coll)
            f = jax.value_and_grad(jax.shard_map(loss, mesh=mesh, in_specs=(P("d"), P("d")), out_specs=P()), argnums=(0, 1))
            out[n][coll] = _temp_bytes(f, n, args.d, args.dtype)
            if coll == "ring" and n <= args.scaling_time_max:
                z = jax.random.normal(jax.random.key(0), (n, args.d), args.dtype)
                out[n]["ring_seconds"] = best_seconds(jax.jit(f), z, z, repeats=1)
    print(json.dumps(out))


def _sharded_results(args, sizes: str) -> dict:
    """Per-size results of :func:`sharded_worker`, run in a subprocess with P simulated devices."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={args.devices}",
               JAX_PLATFORMS="cpu")
    cmd = [sys.executable, __file__, "--_sharded-worker", "--d", str(args.d), "--block",
           str(args.block), "--dtype", args.dtype, "--devices", str(args.devices),
           "--sharded-n", str(args.sharded_n), "--scaling-sizes", sizes,
           "--scaling-time-max", str(args.scaling_time_max)]
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def sharded(args):
    res = _sharded_results(args, str(args.sharded_n))[args.sharded_n]
    p, single = args.devices, res["single"]
    rows = [["1 device, blockwise", mib(single), "1.00", "1.00"]]
    for coll in ("ring", "all_gather"):
        rows.append([f"{p} devices, {coll}, per device", mib(res[coll]),
                     f"{res[coll] / single:.3f}", f"{1 / p:.3f}"])
    print_table(f"sharded: per-device temp bytes, value_and_grad, N={args.sharded_n}, d={args.d}, "
           f"block={args.block}, {args.dtype}",
           ["program", "temp", "ratio to 1 device", "ideal 1/P"], rows)


def scaling(args):
    """Memory (compiled) and measured fwd+bwd time as N grows: dense, blockwise, sharded ring."""
    import jax

    sizes = [int(x) for x in args.scaling_sizes.split(",")]
    ring = _sharded_results(args, args.scaling_sizes)
    rows, previous = [], None
    for n in sizes:
        blk = _temp_bytes(_grad_fn(args.block), n, args.d, args.dtype)
        dense = mib(_temp_bytes(_grad_fn(None), n, args.d, args.dtype)) if n <= args.dense_mem_max else "–"
        seconds = "–"
        if n <= args.scaling_time_max:
            z = jax.random.normal(jax.random.key(0), (n, args.d), args.dtype)
            t = best_seconds(jax.jit(_grad_fn(args.block)), z, z, repeats=1)
            seconds = f"{t:,.2f}" + (f" (x{t / previous[1]:.1f} for x{n / previous[0]:g} N)" if previous else "")
            previous = (n, t)
        ring_t = ring[n].get("ring_seconds")
        rows.append([n, dense, mib(blk), f"{blk / (n * args.d * 4):.2f}", mib(ring[n]["ring"]), seconds,
                     "–" if ring_t is None else f"{ring_t:,.2f}"])
    print_table(f"scaling: InfoNCE (GRACE) value_and_grad, d={args.d}, block={args.block}, {args.dtype}; "
           f"sharded = {args.devices} simulated CPU devices sharing this CPU's cores",
           ["N", "dense temp", "blockwise temp", "blockwise / (N*d*4B)", "ring temp per device",
            "blockwise s", "ring s"], rows)


def main():
    args = _parse()
    if args._sharded_worker:
        return sharded_worker(args)
    skip = set(filter(None, args.skip.split(",")))
    if "memory" not in skip:
        memory(args)
    if "speed" not in skip:
        speed(args)
    if "sharded" not in skip:
        sharded(args)
    if "scaling" not in skip:
        scaling(args)


if __name__ == "__main__":
    main()
