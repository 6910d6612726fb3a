"""Published methods, one module each, assembled from ``nn``, ``augment`` and ``losses``.

Every module defines ``LEVEL`` ("node" or "graph"), ``DEFAULTS`` (a config dict: training
scalars at the top, a ``model`` table, an ``eval`` table) and ``build(model_config, sample)``
returning a :class:`gcl_jax.train.Method`. Node-level methods get the whole graph as the batch
and embed nodes; graph-level methods get a padded batch of graphs and embed one row per graph
(padding graphs included; the runner drops them). An optional ``prepare_batch(batch)`` runs on
the host on every batch before it reaches jit (e.g. a diffusion view computed with scipy); its
output is what ``init``, ``loss`` and ``embed`` receive. A node-level method whose data is not one
homogeneous graph (heterogeneous meta-paths, user-item interactions) defines instead
``dataset_batch(dataset, config)``, which builds that batch from the loaded dataset. ``SHARDED = True`` declares that the
method reads ``model["axis_name"]`` and reduces its loss over that mesh axis, which ``--devices``
requires. A new module here is a new CLI name.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def names() -> list[str]:
    """CLI names of the available methods (module names, ``_`` shown as ``-``)."""
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get(name: str) -> ModuleType:
    """The method module for a CLI name (``grace``, ``bgrl``, ``graphmae-graph``, ...)."""
    if name.lower() not in names():
        raise ValueError(f"unknown method {name!r}; known: {', '.join(names())}")
    return importlib.import_module(f"{__name__}.{name.lower().replace('-', '_')}")
