"""PamC's meta-node loss vs losses over all N negatives: memory and time of forward + backward.

Programs, each ``value_and_grad`` with respect to the embeddings, on synthetic inputs: embeddings
``(N, d)`` (normal), a sparse random graph with ``--degree`` edges per node plus self-loops
(uniform weights, the positives of PamC and SCGC), hard assignments to ``--clusters`` clusters.

* ``pamc``: :func:`gcl_jax.losses.meta_node_contrastive` (positives over the E edges, negatives
  between K meta-nodes): O(E d + N d + K^2) memory and work; ``pamc edge-chunked`` gathers the
  edges' endpoints ``--edge-block`` edges at a time (rematerialized in the backward): O(E + N d).
* ``info_nce dense`` / ``info_nce blockwise``: :func:`gcl_jax.losses.info_nce` (GRACE's two-view
  form, 2N anchors against 2N - 1 others) as the full-negative reference; the dense one holds the
  (2N)^2 logits, the blockwise one streams ``--block`` tiles.
* ``scgc blockwise``: :func:`gcl_jax.losses.influence_contrastive`, the loss PamC approximates (the
  same positives, all N nodes as negatives), blockwise.

Memory is XLA's ``memory_analysis()`` temp bytes of the compiled program (compiling allocates
nothing). A program is then timed (best of ``--repeats`` after a warm-up) unless its estimated time
is over ``--max-seconds`` (its time at the previous size scaled as N or N^2, or before that its
N x N x d multiply-adds at the measured ``jnp.dot`` rate) or its temp + argument bytes exceed half
the memory available: those print "not run" and why.

    python benchmarks/pamc.py                          # N = 10k, 100k, 1M; d = 256
    python benchmarks/pamc.py --d 10 --sizes 10000,100000,1000000   # the papers' embedding width
"""
from __future__ import annotations

import argparse
import os

from report import best_seconds, mib, print_table


def _parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--degree", type=int, default=10)
    p.add_argument("--clusters", type=int, default=10)
    p.add_argument("--block", type=int, default=1024)
    p.add_argument("--edge-block", type=int, default=65536, help="edges per chunk of 'pamc edge-chunked'")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--dense-max", type=int, default=100000, help="largest N whose dense InfoNCE is compiled")
    return p.parse_args()


def _available_bytes() -> int:
    with open("/proc/meminfo") as stream:
        fields = dict(line.split(":", 1) for line in stream)
    return int(fields["MemAvailable"].split()[0]) * 1024


ARGUMENTS = {
    "pamc": ("z1", "assignments", "senders", "receivers", "weights"),
    "pamc edge-chunked": ("z1", "assignments", "senders", "receivers", "weights"),
    "info_nce dense": ("z1", "z2"),
    "info_nce blockwise": ("z1", "z2"),
    "scgc blockwise": ("z1", "senders", "receivers", "weights"),
}


def specs(args, n):
    """Shapes and dtypes of every argument at size ``n`` (for compiling without allocating)."""
    import jax
    import jax.numpy as jnp

    edges = n * (args.degree + 1)
    z = jax.ShapeDtypeStruct((n, args.d), jnp.float32)
    ids = jax.ShapeDtypeStruct((edges,), jnp.int32)
    return {"z1": z, "z2": z, "assignments": jax.ShapeDtypeStruct((n,), jnp.int32), "senders": ids,
            "receivers": ids, "weights": jax.ShapeDtypeStruct((edges,), jnp.float32)}


