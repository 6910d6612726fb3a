"""One process of a multi-process GRACE run on Cora, for the multi-host test.

``python train_multihost.py COORDINATOR NUM_PROCESSES PROCESS_ID OUT [KEY=VALUE ...]`` joins the
run at ``COORDINATOR`` (HOST:PORT), trains through the runner over the devices of all processes
(config overrides as ``--set`` takes them), and prints the results record as one JSON line.
"""

import json
import sys

from gcl_jax import parallel, runner

if __name__ == "__main__":
    coordinator, num_processes, process_id, out, *overrides = sys.argv[1:]
    parallel.initialize_distributed(coordinator, int(num_processes), int(process_id))
    record = runner.run("grace", "cora", overrides=overrides, out=out, progress=False, plot=False)
    print(json.dumps(record))
