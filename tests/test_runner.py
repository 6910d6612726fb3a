"""The runner: run folder contents, resume through the CLI, graph-level batching, config errors."""

import json

import numpy as np
import pytest

from gcl_jax import cli, data, runner
from gcl_jax import graph as G


def test_grace_cora_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "grace", "cora", "--set", "epochs=6", "--set", "model.hidden=32",
                     "--set", "model.proj_hidden=32", "--out", str(out), "--quiet"]) == 0
    assert "grace on cora: test accuracy" in capsys.readouterr().out
    record = json.loads((out / "results.json").read_text())
    assert {"method", "dataset", "metric", "test_mean", "test_std", "seconds"} <= set(record)
    assert record["method"] == "grace" and record["protocol"] == "planetoid" and 0.0 < record["test_mean"] <= 1.0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 6
    assert (out / "checkpoints" / "6").is_dir()
    assert "hidden = 32" in (out / "config.toml").read_text()
    assert "best_epoch" not in record  # no early stopping unless a config sets patience
    for png in ("loss.png", "embeddings.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    # resuming a finished run trains no further step and gives the same score
    again = runner.run("grace", "cora", overrides=["epochs=6", "model.hidden=32", "model.proj_hidden=32"],
                       out=out, resume=True, progress=False, plot=False)
    assert again["test_mean"] == record["test_mean"]
    last_row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert again["train_seconds"] == record["train_seconds"] == round(last_row["time"], 2)  # the earlier run's clock


def test_epoch_batches_cover_every_graph_once_with_one_shape():
    mutag = data.load("mutag")
    batches = runner.EpochBatches(mutag, batch_size=32, seed=0)
    assert batches.steps_per_epoch == 6
    epoch = [batches(t) for t in range(6)]
    assert len({(b.nodes.shape, b.senders.shape, b.n_node.shape) for b in epoch}) == 1
    real = [np.asarray(b.n_node)[np.asarray(G.graph_mask(b))] for b in epoch]
    assert sum(len(r) for r in real) == 188 and sum(int(r.sum()) for r in real) == 3371  # every graph once
    again = runner.EpochBatches(mutag, batch_size=32, seed=0)
    np.testing.assert_array_equal(again(7).nodes, batches(7).nodes)  # epoch 1 is reproducible
    assert not np.array_equal(batches(6).n_node, epoch[0].n_node)  # and reshuffled


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "nosuchmethod", "cora"], "unknown method 'nosuchmethod'"),
        (["train", "grace", "cora", "--set", "epoch=3"], "unknown key 'epoch'"),
    ],
)
def test_train_user_errors(args, message, capsys):
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err


def test_devices_refused_for_methods_that_do_not_shard(tmp_path, capsys):
    assert cli.main(["train", "scgc", "cora", "--devices", "2", "--out", str(tmp_path), "--quiet"]) == 2
    assert "does not shard its loss" in capsys.readouterr().err


def test_graph_batch_not_divisible_by_devices_is_refused(tmp_path, capsys):
    args = ["train", "graphcl", "mutag", "--devices", "8", "--set", "batch_size=30", "--out", str(tmp_path), "--quiet"]
    assert cli.main(args) == 2
    assert "batch_size: 30 graphs do not split evenly over --devices 8" in capsys.readouterr().err


def test_grace_trains_on_eight_devices_through_the_runner(tmp_path):
    """With patience on, the best weights are tracked (and checkpointed) as global arrays on the mesh."""
    record = runner.run("grace", "cora", overrides=["epochs=3", "model.hidden=16", "model.proj_hidden=16", "patience=5"],
                        out=tmp_path, devices=8, progress=False, plot=False)
    assert record["devices"] == 8 and 0.0 < record["test_mean"] <= 1.0
    assert record["epochs_run"] == 3 and 0 <= record["best_epoch"] <= 2


def test_clustering_protocol_scores_separated_embeddings():
    """k-means on two far-apart blobs recovers the labels exactly (ACC, NMI, ARI all 1)."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    embeddings = rng.normal(size=(100, 4)) * 0.1 + labels[:, None] * 10.0
    dataset = data.NodeDataset("blobs", G.from_edge_index(np.zeros((2, 0), np.int64), 100), labels, 2, {})
    result = runner.evaluate({"protocol": "clustering", "n_init": 2}, embeddings, dataset, seed=3)
    assert result.metric == "clustering_acc" and result.test_mean == 1.0
    assert result.extra["nmi"] == (1.0,) and result.extra["ari"] == (1.0,)


def test_unknown_protocol_names_the_choices():
    with pytest.raises(ValueError, match=r"expected one of planetoid, random, grace, svm, .*clustering.*, got 'nope'"):
        runner.evaluate({"protocol": "nope"}, np.zeros((2, 2)), None, seed=0)
