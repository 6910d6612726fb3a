"""Encoders and readouts: every layer against a numpy evaluation of its formula, padding and
masking invariance, finite gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gcl_jax import graph as G
from gcl_jax import parallel
from gcl_jax import nn as gnn

KEY = jax.random.key(0, impl="rbg")  # rbg: parameter init compiles ~2x faster than threefry
EDGES = np.array([[0, 1, 1, 2, 0, 2, 2, 3], [1, 0, 2, 1, 2, 0, 3, 2]])  # undirected 0-1, 1-2, 0-2, 2-3


def small_graph(weights=None) -> G.GraphsTuple:
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0 - 0.4
    return G.from_edge_index(EDGES, node_features=x, edge_weights=weights)


def dense_adjacency(graph) -> np.ndarray:
    """A[s, r] = weight of s -> r."""
    a = np.zeros((G.num_nodes(graph),) * 2)
    np.add.at(a, (np.asarray(graph.senders), np.asarray(graph.receivers)), np.asarray(G.edge_weights(graph)))
    return a


def leaky(v, slope):
    return np.where(v >= 0, v, slope * v)


def jitted(module, *args, **kwargs):
    """``(variables, apply)`` with init and apply compiled once (far faster than op-by-op)."""
    variables = jax.jit(lambda *a: module.init(KEY, *a, **kwargs))(*args)
    return variables, jax.jit(lambda v, *a: module.apply(v, *a, **kwargs))


def apply_layer(layer, graph, **kwargs):
    variables, apply = jitted(layer, graph, jnp.asarray(graph.nodes), **kwargs)
    out = apply(variables, graph, jnp.asarray(graph.nodes))
    return np.asarray(out), jax.tree_util.tree_map(np.asarray, variables["params"])


# ---------------------------------------------------------------------------- layers vs formulas


@pytest.mark.parametrize("weights", [None, np.array([1.0, 1.0, 0.5, 0.5, 2.0, 2.0, 0.0, 0.0], np.float32)])
def test_gcn_equals_dense_formula(weights):
    graph = small_graph(weights)
    out, params = apply_layer(gnn.GCNConv(5), graph)
    a_hat = dense_adjacency(graph).T + np.eye(4)  # row = receiver
    d = a_hat.sum(1)
    expected = (a_hat / np.sqrt(d[:, None] * d[None, :])) @ np.asarray(graph.nodes) @ params["Dense_0"]["kernel"]
    np.testing.assert_allclose(out, expected + params["bias"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gathered", [False, True])
@pytest.mark.parametrize("heads, trailing", [((), ()), ((), (2, 3)), ((2,), (2, 3))])
def test_edge_sum_is_the_sparse_product_with_its_gradients(heads, trailing, gathered):
    """Both paths (CPU: CSR products; inside shard_map: gathered messages) against numpy, with one
    weight per edge or per edge and head: repeated edges add up, a node with no in-edge gets 0,
    masked edges carry nothing; values and gradients in ``x`` and in the weights."""
    rng = np.random.default_rng(0)
    senders = np.array([0, 1, 1, 2, 3, 3, 4, 0, 2], np.int32)
    receivers = np.array([1, 0, 2, 1, 2, 2, 0, 1, 2], np.int32)  # 0 -> 1 twice, 3 -> 2 twice, none into 3, 4
    weights = rng.uniform(0.5, 2.0, senders.shape + heads).astype(np.float32)
    weights[5] = 0.0
    x = rng.normal(size=(5,) + trailing).astype(np.float32)
    cotangent = rng.normal(size=x.shape).astype(np.float32)

    def forward(w, x):
        return gnn.edge_sum(senders, receivers, w, x)

    functions = [forward, jax.grad(lambda w, x: jnp.sum(forward(w, x) * cotangent), (0, 1))]
    if gathered:  # inside shard_map edge_sum takes the gather + segment_sum path (as on accelerators)
        mesh, spec = parallel.make_mesh(1), parallel.REPLICATED
        functions = [jax.shard_map(f, mesh=mesh, in_specs=spec, out_specs=spec) for f in functions]
    for f in functions:
        assert ("bcsr_dot_general" in str(jax.make_jaxpr(f)(weights, x))) != gathered
    out = np.asarray(jax.jit(functions[0])(weights, x))
    grad_w, grad_x = (np.asarray(g) for g in jax.jit(functions[1])(weights, x))
    columns = weights.reshape(len(senders), -1)
    per_head, per_head_cotangent = (v.reshape(5, columns.shape[1], -1) for v in (x, cotangent))
    for k in range(columns.shape[1]):
        a = np.zeros((5, 5))  # a[r, s]
        np.add.at(a, (receivers, senders), columns[:, k])
        xk, ck = per_head[:, k], per_head_cotangent[:, k]
        np.testing.assert_allclose(out.reshape(per_head.shape)[:, k], a @ xk, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grad_x.reshape(per_head.shape)[:, k], a.T @ ck, rtol=1e-5, atol=1e-6)
        expected_w = np.sum(ck[receivers] * xk[senders], axis=1)
        np.testing.assert_allclose(grad_w.reshape(columns.shape)[:, k], expected_w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("num_rows", [5, 2**30])  # packed 32-bit keys; too many rows to pack: argsort
def test_csr_sort_order_is_the_stable_argsort(num_rows):
    rows = np.random.default_rng(1).integers(0, 5, 1000).astype(np.int32)
    order = jax.jit(gnn.ops._sort_order, static_argnums=1)(rows, num_rows)
    np.testing.assert_array_equal(np.asarray(order), np.argsort(rows, kind="stable"))


def numpy_gat(x, senders, receivers, mask, p, heads, width, concat, edge_features=None):
    """GAT by loops: logits per (edge, head), softmax over each receiver's present in-edges + self."""
    n = x.shape[0]
    h = (x @ p["Dense_0"]["kernel"]).reshape(n, heads, width)
    a_s, a_d = p["att_src"].reshape(heads, width), p["att_dst"].reshape(heads, width)
    edges = [(s, r, e) for e, (s, r, m) in enumerate(zip(senders, receivers, mask)) if m and s != r]
    out = np.zeros((n, heads, width))
    for i in range(n):
        incoming = [(s, e) for s, r, e in edges if r == i]
        if edge_features is not None:
            loop_feature = np.mean([edge_features[e] for _, e in incoming], axis=0)
        for k in range(heads):
            logits, sources = [], []
            for s, e in incoming + [(i, None)]:
                logit = h[s, k] @ a_s[k] + h[i, k] @ a_d[k]
                if edge_features is not None:
                    f = edge_features[e] if e is not None else loop_feature
                    he = (f @ p["edge_proj"]["kernel"]).reshape(heads, width)
                    logit += he[k] @ p["att_edge"].reshape(heads, width)[k]
                logits.append(leaky(logit, 0.2))
                sources.append(s)
            alpha = np.exp(np.array(logits) - max(logits))
            alpha /= alpha.sum()
            out[i, k] = sum(w * h[s, k] for w, s in zip(alpha, sources))
    out = out.reshape(n, heads * width) if concat else out.mean(1)
    return out + p["bias"]


