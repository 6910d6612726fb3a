"""Each dense loss against an independent float64 numpy transcription of the
paper's formula (same inputs as ``test_losses``; its compiled dense functions
are reused)."""
import numpy as np
import pytest

from test_losses import DATA, _dense

RTOL = 1e-5


def np_(name):
    return np.asarray(DATA[name], np.float64)


def unit(x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def softplus(x):
    return np.logaddexp(0.0, x)


# --- InfoNCE family --------------------------------------------------------


def grace(z1, z2, tau, intra=True, symmetric=True, weights=None):
    """GRACE eq. (1): -log e^{s(u_i,v_i)} / (e^{s(u_i,v_i)} + sum_{k!=i} e^{s(u_i,v_k)}
    + sum_{k!=i} e^{s(u_i,u_k)}), averaged over both views (weighted by ``weights`` per node)."""
    weights = np.ones(len(z1)) if weights is None else weights
    u1, u2 = unit(z1), unit(z2)
    tau = np.broadcast_to(tau, (len(z1),))[:, None]

    def side(a, b):
        inter, same = a @ b.T / tau, a @ a.T / tau
        den = np.exp(inter).sum(1)
        if intra:
            den = den + np.exp(same).sum(1) - np.exp(np.diag(same))
        return -np.log(np.exp(np.diag(inter)) / den)

    def mean(terms):
        return np.sum(weights * terms) / np.sum(weights)

    if not symmetric:
        return mean(side(u1, u2))
    return 0.5 * (mean(side(u1, u2)) + mean(side(u2, u1)))


def supcon(z1, z2, labels, tau):
    """SupCon L_out over the 2N views."""
    f = np.concatenate([unit(z1), unit(z2)])
    y = np.concatenate([labels, labels])
    s = f @ f.T / tau
    out = []
    for i in range(len(f)):
        others = np.arange(len(f)) != i
        pos = others & (y == y[i])
        out.append(-np.mean(s[i, pos]) + np.log(np.exp(s[i, others]).sum()))
    return np.mean(out)


def clip_np(z1, z2, logit_scale):
    logits = np.exp(logit_scale) * unit(z1) @ unit(z2).T
    return -0.5 * (np.diag(log_softmax(logits, 1)).mean() + np.diag(log_softmax(logits, 0)).mean())


def siglip_np(z1, z2, logit_scale, bias):
    logits = np.exp(logit_scale) * unit(z1) @ unit(z2).T + bias
    n = len(z1)
    y = 2 * np.eye(n) - 1
    return -np.sum(np.log(1.0 / (1.0 + np.exp(-y * logits)))) / n


def dcl_hcl(z1, z2, t, tau_plus, beta=None):
    """Chuang et al. / Robinson et al. reference code, transcribed."""
    n = len(z1)
    out = np.concatenate([unit(z1), unit(z2)])
    sim = np.exp(out @ out.T / t)
    mask = np.ones((2 * n, 2 * n), bool)
    for i in range(n):
        mask[i, i] = mask[i + n, i + n] = mask[i, i + n] = mask[i + n, i] = False
    neg = sim[mask].reshape(2 * n, -1)
    pos = np.exp(np.sum(unit(z1) * unit(z2), axis=-1) / t)
    pos = np.concatenate([pos, pos])
    m = 2 * n - 2
    if beta is None:
        neg_sum = neg.sum(-1)
    else:
        imp = np.exp(beta * np.log(neg))
        neg_sum = (imp * neg).sum(-1) / imp.mean(-1)
    ng = (-tau_plus * m * pos + neg_sum) / (1 - tau_plus)
    ng = np.clip(ng, m * np.e ** (-1 / t), None)
    return np.mean(-np.log(pos / (pos + ng)))


def multi_similarity_np(z, labels, alpha=2.0, beta=50.0, base=0.5, margin=0.1):
    """Wang et al. reference implementation, transcribed (loop over anchors)."""
    s = unit(z) @ unit(z).T
    n = len(z)
    total = 0.0
    for i in range(n):
        pos_pair = s[i][(labels == labels[i]) & (np.arange(n) != i)]
        neg_pair = s[i][labels != labels[i]]
        if len(pos_pair) < 1 or len(neg_pair) < 1:
            continue
        neg_m = neg_pair[neg_pair + margin > pos_pair.min()]
        pos_m = pos_pair[pos_pair - margin < neg_pair.max()]
        if len(neg_m) < 1 or len(pos_m) < 1:
            continue
        total += (np.log(1 + np.sum(np.exp(-alpha * (pos_m - base)))) / alpha
                  + np.log(1 + np.sum(np.exp(beta * (neg_m - base)))) / beta)
    return total / n


# --- redundancy reduction ---------------------------------------------------


def barlow_np(z1, z2, eps=1e-5):
    n, d = z1.shape
    a = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + eps)
    b = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + eps)
    c = a.T @ b / n
    off = c - np.diag(np.diag(c))
    return np.sum((1 - np.diag(c)) ** 2) + (1.0 / d) * np.sum(off ** 2)


def vicreg_np(z1, z2):
    n, d = z1.shape
    inv = np.mean((z1 - z2) ** 2)

    def v(z):
        return np.mean(np.maximum(0, 1 - np.sqrt(z.var(0, ddof=1) + 1e-4)))

    def c(z):
        cov = np.cov(z, rowvar=False)
        return (np.sum(cov ** 2) - np.sum(np.diag(cov) ** 2)) / d

    return 25 * inv + 25 * (v(z1) + v(z2)) + (c(z1) + c(z2))


