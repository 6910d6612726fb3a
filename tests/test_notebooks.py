"""Every notebook executes top to bottom (with a small training budget), so none can rot."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("GCL_JAX_NOTEBOOK_STEPS", "15")
    monkeypatch.setenv("GCL_JAX_NOTEBOOK_PROJECTION", "pca")
    monkeypatch.setenv("XLA_FLAGS", "")  # one device is enough for a notebook
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("public split" in o.get("text", "") for o in outputs)


def test_there_is_a_quickstart():
    assert "quickstart.ipynb" in [p.name for p in NOTEBOOKS]