@pytest.mark.parametrize("concat", [True, False])
def test_gat_matches_numpy_attention(concat):
    graph = small_graph(np.array([1, 1, 1, 1, 1, 1, 0, 1], np.float32))  # 2->3 masked
    out, params = apply_layer(gnn.GATConv(4, heads=2, concat=concat), graph)
    present = np.asarray(graph.edges) != 0
    expected = numpy_gat(np.asarray(graph.nodes), EDGES[0], EDGES[1], present, params, 2, 4, concat)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_gat_with_edge_features():
    graph = small_graph()
    features = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
    out, params = apply_layer(gnn.GATConv(3, heads=2), graph, edge_features=features)
    expected = numpy_gat(np.asarray(graph.nodes), EDGES[0], EDGES[1], np.ones(8, bool), params, 2, 3, True, features)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_gat_xavier_normal_relu_draws_with_torch_fans():
    """GraphMAE's init: std sqrt(2) * sqrt(2 / (fan_in + fan_out)), torch's fans: (in, out) for the
    kernel, (heads * width, width) for an attention vector of shape (1, heads, width)."""
    graph = small_graph()._replace(nodes=np.zeros((4, 600), np.float32))
    params = gnn.GATConv(100, heads=4, initializer="xavier_normal_relu").init(KEY, graph, graph.nodes)["params"]
    expected = {"kernel": 2.0 / np.sqrt(600 + 400), "att": 2.0 / np.sqrt(4 * 100 + 100)}
    np.testing.assert_allclose(np.asarray(params["Dense_0"]["kernel"]).std(), expected["kernel"], rtol=0.02)
    attention = np.concatenate([np.asarray(params[k]).ravel() for k in ("att_src", "att_dst")])
    np.testing.assert_allclose(attention.std(), expected["att"], rtol=0.1)
    with pytest.raises(ValueError, match="initializer"):
        gnn.GATConv(2, initializer="he").init(KEY, graph, graph.nodes)