def cca_np(z1, z2, lam=1e-3):
    n, d = z1.shape
    a = (z1 - z1.mean(0)) / z1.std(0, ddof=1) / np.sqrt(n)
    b = (z2 - z2.mean(0)) / z2.std(0, ddof=1) / np.sqrt(n)
    eye = np.eye(d)
    return np.sum((a - b) ** 2) + lam * (np.sum((eye - a.T @ a) ** 2) + np.sum((eye - b.T @ b) ** 2))


# --- others ------------------------------------------------------------------


def swav_np(z1, z2, protos, t=0.1, eps=0.05, iters=3):
    c = unit(protos)

    def sinkhorn(scores):  # SwAV reference code (K x B orientation)
        q = np.exp(scores / eps).T
        q /= q.sum()
        k, b = q.shape
        for _ in range(iters):
            q /= q.sum(axis=1, keepdims=True)
            q /= k
            q /= q.sum(axis=0, keepdims=True)
            q /= b
        return (q * b).T

    s1, s2 = unit(z1) @ c.T, unit(z2) @ c.T
    q1, q2 = sinkhorn(s1), sinkhorn(s2)
    return -0.5 * np.mean(np.sum(q1 * log_softmax(s2 / t, 1), 1) + np.sum(q2 * log_softmax(s1 / t, 1), 1))


def local_global_np(h, g, gi):
    s = h @ g.T
    n, k = s.shape
    pos = gi[:, None] == np.arange(k)[None, :]
    e_pos = np.sum(-softplus(-s[pos])) / n
    e_neg = np.sum(softplus(s[~pos])) / (n * (k - 1))
    return -(e_pos - e_neg)


def triplet_np(a, p, q):
    return np.mean(np.maximum(np.linalg.norm(a - p, axis=1) - np.linalg.norm(a - q, axis=1) + 1, 0))


REFERENCES = {
    "info_nce": lambda: grace(np_("z1"), np_("z2"), 0.5),
    "info_nce_inter_one_way": lambda: grace(np_("z1"), np_("z2"), 0.3, intra=False,
                                            symmetric=False),
    "info_nce_labels": lambda: supcon(np_("z1"), np_("z2"), np.asarray(DATA["labels"]), 0.5),
    "info_nce_per_sample_tau": lambda: grace(np_("z1"), np_("z2"), np_("tau")),
    "info_nce_anchor_weights": lambda: grace(np_("z1"), np_("z2"), 0.5, weights=np_("counts")),
    "clip": lambda: clip_np(np_("z1"), np_("z2"), 1.5),
    "siglip": lambda: siglip_np(np_("z1"), np_("z2"), 1.5, -2.0),
    "debiased_info_nce": lambda: dcl_hcl(np_("z1"), np_("z2"), 0.5, 0.1),
    "hard_info_nce": lambda: dcl_hcl(np_("z1"), np_("z2"), 0.5, 0.1, beta=1.0),
    "multi_similarity": lambda: multi_similarity_np(np_("z1"), np.asarray(DATA["labels"])),
    "barlow_twins": lambda: barlow_np(np_("z1"), np_("z2")),
    "vicreg": lambda: vicreg_np(np_("z1"), np_("z2")),
    "cca_ssg": lambda: cca_np(np_("z1"), np_("z2")),
    "bootstrap": lambda: np.mean(2 - 2 * np.sum(unit(np_("z1")) * unit(np_("z2")), 1)),
    "scaled_cosine_error": lambda: np.mean((1 - np.sum(unit(np_("z1")) * unit(np_("z2")), 1)) ** 2),
    "triplet_margin": lambda: triplet_np(np_("z1"), np_("z2"), np_("z3")),
    "swav": lambda: swav_np(np_("z1"), np_("z2"), np_("protos")),
    "local_global_jsd": lambda: local_global_np(np_("z1"), np_("g"), np.asarray(DATA["graph"])),
}


@pytest.mark.parametrize("name", list(REFERENCES))
def test_dense_matches_numpy_formula(name):
    value = float(_dense(name)[0])
    np.testing.assert_allclose(value, REFERENCES[name](), rtol=RTOL, atol=1e-6)


def test_jsd_matches_numpy():
    from gcl_jax import losses

    p, q = np_("scores_pos"), np_("scores_neg")
    expected = np.mean(softplus(-p)) + np.mean(softplus(q))
    np.testing.assert_allclose(losses.jsd(DATA["scores_pos"], DATA["scores_neg"]), expected,
                               rtol=RTOL)


def test_debiased_losses_are_positive_and_reduce_to_info_nce():
    """DCL/HCL have the sign of a loss; tau_plus=0, beta=0 and strict negatives
    give InfoNCE without the positive in the denominator."""
    from gcl_jax import losses

    z1, z2 = DATA["z1"], DATA["z2"]
    assert float(_dense("debiased_info_nce")[0]) > 0
    assert float(_dense("hard_info_nce")[0]) > 0
    v = losses.debiased_info_nce(z1, z2, temperature=0.5, tau_plus=0.0)
    u1, u2 = unit(np_("z1")), unit(np_("z2"))
    f = np.concatenate([u1, u2])
    s = f @ f.T / 0.5
    n = len(u1)
    pos = np.concatenate([np.sum(u1 * u2, 1), np.sum(u1 * u2, 1)]) / 0.5
    neg = np.ones_like(s, bool)
    idx = np.arange(n)
    neg[idx, idx] = neg[idx + n, idx + n] = neg[idx, idx + n] = neg[idx + n, idx] = False
    lse_neg = np.log(np.sum(np.where(neg, np.exp(s), 0), 1))
    expected = np.mean(np.logaddexp(pos, lse_neg) - pos)
    np.testing.assert_allclose(v, expected, rtol=RTOL)
