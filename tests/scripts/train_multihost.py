"""One process of a multi-process GRACE run on Cora, for the multi-host test.

``python train_multihost.py COORDINATOR NUM_PROCESSES PROCESS_ID OUT [KEY=VALUE ...]`` joins the
run at ``COORDINATOR`` (HOST:PORT), trains through the runner over the devices of all processes
(config overrides as ``--set`` takes them), and prints the results record as one JSON line.
"""

import json
import os
import sys
import traceback

from gcl_jax import parallel, runner


def exit_at_once(*exc_info):
    """Print the error and exit now: a normal exit would wait in jax.distributed's shutdown for the
    other processes, so the test could not tell a failed process from a slow one."""
    traceback.print_exception(*exc_info)
    sys.stderr.flush()
    os._exit(1)


if __name__ == "__main__":
    sys.excepthook = exit_at_once
    coordinator, num_processes, process_id, out, *overrides = sys.argv[1:]
    parallel.initialize_distributed(coordinator, int(num_processes), int(process_id))
    record = runner.run("grace", "cora", overrides=overrides, out=out, progress=False, plot=False)
    print(json.dumps(record))
