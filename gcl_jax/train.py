"""Training: a method as pure functions, a jit-compiled step on optax, orbax checkpoints, metrics.

A :class:`Method` is a NamedTuple of pure functions (the optax shape): no hidden state, so the
whole run state is one pytree (:class:`TrainState`) that orbax saves and restores as it is.
``state`` holds what a method keeps but does not train (batch-norm statistics, a BGRL target
network); ``params`` is what the optimizer updates.

Resuming is exact: the batch of step ``t`` is ``batch_fn(t)`` and the step's key is
``fold_in(run_key, t)``, so a resumed run replays precisely what an uninterrupted one would.

Early stopping (``patience``) is the rule of DGI's, MVGRL's and HeCo's official scripts: stop once
``patience`` epochs pass without a new lowest epoch loss, and evaluate the weights saved at the end
of the lowest-loss epoch (:func:`best_weights`; MVGRL saves them after the epoch's optimizer step,
DGI and HeCo one step earlier). Those weights travel in the checkpoint (:class:`BestLoss`).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from gcl_jax import parallel
from gcl_jax.data.safeio import atomic_write_text

Params = Any
Batch = Any


class Method(NamedTuple):
    """A self-supervised method: every field a pure function.

    - ``init(key, batch) -> (params, state)``
    - ``loss(params, state, key, batch) -> (loss, (state, metrics))``: ``metrics`` a dict of scalars
    - ``embed(params, state, batch) -> embeddings`` (frozen, for evaluation)
    - ``update_state(params, state, step) -> state``: after each optimizer step (EMA targets);
      ``None`` when the method has nothing to update.
    """

    init: Callable
    loss: Callable
    embed: Callable
    update_state: Callable | None = None


class BestLoss(NamedTuple):
    """Early stopping's memory: the lowest epoch loss so far, its epoch (0-based; -1 before the
    first), and the parameters and method state at the end of that epoch."""

    loss: jax.Array
    epoch: jax.Array
    params: Params
    state: Any


class TrainState(NamedTuple):
    """Everything a run needs to continue: a pytree, checkpointed whole. ``best`` is tracked only
    when training with ``patience``; the train step itself never sees it."""

    step: jax.Array
    params: Params
    state: Any
    opt_state: Any
    key: jax.Array
    best: BestLoss | None = None


class NonFiniteLoss(RuntimeError):
    """Raised when a step produced a NaN or infinite loss; the last good checkpoint is kept."""


# ----------------------------------------------------------------------------- optimizer


def make_optimizer(
    learning_rate: float,
    total_steps: int,
    *,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    schedule: str = "constant",
    decoupled: bool = False,
    clip_norm: float | None = None,
) -> tuple[optax.GradientTransformation, Callable[[int], float]]:
    """Adam with weight decay, an optional warm-up + cosine schedule, and gradient clipping.

    ``weight_decay`` is PyTorch ``Adam(weight_decay=...)``'s L2 term added to the gradient (what
    GRACE, DGI, GCA use) unless ``decoupled``, which gives AdamW (BGRL).

    Returns the transformation and the schedule, so the trainer can log the learning rate.
    ``schedule="cosine"`` is BGRL's: linear warm-up, then cosine decay to 0 at ``total_steps``.
    """
    if schedule == "constant":
        lr = optax.constant_schedule(learning_rate) if not warmup_steps else optax.join_schedules(
            [optax.linear_schedule(0.0, learning_rate, warmup_steps), optax.constant_schedule(learning_rate)],
            [warmup_steps],
        )
    elif schedule == "cosine":
        lr = optax.warmup_cosine_decay_schedule(0.0, learning_rate, max(warmup_steps, 0), max(total_steps, warmup_steps + 1), 0.0)
    else:
        raise ValueError(f"schedule: expected 'constant' or 'cosine', got {schedule!r}")
    parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm else []
    if decoupled:
        parts.append(optax.adamw(lr, weight_decay=weight_decay))
    else:
        parts += [optax.add_decayed_weights(weight_decay)] if weight_decay else []
        parts.append(optax.adam(lr))
    return optax.chain(*parts), lr


def ema_update(online: Params, target: Params, decay: float) -> Params:
    """Exponential moving average ``target <- decay * target + (1 - decay) * online`` (BGRL, BYOL)."""
    return jax.tree_util.tree_map(lambda o, t: decay * t + (1.0 - decay) * o, online, target)


def cosine_decay_rate(step, total_steps: int, base: float) -> jax.Array:
    """BGRL's EMA decay schedule: ``1 - (1 - base) * (cos(pi * step / total) + 1) / 2``."""
    progress = jnp.minimum(step / max(total_steps, 1), 1.0)
    return 1.0 - (1.0 - base) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0


# ----------------------------------------------------------------------------- step


def init_state(method: Method, optimizer: optax.GradientTransformation, seed: int, sample: Batch) -> TrainState:
    """Initial run state from a seed and one sample batch (for shapes)."""
    init_key, run_key = jax.random.split(jax.random.PRNGKey(seed))
    params, state = jax.jit(method.init)(init_key, sample)  # eager flax init is slow on CPU
    return TrainState(jnp.zeros((), jnp.int32), params, state, optimizer.init(params), run_key)


