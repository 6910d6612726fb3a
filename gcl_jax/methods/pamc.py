"""PamC (Kulatilleke, Portmann, Chandra 2022, "Efficient block contrastive learning via
parameter-free meta-node approximation", arXiv:2209.14067; github.com/gayanku/PAMC).

SCGC*'s model and training (:mod:`gcl_jax.methods.scgc`: MLP encoder, DEC head, influence-weighted
positives over the edges of ``A_hat + ... + A_hat^order``) with the N x N negatives replaced by
meta-nodes: the embeddings summed per hard cluster (``argmax Q``, no gradient through the
assignment) and contrasted with each other, K x K (:func:`gcl_jax.losses.meta_node_contrastive`).
The loss never forms an N x N matrix: O(E + N K + K^2) per step. This is the official
``SCGC_TRIMPOSCCSP`` model (sparse positives); ``loss = beta * KL(P || Q) + alpha * PamC``.
"""

from __future__ import annotations

from gcl_jax import losses
from gcl_jax.methods import scgc
from gcl_jax.train import Method

LEVEL = "node"

DEFAULTS = {
    **scgc.DEFAULTS,
    "model": {key: value for key, value in scgc.DEFAULTS["model"].items() if key not in ("block_size", "reconstruction")},
}

dataset_batch = scgc.dataset_batch


def build(model: dict, sample) -> Method:
    """SCGC*'s model trained with the meta-node contrastive loss."""
    clusters = int(model["clusters"])

    def contrast(z, q, batch):
        return losses.meta_node_contrastive(z, q.argmax(axis=1), clusters, batch["senders"], batch["receivers"],
                                            batch["weights"], tau=model["tau"])

    return scgc.build_with_contrast({**model, "reconstruction": 0.0}, contrast)