def numpy_mlp(x, p, names, final_act=False):
    for i, name in enumerate(names):
        x = x @ p[name]["kernel"] + p[name]["bias"]
        if i < len(names) - 1 or final_act:
            x = np.maximum(x, 0)
    return x


@pytest.mark.parametrize("learn_eps", [False, True])
def test_gin_matches_formula(learn_eps):
    graph = small_graph(np.array([1, 1, 0.5, 0.5, 1, 1, 0, 0], np.float32))
    layer = gnn.GINConv(5, learn_eps=learn_eps, eps=0.3)
    out, params = apply_layer(layer, graph)
    x = np.asarray(graph.nodes)
    eps = params["eps"] if learn_eps else 0.3
    h = (1 + eps) * x + dense_adjacency(graph).T @ x
    np.testing.assert_allclose(out, numpy_mlp(h, params["MLP_0"], ["Dense_0", "Dense_1"]), rtol=1e-5, atol=1e-6)


def test_sage_mean_matches_formula():
    graph = small_graph(np.array([1, 1, 1, 1, 1, 1, 1, 0], np.float32))  # 3->2 masked: node 3 keeps 2
    out, params = apply_layer(gnn.SAGEConv(5), graph)
    x, a = np.asarray(graph.nodes), dense_adjacency(graph).T
    mean = (a @ x) / np.maximum(a.sum(1, keepdims=True), 1)
    expected = x @ params["root"]["kernel"] + params["root"]["bias"] + mean @ params["neighbors"]["kernel"]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_mlp_matches_formula():
    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    variables, apply = jitted(gnn.MLP((6, 2)), x)
    params = jax.tree_util.tree_map(np.asarray, variables["params"])
    np.testing.assert_allclose(apply(variables, x), numpy_mlp(x, params, ["Dense_0", "Dense_1"]), rtol=1e-5, atol=1e-6)


def test_shortcut_mlp_matches_formula():
    """``MLP(x)`` with ReLU after every layer, plus ``Dense(x)`` (InfoGraph's FF, MVGRL's heads)."""
    x = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    variables, apply = jitted(gnn.ShortcutMLP(4, "relu", depth=2), x)
    p = jax.tree_util.tree_map(np.asarray, variables["params"])
    expected = numpy_mlp(x, p["block"], ["Dense_0", "Dense_1"], final_act=True) + numpy_mlp(x, p, ["shortcut"])
    np.testing.assert_allclose(apply(variables, x), expected, rtol=1e-5, atol=1e-6)


def test_mlp_torch_initializer_draws_kernel_and_bias_within_torch_linear_bound():
    """torch.nn.Linear's default: kernel and bias uniform in +-1/sqrt(fan_in) (GRACE's head); HeCo's
    re-draws only the kernel, Xavier-normal with gain 1.414."""
    x = np.zeros((2, 400), np.float32)
    params = gnn.MLP((300, 200), initializer="torch").init(KEY, x)["params"]
    for name, fan_in in (("Dense_0", 400), ("Dense_1", 300)):
        for leaf in ("kernel", "bias"):
            values = np.asarray(params[name][leaf])
            assert np.abs(values).max() <= fan_in ** -0.5
            assert np.abs(values).max() > 0.9 * fan_in ** -0.5  # spread over the whole range
    glorot_bias = np.asarray(gnn.MLP((300, 5)).init(KEY, x)["params"]["Dense_0"]["bias"])
    assert not glorot_bias.any()
    heco = gnn.MLP((300,), initializer="heco").init(KEY, x)["params"]["Dense_0"]  # xavier_normal_(gain=1.414)
    np.testing.assert_allclose(np.asarray(heco["kernel"]).std(), 1.414 * np.sqrt(2 / (400 + 300)), rtol=0.02)
    assert 0.9 * 400 ** -0.5 < np.abs(np.asarray(heco["bias"])).max() <= 400 ** -0.5  # torch's bias, untouched
    with pytest.raises(ValueError, match="initializer"):
        gnn.MLP((3,), initializer="he").init(KEY, x)