def make_step(method: Method, optimizer: optax.GradientTransformation, mesh=None, batch_spec=None) -> Callable:
    """``step(train_state, batch) -> (train_state, loss, metrics)``, pure; jit it (the trainer does).

    With a ``mesh`` the step runs inside ``jax.shard_map``: the train state is replicated, the batch
    laid out by ``batch_spec`` (default: replicated), and the method's loss is expected to reduce
    over the mesh axis (see :mod:`gcl_jax.parallel`), so the result equals the one-device step.
    """

    def step(ts: TrainState, batch: Batch):
        key = jax.random.fold_in(ts.key, ts.step)
        (loss, (state, metrics)), grads = jax.value_and_grad(method.loss, has_aux=True)(ts.params, ts.state, key, batch)
        updates, opt_state = optimizer.update(grads, ts.opt_state, ts.params)
        params = optax.apply_updates(ts.params, updates)
        if method.update_state is not None:
            state = method.update_state(params, state, ts.step)
        return TrainState(ts.step + 1, params, state, opt_state, ts.key), loss, metrics

    if mesh is None:
        return step
    batch_spec = parallel.REPLICATED if batch_spec is None else batch_spec
    return jax.shard_map(step, mesh=mesh, in_specs=(parallel.REPLICATED, batch_spec), out_specs=parallel.REPLICATED)


# ----------------------------------------------------------------------------- checkpoints


def checkpoint_manager(directory: Path, *, every: int, keep: int, monitor: str | None = None, mode: str = "min"):
    """An orbax manager saving every ``every`` steps, keeping the last ``keep`` and the best by ``monitor``.

    Saves are asynchronous where orbax supports it and atomic (written to a temporary directory,
    renamed when complete), so a crash never leaves a half-written checkpoint behind.
    """
    policies = [checkpoint_managers.LatestN(n=keep)]
    if monitor is not None:
        policies.append(
            checkpoint_managers.BestN(get_metric_fn=lambda m: m[monitor], reverse=(mode == "min"), n=1)
        )
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=every,
        preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies),
        enable_async_checkpointing=True,
        cleanup_tmp_directories=True,
    )
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def restore_latest(manager, template: TrainState) -> TrainState | None:
    """The newest checkpoint restored into ``template``'s structure, or ``None`` if there is none."""
    latest = manager.latest_step()
    if latest is None:
        return None
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
    restored = manager.restore(latest, args=ocp.args.StandardRestore(abstract))
    return TrainState(*restored) if not isinstance(restored, TrainState) else restored


# ----------------------------------------------------------------------------- early stopping


def no_best_yet(ts: TrainState) -> BestLoss:
    """The :class:`BestLoss` before any epoch: infinite loss, epoch -1, the initial weights."""
    return BestLoss(jnp.asarray(jnp.inf, jnp.float32), jnp.asarray(-1, jnp.int32), ts.params, ts.state)


def patience_ran_out(best: BestLoss | None, epochs_done: int, patience: int) -> bool:
    """True once ``patience`` epochs have ended without improving on ``best`` (never when 0, the
    one case where ``best`` is ``None``)."""
    return patience > 0 and epochs_done - 1 - int(best.epoch) >= patience


def best_weights(ts: TrainState) -> TrainState:
    """``ts`` with the lowest-loss epoch's parameters and state when early stopping tracked them
    (what the official scripts reload before evaluating), else ``ts`` itself."""
    return ts if ts.best is None else ts._replace(params=ts.best.params, state=ts.best.state)


# ----------------------------------------------------------------------------- loop


def logged_seconds(path: Path) -> float | None:
    """The training clock of ``metrics.jsonl``'s last row: seconds of training steps, carried across
    resumes (``None`` without a row)."""
    lines = path.read_text().splitlines() if path.exists() else []
    return float(json.loads(lines[-1])["time"]) if lines else None


def keep_metrics_up_to(path: Path, step: int) -> float:
    """Drop the rows of ``metrics.jsonl`` past ``step`` (logged after the checkpoint a run resumes
    from, so about to be replayed) and a last line cut short by a kill; returns the last kept
    row's ``time`` (0 without one), where the resumed run's clock continues."""
    kept = []
    for line in (path.read_text().splitlines() if path.exists() else []):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # only the last line can be cut short
        if row["step"] > step:
            break
        kept.append(row)
    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in kept))
    return float(kept[-1]["time"]) if kept else 0.0


