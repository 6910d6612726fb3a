"""Plots are written as real PNG files from real inputs."""

import json

import numpy as np
import pytest

from gcl_jax import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_loss_curve_png(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 20)))
    out = plots.loss_curve(metrics, tmp_path / "loss.png")
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_loss_curve_rejects_empty(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match="no metrics"):
        plots.loss_curve(tmp_path / "metrics.jsonl", tmp_path / "loss.png")


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_map_png_separates_clusters(tmp_path, method):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    embeddings = rng.normal(size=(120, 16)) + 8.0 * np.eye(16)[labels]
    points, rows = plots.project_2d(embeddings, method)
    centres = np.stack([points[labels[rows] == c].mean(0) for c in range(3)])
    spread = max(points[labels[rows] == c].std() for c in range(3))
    assert min(np.linalg.norm(centres[a] - centres[b]) for a in range(3) for b in range(a + 1, 3)) > 2 * spread
    out = plots.embedding_map(embeddings, labels, tmp_path / "emb.png", method=method)
    assert out.read_bytes()[:8] == PNG_MAGIC
