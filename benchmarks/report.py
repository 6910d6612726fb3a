"""What the benchmark scripts share: one table formatter, so every script prints alike, and one timer."""

import time


def format_table(header: list[str], rows: list[list]) -> str:
    """Columns padded to their widest cell, ``|`` between them, a rule under the header."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n{title}\n{format_table(header, rows)}", flush=True)


def mib(nbytes) -> str:
    """Bytes as ``1,234.5 MiB``."""
    return f"{nbytes / 2**20:,.1f} MiB"


def gib(nbytes) -> str:
    """Bytes as ``1.23 GiB``."""
    return f"{nbytes / 2**30:,.2f} GiB"


def device_bytes(stat: str) -> int | None:
    """One allocator statistic of the first jax device (``bytes_in_use``, ``peak_bytes_in_use``),
    or ``None`` where the backend keeps none (the CPU)."""
    import jax

    return (jax.local_devices()[0].memory_stats() or {}).get(stat)


def best_seconds(fn, *args, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls of ``fn(*args)`` (blocking on the result), after one
    untimed call that compiles and warms up."""
    import jax

    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - started)
    return best
