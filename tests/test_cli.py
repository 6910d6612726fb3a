"""The ``gcl-jax`` command: JSON output, one-line errors with exit status 2, no tracebacks."""

import json
import os
import subprocess
import sys

import pytest

from gcl_jax import cli


def run_cli(*args: str, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "gcl_jax.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_data_info_cora_from_embedded_copy(tmp_path):
    # An empty GCL_JAX_DATA forces the embedded copy that ships in the package.
    result = run_cli("data", "info", "cora", env_extra={"GCL_JAX_DATA": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["num_nodes"] == 2708 and info["num_edges"] == 10556
    assert info["num_features"] == 1433 and info["num_classes"] == 7


def test_data_info_graph_level_reports_num_graphs(capsys):
    assert cli.main(["data", "info", "mutag"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_graphs"] == 188 and info["num_classes"] == 2


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["data", "info", "no-such-dataset"], "no-such-dataset"),
        (["data", "info", "cora", "--root", "/nonexistent/dir"], "/nonexistent/dir"),
        (["data", "frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(args, fragment):
    result = run_cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr
