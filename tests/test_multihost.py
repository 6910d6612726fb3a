"""Multi-host training: two real processes joined by ``jax.distributed`` on loopback, four CPU
devices each, train GRACE exactly as one process with eight devices does."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gcl_jax
from gcl_jax import cli, parallel, runner

SCRIPT = Path(__file__).parent / "scripts" / "train_multihost.py"
OVERRIDES = ["epochs=3", "model.hidden=16", "model.proj_hidden=16"]
TIMEOUT_S = 180  # several times what a run takes on 2 busy cores; only a hang gets here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(process_id: int, coordinator: str, out: Path, logs: Path) -> subprocess.Popen:
    """One process of the run; output goes to files, so a full pipe can never block it."""
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
        # the subprocess imports the same gcl_jax as this test process
        "PYTHONPATH": os.pathsep.join([str(Path(gcl_jax.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    args = [sys.executable, str(SCRIPT), coordinator, "2", str(process_id), str(out), *OVERRIDES]
    with open(logs / f"{process_id}.out", "w") as stdout, open(logs / f"{process_id}.err", "w") as stderr:
        return subprocess.Popen(args, env=env, stdout=stdout, stderr=stderr)


def wait_all(procs: list[subprocess.Popen], deadline: float) -> None:
    """Wait until every process has exited, one has failed, or ``deadline`` has passed."""
    while time.monotonic() < deadline:
        codes = [p.poll() for p in procs]
        if None not in codes or any(code not in (None, 0) for code in codes):
            return  # after a failure the others would wait for the failed one until JAX's own timeouts
        time.sleep(0.2)


def losses(run: Path) -> np.ndarray:
    return np.array([json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()])


def test_two_processes_train_like_one_process_with_eight_devices(tmp_path):
    multi, single, logs = tmp_path / "multi", tmp_path / "single", tmp_path / "logs"
    logs.mkdir()
    coordinator = f"127.0.0.1:{free_port()}"
    procs = [launch(k, coordinator, multi, logs) for k in range(2)]
    deadline = time.monotonic() + TIMEOUT_S
    try:  # the reference run on this process's eight devices overlaps the two processes
        reference = runner.run("grace", "cora", overrides=OVERRIDES, out=single, devices=8, progress=False, plot=False)
        wait_all(procs, deadline)
    finally:  # whatever happened, no process outlives the test
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    report = "\n".join(
        f"--- process {k}: exit {p.returncode}\n{(logs / f'{k}.err').read_text()[-3000:]}" for k, p in enumerate(procs)
    )
    assert [p.returncode for p in procs] == [0, 0], report

    records = [json.loads((logs / f"{k}.out").read_text().splitlines()[-1]) for k in range(2)]
    assert all(r["processes"] == 2 and r["devices"] == 8 for r in records), records
    assert records[0]["test_mean"] == records[1]["test_mean"]  # both evaluated the same final state
    assert json.loads((multi / "results.json").read_text()) == records[0]  # written by process 0

    curve = losses(multi)
    assert len(curve) == 3 and (multi / "checkpoints" / "3").is_dir()
    np.testing.assert_allclose(curve, losses(single), rtol=1e-5)
    assert reference["processes"] == 1
    # the checkpoint the two processes wrote together restores in one process: same final state
    again = runner.run("grace", "cora", overrides=OVERRIDES, out=multi, devices=8, resume=True, progress=False, plot=False)
    assert again["test_mean"] == records[0]["test_mean"] and len(losses(multi)) == 3


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--coordinator", "127.0.0.1:1234"], "--num-processes (GCL_JAX_NUM_PROCESSES), --process-id (GCL_JAX_PROCESS_ID)"),
        (["--num-processes", "2", "--process-id", "0"], "--coordinator (GCL_JAX_COORDINATOR)"),
        (["--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"], "expects HOST:PORT, got 'localhost'"),
        (["--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"], "--process-id 2 is not in 0..1"),
    ],
)
def test_partial_or_bad_distributed_flags_are_one_line_errors(flags, named, capsys, tmp_path):
    assert cli.main(["train", "grace", "cora", *flags, "--out", str(tmp_path), "--quiet"]) == 2
    assert named in capsys.readouterr().err


def test_distributed_settings_come_from_arguments_then_environment():
    env = {"GCL_JAX_COORDINATOR": "10.0.0.1:9000", "GCL_JAX_NUM_PROCESSES": "4", "GCL_JAX_PROCESS_ID": "3"}
    assert parallel.distributed_settings(environ={}) is None  # a managed cluster: JAX detects the rest
    assert parallel.distributed_settings(environ=env) == ("10.0.0.1:9000", 4, 3)
    assert parallel.distributed_settings("h:1", None, 0, environ=env) == ("h:1", 4, 0)
    with pytest.raises(ValueError, match=r"GCL_JAX_NUM_PROCESSES\) expects an integer, got 'four'"):
        parallel.distributed_settings(environ={**env, "GCL_JAX_NUM_PROCESSES": "four"})
    with pytest.raises(ValueError, match="missing --process-id"):
        parallel.distributed_settings(environ={k: v for k, v in env.items() if k != "GCL_JAX_PROCESS_ID"})