# ---------------------------------------------------------------------------- encoder


def random_graph(seed, n=9, e=20, f=4):
    """Undirected random graph built in numpy (both directions, no duplicates or self-loops)."""
    rng = np.random.default_rng(seed)
    pairs = {(min(a, b), max(a, b)) for a, b in rng.integers(0, n, (e // 2, 2)) if a != b}
    edges = np.array(sorted(pairs) + sorted((b, a) for a, b in pairs)).T
    return G.from_edge_index(edges, n, rng.normal(size=(n, f)).astype(np.float32))


@pytest.mark.parametrize("layer", ["gcn", "gat", "gin", "sage", "mlp"])
def test_padded_equals_unpadded_and_gradients_finite(layer):
    graph = random_graph(3)
    padded = G.pad(graph, 16, 64)
    encoder = gnn.GraphEncoder(layer=layer, widths=(8, 6), norm="batch", activation="prelu", heads=2, residual=True)

    @jax.jit
    def check(graph, padded):  # one compilation for init, both forwards and the gradient
        variables = encoder.init(KEY, graph, train=False)

        def run(params, g, padded_graph):
            mask = G.real_node_mask(g, padded_graph)
            variables_p = {**variables, "params": params}
            out, _ = encoder.apply(variables_p, g, train=True, node_mask=mask, mutable=["batch_stats"])
            return out

        loss = lambda p: jnp.sum(run(p, padded, True)[:9] ** 2)  # noqa: E731
        params = variables["params"]
        return run(params, graph, False), run(params, padded, True), jax.grad(loss)(params)

    plain, pad_out, grads = check(graph, padded)
    np.testing.assert_allclose(np.asarray(pad_out)[:9], np.asarray(plain), rtol=1e-4, atol=1e-5)
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree_util.tree_leaves(grads))


@pytest.mark.parametrize("layer", ["gcn", "gat", "gin", "sage"])
def test_masked_edge_equals_removed_edge(layer):
    graph = small_graph(np.array([1, 1, 1, 1, 0, 1, 1, 1], np.float32))
    removed = G.drop_masked_edges(graph)
    variables, apply = jitted(gnn.GraphEncoder(layer=layer, widths=(5,), heads=1), graph, train=False)
    np.testing.assert_allclose(apply(variables, graph), apply(variables, removed), rtol=1e-5, atol=1e-6)


def test_batch_norm_statistics_ignore_padding_nodes():
    graph = random_graph(4)
    padded = G.pad(jax.tree_util.tree_map(np.asarray, graph), 16, 64)
    padded = padded._replace(nodes=jnp.asarray(padded.nodes).at[9:].set(100.0))
    encoder = gnn.GraphEncoder(layer="mlp", widths=(3,), norm="batch", activation="identity")
    variables, _ = jitted(encoder, graph, train=False)
    _, state = jax.jit(lambda v, g: encoder.apply(v, g, train=True, node_mask=G.real_node_mask(g, True),
                                                  mutable=["batch_stats"]))(variables, padded)
    kernel, bias = (variables["params"]["mlp_0"][k] for k in ("kernel", "bias"))
    real_mean = (np.asarray(graph.nodes) @ kernel + bias).mean(0)
    running_mean = state["batch_stats"]["norm_0"]["BatchNorm_0"]["mean"]
    np.testing.assert_allclose(running_mean, 0.1 * real_mean, rtol=1e-4, atol=1e-6)


def batch_norm_variables(features: int) -> dict:
    """A ``Norm("batch")``'s variables (flax's ``BatchNorm`` tree) with a random scale and bias and
    non-trivial running statistics, so a test sees each of them used."""
    rng = np.random.default_rng(1)
    init = gnn.Norm("batch").init(KEY, jnp.zeros((2, features)))
    values = {"params": {"scale": 1.0 + rng.random(features), "bias": rng.normal(size=features)},
              "batch_stats": {"mean": rng.normal(size=features), "var": 1.0 + rng.random(features)}}
    assert jax.tree_util.tree_structure(init) == jax.tree_util.tree_structure({k: {"BatchNorm_0": v} for k, v in values.items()})
    return {k: {"BatchNorm_0": {n: jnp.asarray(a, jnp.float32) for n, a in v.items()}} for k, v in values.items()}


def test_norm_with_axis_name_takes_batch_statistics_over_all_devices():
    """Rows split unevenly over 8 devices (masks keep 0..8 of 8 rows each): the output and the
    running statistics equal numpy's over all kept rows together, in flax's variable tree."""
    from jax.sharding import PartitionSpec as P

    from gcl_jax import parallel

    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (8, 8, 5)).astype(np.float32)
    mask = np.arange(8)[None, :] < np.array([0, 1, 2, 3, 5, 6, 7, 8])[:, None]
    variables = batch_norm_variables(5)
    norm = gnn.Norm("batch", axis_name="data")

    def local(v, m):
        y, updates = norm.apply(variables, v[0], train=True, node_mask=m[0], mutable=["batch_stats"])
        return y[None], updates["batch_stats"]

    f = jax.jit(jax.shard_map(local, mesh=parallel.make_mesh(8), in_specs=(P("data"), P("data")),
                              out_specs=(P("data"), P())))
    y, stats = f(x, mask)
    kept = x[mask].astype(np.float64)
    mean, var = kept.mean(0), kept.var(0)
    params, old = variables["params"]["BatchNorm_0"], variables["batch_stats"]["BatchNorm_0"]
    expected = (kept - mean) / np.sqrt(var + 1e-5) * np.asarray(params["scale"]) + np.asarray(params["bias"])
    np.testing.assert_allclose(np.asarray(y)[mask], expected, rtol=1e-4, atol=1e-4)
    assert jax.tree_util.tree_structure(stats) == jax.tree_util.tree_structure(variables["batch_stats"])
    np.testing.assert_allclose(stats["BatchNorm_0"]["mean"], 0.9 * np.asarray(old["mean"]) + 0.1 * mean, rtol=1e-4)
    np.testing.assert_allclose(stats["BatchNorm_0"]["var"], 0.9 * np.asarray(old["var"]) + 0.1 * var, rtol=1e-4)
    # evaluation mode uses the running averages, on any layout and without a mesh
    running = np.asarray(norm.apply(variables, jnp.asarray(x[0]), train=False))
    np.testing.assert_allclose(running, (x[0] - old["mean"]) / np.sqrt(old["var"] + 1e-5) * params["scale"] + params["bias"],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("train", [True, False])
def test_norm_without_axis_name_is_flax_batch_norm_bit_for_bit(train):
    import flax.linen as nn

    x = jnp.asarray(np.random.default_rng(2).normal(1.0, 2.0, (9, 4)), jnp.float32)
    keep = jnp.arange(9) < 6
    variables = batch_norm_variables(4)
    ours, our_stats = gnn.Norm("batch").apply(variables, x, train=train, node_mask=keep, mutable=["batch_stats"])
    flax_norm = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)
    theirs, their_stats = flax_norm.apply({k: v["BatchNorm_0"] for k, v in variables.items()}, x,
                                          mask=jnp.broadcast_to(keep[:, None], x.shape), mutable=["batch_stats"])
    np.testing.assert_array_equal(ours, theirs)
    for name in ("mean", "var"):
        np.testing.assert_array_equal(our_stats["batch_stats"]["BatchNorm_0"][name], their_stats["batch_stats"][name])


def test_encoder_options_shapes_and_dropout_rng():
    graph = random_graph(5)
    encoder = gnn.GraphEncoder(layer="gin", widths=(8, 4), concat_layers=True, dropout=0.5, norm="layer",
                               norm_after_activation=True)
    variables, apply = jitted(encoder, graph, train=False)
    assert apply(variables, graph).shape == (9, 12)
    train = jax.jit(lambda v, g, k: encoder.apply(v, g, train=True, rngs={"dropout": k}))
    assert not np.allclose(train(variables, graph, jax.random.key(1)), train(variables, graph, jax.random.key(2)))
    with pytest.raises(ValueError, match="edge_features"):
        encoder.apply(variables, graph, train=False, edge_features=jnp.ones((graph.senders.shape[0], 2)))


def test_rrelu_random_slope_in_training_mean_slope_in_eval():
    act = gnn.Activation("rrelu")
    x = -jnp.ones((2000,))
    train = np.asarray(act.apply({}, x, train=True, rngs={"dropout": KEY}))
    assert (-train >= 1 / 8).all() and (-train <= 1 / 3).all() and train.std() > 0.03
    np.testing.assert_allclose(act.apply({}, x, train=False), -(1 / 8 + 1 / 3) / 2, rtol=1e-6)
    prelu = gnn.Activation("prelu")
    np.testing.assert_allclose(prelu.apply(prelu.init(KEY, x), x), -0.25)


# ---------------------------------------------------------------------------- readouts


def batched_padded():
    graphs = [random_graph(6, n=4, e=6), random_graph(7, n=3, e=4)]
    return G.pad(G.batch([jax.tree_util.tree_map(np.asarray, g) for g in graphs]), 10, 48, 3)


@pytest.mark.parametrize("kind,reduce", [("sum", np.sum), ("mean", np.mean), ("max", np.max)])
def test_readouts_ignore_padding_and_dropped_nodes(kind, reduce):
    batch = batched_padded()
    h = jax.random.normal(KEY, (10, 5))
    out = np.asarray(jax.jit(gnn.readout, static_argnums=2)(batch, h, kind))
    np.testing.assert_allclose(out[0], reduce(np.asarray(h)[:4], 0), rtol=1e-5)
    np.testing.assert_allclose(out[1], reduce(np.asarray(h)[4:7], 0), rtol=1e-5)
    assert not out[2].any()
    keep = jnp.array([True, False] + [True] * 8)
    dropped = np.asarray(jax.jit(lambda g, x, m: gnn.readout(g, x, kind, node_mask=m))(batch, h, keep))
    np.testing.assert_allclose(dropped[0], reduce(np.asarray(h)[[0, 2, 3]], 0), rtol=1e-5)


def test_attention_readout_is_a_convex_combination_per_graph():
    batch = batched_padded()
    h = jax.random.normal(KEY, (10, 5))
    module = gnn.AttentionReadout()
    variables, apply = jitted(module, batch, h)
    out = np.asarray(apply(variables, batch, h))
    p = jax.tree_util.tree_map(np.asarray, variables["params"]["gate"])
    gate = np.asarray(h) @ p["kernel"][:, 0] + p["bias"][0]
    for g, rows in enumerate([slice(0, 4), slice(4, 7)]):
        w = np.exp(gate[rows] - gate[rows].max())
        np.testing.assert_allclose(out[g], (w / w.sum()) @ np.asarray(h)[rows], rtol=1e-5, atol=1e-6)
    assert not out[2].any()
    grads = jax.jit(jax.grad(lambda v, g: module.apply(v, g, h).sum()))(variables, batch)
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree_util.tree_leaves(grads))


def test_pairwise_tanh_sum_matches_dense_values_and_gradients():
    rng = np.random.default_rng(11)
    rows, cols, weights = (jnp.asarray(rng.normal(size=shape), jnp.float32) for shape in ((5, 7), (5, 9), (5,)))
    cotangent = jnp.asarray(rng.normal(size=(7, 9)), jnp.float32)

    def dense(r, c, w):  # the [N, M, H] form, differentiated by autodiff
        return jnp.tanh(r.T[:, None, :] + c.T[None, :, :]) @ w

    got, got_vjp = jax.vjp(jax.jit(gnn.pairwise_tanh_sum), rows, cols, weights)
    want, want_vjp = jax.vjp(dense, rows, cols, weights)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
    for g, w in zip(got_vjp(cotangent), want_vjp(cotangent)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-5)
