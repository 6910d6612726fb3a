"""Dense vs blockwise vs sharded (ring / all-gather) agreement, stability, jit.

N = 37 rows (not a multiple of the block size 8, nor of the 8 simulated
devices: the sharded runs pad to 40 rows and pass ``valid``).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from gcl_jax import losses

N, D, N_PAD, BLOCK = 37, 16, 40, 8
RTOL = 1e-5

MESH = jax.make_mesh((8,), ("d",), axis_types=(jax.sharding.AxisType.Auto,))


def _data():
    rng = np.random.default_rng(0)
    z1 = rng.normal(size=(N, D)).astype(np.float32)
    z2 = (z1 + 0.8 * rng.normal(size=(N, D))).astype(np.float32)
    return {
        "z1": jnp.asarray(z1), "z2": jnp.asarray(z2),
        "labels": jnp.asarray(rng.integers(0, 5, N), jnp.int32),
        "tau": jnp.asarray(rng.uniform(0.3, 0.8, N), jnp.float32),
        "counts": jnp.asarray(rng.integers(0, 4, N), jnp.float32),  # anchor weights, some 0
        "logit_scale": jnp.float32(1.5), "bias": jnp.float32(-2.0),
        "z3": jnp.asarray(rng.normal(size=(N, D)), jnp.float32),
        "protos": jnp.asarray(rng.normal(size=(6, D)), jnp.float32),
        "scores_pos": jnp.asarray(rng.normal(size=(N,)), jnp.float32),
        "scores_neg": jnp.asarray(rng.normal(size=(N,)), jnp.float32),
        "graph": jnp.asarray(np.sort(rng.integers(0, 4, N)), jnp.int32),
        "g": jnp.asarray(rng.normal(size=(4, D)), jnp.float32),
    }


DATA = _data()

# name -> (loss(*args, **mode_kw), sharded (row) args, replicated args, is N x N)
CASES = {
    "info_nce": (lambda a, b, **k: losses.info_nce(a, b, temperature=0.5, **k),
                 ("z1", "z2"), (), True),
    "info_nce_inter_one_way": (
        lambda a, b, **k: losses.info_nce(a, b, temperature=0.3, intra_view=False,
                                          symmetric=False, **k), ("z1", "z2"), (), True),
    "info_nce_labels": (lambda a, b, y, **k: losses.info_nce(a, b, labels=y, **k),
                        ("z1", "z2", "labels"), (), True),
    "info_nce_per_sample_tau": (lambda a, b, t, **k: losses.info_nce(a, b, temperature=t, **k),
                                ("z1", "z2", "tau"), (), True),
    "info_nce_anchor_weights": (
        lambda a, b, w, **k: losses.info_nce(a, b, temperature=0.5, anchor_weights=w, **k),
        ("z1", "z2", "counts"), (), True),
    "clip": (lambda a, b, s, **k: losses.clip(a, b, s, **k), ("z1", "z2"), ("logit_scale",), True),
    "siglip": (lambda a, b, s, c, **k: losses.siglip(a, b, s, c, **k), ("z1", "z2"),
               ("logit_scale", "bias"), True),
    "debiased_info_nce": (lambda a, b, **k: losses.debiased_info_nce(a, b, temperature=0.5, **k),
                          ("z1", "z2"), (), True),
    "hard_info_nce": (lambda a, b, **k: losses.hard_info_nce(a, b, temperature=0.5, beta=1.0, **k),
                      ("z1", "z2"), (), True),
    "multi_similarity": (lambda a, y, **k: losses.multi_similarity(a, y, **k),
                         ("z1", "labels"), (), True),
    "barlow_twins": (losses.barlow_twins, ("z1", "z2"), (), False),
    "vicreg": (losses.vicreg, ("z1", "z2"), (), False),
    "cca_ssg": (losses.cca_ssg, ("z1", "z2"), (), False),
    "bootstrap": (functools.partial(losses.bootstrap, stop_target_gradient=False),
                  ("z1", "z2"), (), False),
    "scaled_cosine_error": (losses.scaled_cosine_error, ("z1", "z2"), (), False),
    "triplet_margin": (losses.triplet_margin, ("z1", "z2", "z3"), (), False),
    "swav": (lambda a, b, c, **k: losses.swav(a, b, c, **k), ("z1", "z2"), ("protos",), False),
    "local_global_jsd": (lambda h, gi, g, **k: losses.local_global_jsd(h, g, gi, **k),
                         ("z1", "graph"), ("g",), False),
}


def _args(name):
    _, rows, reps, _ = CASES[name]
    return [DATA[k] for k in rows], [DATA[k] for k in reps]


def _argnums(args):
    return tuple(i for i, a in enumerate(args) if jnp.issubdtype(a.dtype, jnp.floating))


@functools.cache
def _single(name, block_size):
    fn, rows, reps, nn = CASES[name]
    kw = {"block_size": block_size} if nn else {}
    args = _args(name)[0] + _args(name)[1]
    return jax.jit(jax.value_and_grad(lambda *a: fn(*a, **kw), argnums=_argnums(args)))


@functools.cache
def _sharded(name, block_size, collective):
    fn, rows, reps, nn = CASES[name]
    kw = {"block_size": block_size, "collective": collective} if nn else {}
    n_rows = len(rows)

    def local(*a):
        return fn(*a[:n_rows], *a[n_rows + 1:], valid=a[n_rows], axis_name="d", **kw)

    specs = (P("d"),) * (n_rows + 1) + (P(),) * len(reps)
    mapped = jax.shard_map(local, mesh=MESH, in_specs=specs, out_specs=P())
    row_args, rep_args = _args(name)
    argnums = tuple(i if i < n_rows else i + 1 for i in _argnums(row_args + rep_args))
    return jax.jit(jax.value_and_grad(mapped, argnums=argnums))


def _pad(x):
    return jnp.pad(x, ((0, N_PAD - N),) + ((0, 0),) * (x.ndim - 1))


def _close(actual, expected, n_rows=None):
    """Value and gradients within RTOL, relative to the largest entry."""
    (v, g), (v_ref, g_ref) = actual, expected
    np.testing.assert_allclose(v, v_ref, rtol=RTOL, atol=1e-7)
    for i, (a, b) in enumerate(zip(g, g_ref)):
        a, b = np.asarray(a), np.asarray(b)
        if n_rows is not None and i < n_rows:
            assert np.all(a[N:] == 0), "gradient leaked into padding rows"
            a = a[:N]
        scale = max(np.max(np.abs(b)), 1e-6)
        np.testing.assert_allclose(a, b, rtol=0, atol=RTOL * scale)


def _dense(name):
    return _single(name, None)(*_args(name)[0], *_args(name)[1])


NN_CASES = [n for n, c in CASES.items() if c[3]]


@pytest.mark.parametrize("name", NN_CASES)
def test_blockwise_matches_dense(name):
    rows, reps = _args(name)
    _close(_single(name, BLOCK)(*rows, *reps), _dense(name))


# The ring and all-gather machinery is shared by every N x N loss: every loss
# runs the blockwise ring; the other variants run on a few representatives.
SHARDED = ([(n, "ring", 3) for n in NN_CASES]
           + [(n, "all_gather", 2) for n in ("info_nce_labels", "siglip")]
           + [("info_nce", "all_gather", None), ("clip", "ring", None)])


@pytest.mark.parametrize("name,collective,block", SHARDED)
def test_sharded_matches_dense(name, collective, block):
    rows, reps = _args(name)
    valid = jnp.arange(N_PAD) < N
    got = _sharded(name, block, collective)(*[_pad(r) for r in rows], valid, *reps)
    _close(got, _dense(name), n_rows=len(rows))


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if not c[3]])
def test_sharded_batch_statistics_match_single_device(name):
    rows, reps = _args(name)
    valid = jnp.arange(N_PAD) < N
    got = _sharded(name, None, None)(*[_pad(r) for r in rows], valid, *reps)
    _close(got, _dense(name), n_rows=len(rows))


def test_jsd_sharded():
    p, q = DATA["scores_pos"], DATA["scores_neg"]
    ref = losses.jsd(p, q)
    valid = jnp.arange(N_PAD) < N
    f = jax.shard_map(lambda a, b, v: losses.jsd(a, b, pos_valid=v, neg_valid=v, axis_name="d"),
                      mesh=MESH, in_specs=(P("d"),) * 3, out_specs=P())
    np.testing.assert_allclose(f(_pad(p), _pad(q), valid), ref, rtol=RTOL)


def test_padding_never_leaks():
    """Garbage in padding rows changes nothing (values and gradients)."""
    rows, _ = _args("info_nce")
    valid = jnp.arange(N_PAD) < N
    f = _sharded("info_nce", 3, "ring")
    clean = f(*[_pad(r) for r in rows], valid)
    noisy = f(*[_pad(r).at[N:].set(1e3) for r in rows], valid)
    _close(noisy, clean, n_rows=None)


def test_pos_mask_equals_labels():
    y = DATA["labels"]
    a = _dense("info_nce_labels")[0]
    b = jax.jit(losses.info_nce)(DATA["z1"], DATA["z2"], pos_mask=y[:, None] == y[None, :])
    np.testing.assert_allclose(a, b, rtol=RTOL)
    with pytest.raises(ValueError):
        losses.info_nce(DATA["z1"], DATA["z2"], pos_mask=y[:, None] == y[None, :], block_size=8)


def test_valid_mask_equals_dropping_rows():
    z1, z2 = DATA["z1"], DATA["z2"]
    valid = jnp.arange(N) % 3 != 0
    keep = np.asarray(valid)
    a = jax.jit(functools.partial(losses.info_nce, block_size=BLOCK))(z1, z2, valid=valid)
    b = jax.jit(losses.info_nce)(z1[keep], z2[keep])
    np.testing.assert_allclose(a, b, rtol=RTOL)


# ---------------------------------------------------------------------------
# numerical stability, mixed precision, compilation
# ---------------------------------------------------------------------------

STABILITY = {
    "info_nce": lambda a, b, k: losses.info_nce(a, b, temperature=0.01, **k),
    "info_nce_labels": lambda a, b, k: losses.info_nce(a, b, temperature=0.01,
                                                       labels=DATA["labels"], **k),
    "debiased_info_nce": lambda a, b, k: losses.debiased_info_nce(a, b, temperature=0.01, **k),
    "hard_info_nce": lambda a, b, k: losses.hard_info_nce(a, b, temperature=0.01, **k),
    "clip": lambda a, b, k: losses.clip(a, b, 4.6, **k),
    "siglip": lambda a, b, k: losses.siglip(a, b, 4.6, -10.0, **k),
    "multi_similarity": lambda a, b, k: losses.multi_similarity(a, DATA["labels"], **k),
    "barlow_twins": lambda a, b, k: losses.barlow_twins(a, b),
    "vicreg": lambda a, b, k: losses.vicreg(a, b),
    "cca_ssg": lambda a, b, k: losses.cca_ssg(a, b),
    "bootstrap": lambda a, b, k: losses.bootstrap(a, b, stop_target_gradient=False),
    "scaled_cosine_error": lambda a, b, k: losses.scaled_cosine_error(a, b),
    "triplet_margin": lambda a, b, k: losses.triplet_margin(a, b, b),
    "swav": lambda a, b, k: losses.swav(a, b, DATA["protos"], temperature=0.01),
}


NN_STABILITY = ("info_nce", "info_nce_labels", "debiased_info_nce", "hard_info_nce", "clip",
                "siglip", "multi_similarity")
BLOCK_STABILITY = ("info_nce", "hard_info_nce", "multi_similarity")  # engine -inf paths


@functools.cache
def _stability_fn(name, block_size):
    k = {"block_size": block_size} if name in NN_STABILITY else {}
    return jax.jit(jax.value_and_grad(lambda a, b: STABILITY[name](a, b, k), argnums=(0, 1)))


@pytest.mark.parametrize("name", list(STABILITY))
def test_finite(name):
    """Temperature 0.01 (or the equivalent large scale), identical embeddings
    and all-zero embeddings give finite values and gradients."""
    inputs = {
        "large_logits": (DATA["z1"], DATA["z2"]),
        "identical": (jnp.ones((N, D), jnp.float32),) * 2,
        "zeros": (jnp.zeros((N, D), jnp.float32),) * 2,
    }
    for block in (None, BLOCK) if name in BLOCK_STABILITY else (None,):
        for kind, (z1, z2) in inputs.items():
            v, g = _stability_fn(name, block)(z1, z2)
            assert np.isfinite(v), (name, kind, block)
            assert all(np.all(np.isfinite(x)) for x in g), (name, kind, block)


def test_bfloat16_inputs():
    """bf16 embeddings: float32 loss, bf16 gradients, close to the f32 loss;
    dense and blockwise agree on the same bf16 inputs."""
    z1, z2 = (DATA[k].astype(jnp.bfloat16) for k in ("z1", "z2"))
    ref = _dense("info_nce")[0]
    out = {}
    for block in (None, BLOCK):
        f = jax.value_and_grad(functools.partial(losses.info_nce, block_size=block),
                               argnums=(0, 1))
        v, (g1, g2) = jax.jit(f)(z1, z2)
        assert v.dtype == jnp.float32 and g1.dtype == jnp.bfloat16
        assert np.all(np.isfinite(np.asarray(g1, np.float32)))
        np.testing.assert_allclose(v, ref, rtol=2e-2)
        out[block] = v
    np.testing.assert_allclose(out[None], out[BLOCK], rtol=1e-3)


def test_jit_compiles_once():
    g = jax.jit(jax.grad(functools.partial(losses.hard_info_nce, block_size=BLOCK)))
    rng = np.random.default_rng(1)
    for _ in range(3):
        a, b = (jnp.asarray(rng.normal(size=(N, D)), jnp.float32) for _ in range(2))
        g(a, b).block_until_ready()
    assert g._cache_size() == 1


@pytest.mark.parametrize("n", [4096, 4095])
def test_blockwise_memory_has_no_n_by_d_temporaries(n):
    """The blockwise GRACE value_and_grad keeps only tiles and (N,) vectors:
    its compiled temp bytes stay below a single N x d float32 array (ragged N
    included: no padded copies)."""
    d, block = 128, 128
    spec = jax.ShapeDtypeStruct((n, d), jnp.float32)
    f = jax.value_and_grad(functools.partial(losses.info_nce, block_size=block), argnums=(0, 1))
    temp = jax.jit(f).lower(spec, spec).compile().memory_analysis().temp_size_in_bytes
    assert temp < n * d * 4, temp


def test_tile_size_reads_a_config_block_size(monkeypatch):
    """0 is the dense path, a positive side is kept, "auto" follows the backend, anything else
    is an error naming the key."""
    assert losses.tile_size(0) is None
    assert losses.tile_size(1024) == 1024
    assert losses.tile_size("auto") == 256  # the suite runs on the CPU
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert losses.tile_size("auto") == 4096
    for bad in (-1, 2.5, True, "big"):
        with pytest.raises(ValueError, match="model.block_size"):
            losses.tile_size(bad)