def fit(
    method: Method,
    optimizer: optax.GradientTransformation,
    batch_fn: Callable[[int], Batch],
    num_steps: int,
    *,
    seed: int = 0,
    out_dir: str | Path | None = None,
    checkpoint_every: int = 100,
    keep: int = 3,
    resume: bool = False,
    learning_rate: Callable[[int], float] | None = None,
    progress: bool = True,
    log_every: int = 1,
    mesh=None,
    batch_spec=None,
    steps_per_epoch: int = 1,
    patience: int = 0,
) -> TrainState:
    """Train for ``num_steps`` optimizer steps; ``batch_fn(t)`` gives the batch of step ``t``.

    With ``out_dir``: checkpoints in ``out_dir/checkpoints`` (every ``checkpoint_every`` steps and
    at the end, the last ``keep`` kept, plus the lowest-loss one), ``metrics.jsonl`` with one line
    per logged step (step, loss, lr, time and the method's metrics). ``resume`` continues from the
    newest checkpoint, its metrics rows after that step dropped and its clock carried on. A
    non-finite loss raises :class:`NonFiniteLoss` naming the step.
    ``mesh`` / ``batch_spec``: data-parallel training (:func:`make_step`); the state and every batch
    become global arrays on the mesh, so the same call runs on one host or, after
    :func:`gcl_jax.parallel.initialize_distributed`, in every process of a multi-host run (each
    process's ``batch_fn`` returns the full batch). Checkpoints are written collectively by all
    processes; ``metrics.jsonl`` and the progress bar by process 0 only.
    ``patience`` > 0: early stopping on the epoch loss (the mean loss of an epoch's
    ``steps_per_epoch`` steps). The returned state's ``best`` holds the weights at the end of the
    lowest-loss epoch (:func:`best_weights`); checkpoints then fall on epoch ends only
    (``checkpoint_every`` rounded to whole epochs), so a resumed run never splits an epoch.
    """
    from tqdm.auto import tqdm

    step_fn = jax.jit(make_step(method, optimizer, mesh, batch_spec))
    ts = init_state(method, optimizer, seed, batch_fn(0))
    if patience:
        ts = ts._replace(best=no_best_yet(ts))
        checkpoint_every = steps_per_epoch * max(1, round(checkpoint_every / steps_per_epoch))
    batch_spec = parallel.REPLICATED if batch_spec is None else batch_spec

    def place(tree, spec=parallel.REPLICATED):  # a step over a mesh takes global arrays (no-op once placed)
        return tree if mesh is None else parallel.global_arrays(tree, mesh, spec)

    ts = place(ts)  # restore_latest takes its layout from here

    primary = jax.process_index() == 0
    manager = None
    metrics_file = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        manager = checkpoint_manager(out_dir / "checkpoints", every=checkpoint_every, keep=keep, monitor="loss")
        if resume:
            ts = restore_latest(manager, ts) or ts
        elif manager.latest_step() is not None:
            raise FileExistsError(f"{out_dir / 'checkpoints'} already holds checkpoints: pass resume=True or a new out_dir")
    start = int(ts.step)
    if patience and start % steps_per_epoch:
        raise ValueError(f"resume: checkpoint step {start} is not at an epoch end ({steps_per_epoch} steps per epoch)")
    best, ts = ts.best, ts._replace(best=None)
    clock = 0.0  # seconds of training before this call: a resumed run's clock continues
    if out_dir is not None and primary:
        if resume:
            clock = keep_metrics_up_to(out_dir / "metrics.jsonl", start)
        metrics_file = open(out_dir / "metrics.jsonl", "a" if resume else "w")
    started = time.perf_counter() - clock
    bar = tqdm(total=num_steps, initial=start, disable=not (progress and primary), desc="train", dynamic_ncols=True)
    stopped = patience_ran_out(best, start // steps_per_epoch, patience)  # resumed from the stopping checkpoint
    epoch_loss = 0.0
    try:
        for t in ([] if stopped else range(start, num_steps)):
            ts, loss, metrics = step_fn(ts, place(batch_fn(t), batch_spec))
            loss = float(loss)
            if not math.isfinite(loss):
                raise NonFiniteLoss(
                    f"loss is {loss} at step {t}; "
                    + (f"last good checkpoint: step {manager.latest_step()} in {out_dir / 'checkpoints'}" if manager else "no checkpoint directory")
                )
            if metrics_file is not None and ((t + 1) % log_every == 0 or t + 1 == num_steps):
                record = {"step": t + 1, "loss": loss, "time": round(time.perf_counter() - started, 4)}
                if learning_rate is not None:
                    record["lr"] = float(learning_rate(t))
                record.update({k: float(v) for k, v in metrics.items()})
                metrics_file.write(json.dumps(record) + "\n")
                metrics_file.flush()
            epoch_loss += loss / steps_per_epoch
            if patience and (t + 1) % steps_per_epoch == 0:
                epoch = t // steps_per_epoch
                if epoch_loss < float(best.loss):
                    best = place(BestLoss(jnp.float32(epoch_loss), jnp.int32(epoch), ts.params, ts.state))
                stopped = patience_ran_out(best, epoch + 1, patience)
                epoch_loss = 0.0
            if manager is not None:
                manager.save(t + 1, args=ocp.args.StandardSave(ts._replace(best=best)), metrics={"loss": loss},
                             force=(t + 1 == num_steps or stopped))
            bar.set_postfix(loss=f"{loss:.4f}")
            bar.update(1)
            if stopped:
                break
    finally:
        bar.close()
        if manager is not None:
            manager.wait_until_finished()
            manager.close()
        if metrics_file is not None:
            metrics_file.close()
    return ts._replace(best=best)
