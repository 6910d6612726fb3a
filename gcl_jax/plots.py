"""Pictures of a run: the loss curve and a 2-D map of the embeddings coloured by label."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve(metrics_path: str | Path, out_png: str | Path) -> Path:
    """Plot ``loss`` against ``step`` from a ``metrics.jsonl`` file; returns the PNG path."""
    records = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    if not records:
        raise ValueError(f"{metrics_path}: no metrics recorded")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot([r["step"] for r in records], [r["loss"] for r in records], lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(Path(metrics_path).parent.name or "training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return Path(out_png)


def project_2d(embeddings: np.ndarray, method: str = "tsne", max_points: int = 3000, seed: int = 0):
    """A 2-D projection (t-SNE or PCA) of at most ``max_points`` rows; returns (points, row indices)."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    rows = np.arange(embeddings.shape[0])
    if rows.size > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_points, replace=False))
    x = embeddings[rows]
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x), rows
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30.0, (len(rows) - 1) / 3)).fit_transform(x), rows
    raise ValueError(f"method: expected 'tsne' or 'pca', got {method!r}")


def embedding_map(embeddings, labels, out_png: str | Path, method: str = "tsne", title: str = "") -> Path:
    """Scatter the 2-D projection of the embeddings, one colour per label; returns the PNG path."""
    points, rows = project_2d(embeddings, method)
    labels = np.asarray(labels)[rows]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, s=4, cmap="tab10" if labels.max() < 10 else "tab20")
    ax.legend(*scatter.legend_elements(), title="label", fontsize=7, loc="best", markerscale=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"embeddings ({method})")
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return Path(out_png)