def synthetic(args, n):
    """Concrete arguments: normal embeddings, a random graph with self-loops, random assignments."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    loops = np.arange(n)
    ends = [np.concatenate([loops, rng.integers(0, n, n * args.degree)]).astype(np.int32) for _ in range(2)]
    return {
        "z1": jax.random.normal(jax.random.key(0), (n, args.d)),
        "z2": jax.random.normal(jax.random.key(1), (n, args.d)),
        "assignments": jnp.asarray(rng.integers(0, args.clusters, n), jnp.int32),
        "senders": jnp.asarray(ends[0]),
        "receivers": jnp.asarray(ends[1]),
        "weights": jnp.ones(ends[0].shape, jnp.float32),
    }


def programs(args, n):
    """``name -> (value_and_grad function, N x N x d matmuls per call)`` for size ``n``."""
    import jax

    from gcl_jax import losses

    def pamc(edge_block):
        return lambda z, a, s, r, w: losses.meta_node_contrastive(z, a, args.clusters, s, r, w, edge_block=edge_block)

    def info_nce(block):
        return lambda z1, z2: losses.info_nce(z1, z2, temperature=0.5, block_size=block)

    def scgc(z, s, r, w):
        return losses.influence_contrastive(z, s, r, w, block_size=args.block, edge_block=args.edge_block)

    table = {"pamc": (jax.value_and_grad(pamc(None)), 0.0),
             "pamc edge-chunked": (jax.value_and_grad(pamc(args.edge_block)), 0.0)}
    if n <= args.dense_max:
        table["info_nce dense"] = (jax.value_and_grad(info_nce(None), argnums=(0, 1)), 12.0)
    table["info_nce blockwise"] = (jax.value_and_grad(info_nce(args.block), argnums=(0, 1)), 8.0)
    table["scgc blockwise"] = (jax.value_and_grad(scgc), 2.0)
    return table


def _dot_rate(d):
    """Measured FLOP/s of one (4096 x d) @ (d x 4096) float32 matmul."""
    import jax

    x = jax.random.normal(jax.random.key(0), (4096, d))
    return 2.0 * 4096 * 4096 * d / best_seconds(jax.jit(lambda a: a @ a.T), x, repeats=1)


def _estimate(name, n, matmuls, measured, rate, d):
    """Seconds one call should take: the program's last measured time scaled to ``n`` (as N^2 with
    N x N x d matmuls, else as N), or, before any measurement, its matmuls at the ``jnp.dot`` rate."""
    if name in measured:
        n0, seconds = measured[name]
        return seconds * (n / n0) ** (2 if matmuls else 1)
    rows = 2 * n if "info_nce" in name else n
    return matmuls * 2.0 * rows**2 * d / rate


def main():
    args = _parse()
    import jax

    rate = _dot_rate(args.d)
    rows, measured = [], {}
    for n in [int(x) for x in args.sizes.split(",")]:
        shapes, arrays = specs(args, n), None
        for name, (fn, matmuls) in programs(args, n).items():
            compiled = jax.jit(fn).lower(*(shapes[k] for k in ARGUMENTS[name])).compile().memory_analysis()
            temp, argument = compiled.temp_size_in_bytes, compiled.argument_size_in_bytes
            estimate = _estimate(name, n, matmuls, measured, rate, args.d)
            if estimate > args.max_seconds:
                seconds = f"not run (~{estimate:,.0f} s estimated)"
            elif temp + argument > _available_bytes() / 2:
                seconds = f"not run ({mib(temp + argument)} > half the free memory)"
            else:
                arrays = arrays or synthetic(args, n)
                measured[name] = (n, best_seconds(jax.jit(fn), *[arrays[k] for k in ARGUMENTS[name]], repeats=args.repeats))
                seconds = f"{measured[name][1]:,.3f}"
            rows.append([n, name, mib(temp), seconds])
            print(f"  N={n} {name}: temp {mib(temp)}, {seconds}", flush=True)
    print_table(
        f"PamC vs all-negative losses: value_and_grad, d={args.d}, {args.degree} edges/node + self-loops, "
        f"K={args.clusters}, block={args.block}, {jax.devices()[0].platform} ({os.cpu_count()} cores, "
        f"jnp.dot {rate / 1e9:,.0f} GFLOP/s)",
        ["N", "program", "temp memory", "fwd+bwd seconds"], rows,
    )


if __name__ == "__main__":
    main()
