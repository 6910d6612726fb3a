"""Trainer: checkpoints, exact resume after SIGKILL, non-finite loss, metrics, optimizer pieces."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from gcl_jax import train

SCRIPT = Path(__file__).parent / "scripts" / "train_toy.py"
sys.path.insert(0, str(SCRIPT.parent))
from train_toy import batch_fn, toy_method  # noqa: E402


def run_toy(out: Path, steps: int, *extra: str, sleep: float = 0.0, wait: bool = True):
    env = dict(os.environ, TOY_STEP_SLEEP=str(sleep))
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(out), str(steps), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    if wait:
        stdout, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr[-2000:]
        return stdout
    return process


def logged_steps(out: Path) -> int:
    path = out / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    steps = 30
    reference = tmp_path / "reference"
    run_toy(reference, steps)

    interrupted = tmp_path / "interrupted"
    process = run_toy(interrupted, steps, sleep=0.15, wait=False)
    deadline = time.time() + 200
    while logged_steps(interrupted) < 11 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    killed_at = logged_steps(interrupted)
    assert killed_at < steps
    saved = sorted(int(p.name) for p in (interrupted / "checkpoints").iterdir() if p.name.isdigit())
    assert saved and max(saved) <= killed_at

    stdout = run_toy(interrupted, steps, "--resume")
    np.testing.assert_array_equal(np.load(interrupted / "final.npy"), np.load(reference / "final.npy"))
    assert "calls 30" in stdout  # the method's own state was restored too
    records = [json.loads(line) for line in (interrupted / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == steps and {"loss", "lr", "time", "norm"} <= set(records[-1])
    # the rows logged after the last checkpoint were dropped, not repeated; the clock carried on
    assert [r["step"] for r in records] == list(range(1, steps + 1))
    reference_rows = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in records] == [r["loss"] for r in reference_rows]
    times = [r["time"] for r in records]
    assert times == sorted(times)


def test_resume_drops_metrics_rows_past_the_checkpoint_and_a_cut_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": t, "loss": 1.0 / t, "time": 0.5 * t} for t in range(1, 6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 6, "lo')
    assert train.keep_metrics_up_to(path, 3) == 1.5
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 6, "lo')
    assert train.keep_metrics_up_to(path, 10) == 2.5  # the cut line goes, every whole row stays
    assert train.keep_metrics_up_to(tmp_path / "absent.jsonl", 0) == 0.0


def test_checkpoints_keep_last_n_plus_best(tmp_path):
    optimizer, _ = train.make_optimizer(1e-2, 20)
    train.fit(toy_method(), optimizer, batch_fn, 20, out_dir=tmp_path, checkpoint_every=2, keep=2, progress=False)
    saved = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert saved[-2:] == [18, 20]
    assert len(saved) <= 3
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        train.fit(toy_method(), optimizer, batch_fn, 20, out_dir=tmp_path, progress=False)


def test_non_finite_loss_names_step_and_keeps_checkpoint(tmp_path):
    method = toy_method()

    def exploding(params, state, key, batch):
        value, aux = method.loss(params, state, key, batch)
        return jnp.where(state["calls"] >= 7, jnp.nan, value), aux

    optimizer, _ = train.make_optimizer(1e-2, 20)
    with pytest.raises(train.NonFiniteLoss, match="at step 7; last good checkpoint: step 6"):
        train.fit(method._replace(loss=exploding), optimizer, batch_fn, 20, out_dir=tmp_path, checkpoint_every=3, progress=False)
    assert (tmp_path / "checkpoints" / "6").is_dir()


def test_schedules_and_ema():
    _, lr = train.make_optimizer(1.0, 100, schedule="cosine", warmup_steps=10)
    assert float(lr(0)) == 0.0 and float(lr(10)) == pytest.approx(1.0) and float(lr(100)) == pytest.approx(0.0)
    assert float(lr(55)) == pytest.approx(0.5, abs=1e-6)
    assert float(train.cosine_decay_rate(0, 100, 0.99)) == pytest.approx(0.99)
    assert float(train.cosine_decay_rate(100, 100, 0.99)) == pytest.approx(1.0)
    target = train.ema_update({"a": jnp.ones(2)}, {"a": jnp.zeros(2)}, 0.9)
    np.testing.assert_allclose(target["a"], 0.1)
    with pytest.raises(ValueError, match="schedule"):
        train.make_optimizer(1.0, 10, schedule="linear")


def test_coupled_weight_decay_is_l2_added_to_gradient():
    """PyTorch Adam(weight_decay=wd) == plain Adam on grad + wd * param; decoupled == AdamW."""
    import optax

    coupled, _ = train.make_optimizer(0.1, 10, weight_decay=0.5)
    plain = optax.adam(0.1)
    p_coupled = p_plain = {"w": jnp.array([2.0, -1.0])}
    s_coupled, s_plain = coupled.init(p_coupled), plain.init(p_plain)
    for g in ([0.3, 0.1], [-0.2, 0.4], [0.05, -0.3]):
        grads = {"w": jnp.array(g)}
        u, s_coupled = coupled.update(grads, s_coupled, p_coupled)
        p_coupled = optax.apply_updates(p_coupled, u)
        u, s_plain = plain.update({"w": grads["w"] + 0.5 * p_plain["w"]}, s_plain, p_plain)
        p_plain = optax.apply_updates(p_plain, u)
    np.testing.assert_allclose(p_coupled["w"], p_plain["w"], rtol=1e-6)
    decoupled, _ = train.make_optimizer(0.1, 10, weight_decay=0.5, decoupled=True)
    params, grads = {"w": jnp.array([2.0])}, {"w": jnp.array([0.3])}
    got, _ = decoupled.update(grads, decoupled.init(params), params)
    np.testing.assert_allclose(got["w"], -0.1 * (1.0 + 0.5 * 2.0), rtol=1e-4)  # first AdamW step: -lr (sign(g) + wd p)


def test_best_checkpoint_by_loss_survives_beside_latest(tmp_path):
    method = toy_method()

    def valley(params, state, key, batch):
        _, aux = method.loss(params, state, key, batch)
        return (state["calls"] - 3.0) ** 2 + 0.0 * jnp.sum(params["w"]), aux  # lowest at step 3

    optimizer, _ = train.make_optimizer(1e-2, 12)
    train.fit(method._replace(loss=valley), optimizer, batch_fn, 12, out_dir=tmp_path, checkpoint_every=1, keep=1, progress=False)
    saved = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert saved == [4, 12]  # the checkpoint written after step 3 (loss 0) and the newest


def valley_method(bottom_epoch: int, steps_per_epoch: int) -> train.Method:
    """The toy method with a loss that falls until epoch ``bottom_epoch`` and rises after it."""
    method = toy_method()

    def loss(params, state, key, batch):
        value, aux = method.loss(params, state, key, batch)
        epoch = state["calls"] // steps_per_epoch
        return 0.01 * value + (epoch - bottom_epoch) ** 2, aux

    return method._replace(loss=loss)


def test_patience_stops_and_keeps_the_lowest_loss_epochs_weights(tmp_path):
    """DGI's rule: with patience 2 and the lowest epoch loss at epoch 3, training stops after epoch 5;
    the kept weights are those at the end of epoch 3, i.e. after 4 epochs (8 steps)."""
    optimizer, _ = train.make_optimizer(1e-2, 100)
    method = valley_method(bottom_epoch=3, steps_per_epoch=2)
    final = train.fit(method, optimizer, batch_fn, 100, out_dir=tmp_path / "run", checkpoint_every=3,
                      progress=False, steps_per_epoch=2, patience=2)
    assert int(final.step) == 12 and int(final.best.epoch) == 3
    after_eight = train.fit(method, optimizer, batch_fn, 8, progress=False)
    np.testing.assert_array_equal(train.best_weights(final).params["w"], after_eight.params["w"])
    assert int(train.best_weights(final).state["calls"]) == 8
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 12
    saved = sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit())
    assert 12 in saved and all(step % 2 == 0 for step in saved)  # checkpoints only at epoch ends
    # resuming the stopped run trains nothing more and keeps the same best weights
    again = train.fit(method, optimizer, batch_fn, 100, out_dir=tmp_path / "run", resume=True, progress=False,
                      steps_per_epoch=2, patience=2)
    assert int(again.step) == 12
    np.testing.assert_array_equal(again.best.params["w"], final.best.params["w"])
    without = train.fit(method, optimizer, batch_fn, 4, progress=False)  # no patience: nothing tracked
    assert without.best is None and train.best_weights(without) is without


def test_patience_state_survives_a_resume(tmp_path):
    """A run stopped at step 8 and resumed ends where an uninterrupted run ends, best weights included."""
    optimizer, _ = train.make_optimizer(1e-2, 100)
    method = valley_method(bottom_epoch=5, steps_per_epoch=2)
    whole = train.fit(method, optimizer, batch_fn, 100, progress=False, steps_per_epoch=2, patience=3)
    train.fit(method, optimizer, batch_fn, 8, out_dir=tmp_path, checkpoint_every=4, progress=False,
              steps_per_epoch=2, patience=3)
    resumed = train.fit(method, optimizer, batch_fn, 100, out_dir=tmp_path, checkpoint_every=4, resume=True,
                        progress=False, steps_per_epoch=2, patience=3)
    assert int(whole.step) == int(resumed.step) == 18 and int(resumed.best.epoch) == 5
    np.testing.assert_array_equal(resumed.params["w"], whole.params["w"])
    np.testing.assert_array_equal(resumed.best.params["w"], whole.best.params["w"])
    assert float(resumed.best.loss) == float(whole.best.loss)
