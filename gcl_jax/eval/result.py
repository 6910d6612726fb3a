"""The result record every evaluation protocol returns."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """A metric over repeated splits (or seeds): mean, std, the per-split values, chosen hyperparameters.

    ``test_std`` is the population std (``np.std``), as GRACE, BGRL and GraphMAE report it.
    ``chosen`` holds one dict of selected hyperparameters per split (empty when nothing is selected);
    ``extra`` holds further per-split series, e.g. ``macro_f1`` or ``val_accuracy``.
    """

    metric: str
    test_mean: float
    test_std: float
    per_split: tuple[float, ...]
    chosen: tuple[Mapping[str, Any], ...] = ()
    extra: Mapping[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready plain dict."""
        return {
            "metric": self.metric,
            "test_mean": self.test_mean,
            "test_std": self.test_std,
            "per_split": list(self.per_split),
            "chosen": [dict(c) for c in self.chosen],
            "extra": {k: list(v) for k, v in self.extra.items()},
        }

    def __str__(self) -> str:
        return f"{self.metric} {100 * self.test_mean:.2f} ± {100 * self.test_std:.2f} (n={len(self.per_split)})"


def summarize(metric: str, values: Sequence[float], chosen=(), std: float | None = None, **extra) -> EvalResult:
    """Build an :class:`EvalResult` from per-split ``values``; ``std`` overrides ``np.std(values)``."""
    values = tuple(float(v) for v in values)
    return EvalResult(
        metric=metric,
        test_mean=float(np.mean(values)),
        test_std=float(np.std(values)) if std is None else float(std),
        per_split=values,
        chosen=tuple(chosen),
        extra={k: tuple(float(x) for x in v) for k, v in extra.items()},
    )
