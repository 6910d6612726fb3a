"""Cross-view InfoNCE with several positives per anchor, summed inside the log (HeCo's form).

``info_nce(..., pos_mask=...)`` averages the positives' log-probabilities (SupCon's ``L_out``);
HeCo (Wang et al., KDD 2021, eq. 9-11) instead takes the log of their summed probability
(``L_in``), with candidates from the other view only and a fixed weight between the two
directions. Dense: one ``N x N`` similarity matrix serves both directions.
"""

from __future__ import annotations

import jax.numpy as jnp

from ._common import l2_normalize


def multi_positive_info_nce(z1, z2, positives, *, temperature=0.5, weight=0.5):
    r"""HeCo's co-contrastive loss between two views of the same ``N`` nodes.

    With ``s_ij = cos(z1_i, z2_j) / tau`` and ``P`` the ``(N, N)`` positive weights (HeCo's 0/1
    ``pos`` matrix, node ``i``'s positives in row ``i``; need not be symmetric)::

        l1_i = -log( sum_j P_ij exp(s_ij) / sum_j exp(s_ij) )    anchor z1_i, candidates z2
        l2_i = -log( sum_j P_ij exp(s_ji) / sum_j exp(s_ji) )    anchor z2_i, candidates z1
        loss = weight * mean_i l1_i + (1 - weight) * mean_i l2_i

    Every row of ``positives`` needs a nonzero entry (else that anchor's loss is infinite).
    The exponentials are shifted by their bound ``1 / tau`` (cosines are at most 1), so one
    ``exp`` pass serves both directions; float32 keeps them exact while ``tau`` > 0.03.
    """
    cos = jnp.dot(l2_normalize(z1).astype(jnp.float32), l2_normalize(z2).astype(jnp.float32).T)
    e = jnp.exp((cos - 1.0) / temperature)  # exp(s_ij - 1/tau), in (0, 1]
    p = jnp.asarray(positives, jnp.float32)
    first = jnp.log(jnp.sum(e, axis=1)) - jnp.log(jnp.sum(e * p, axis=1))
    second = jnp.log(jnp.sum(e, axis=0)) - jnp.log(jnp.sum(e * p.T, axis=0))
    return weight * jnp.mean(first) + (1.0 - weight) * jnp.mean(second)
