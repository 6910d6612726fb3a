"""A tiny, randomness-using training run for the resume tests: ``python train_toy.py OUT STEPS [--resume]``.

Writes the final parameters to ``OUT/final.npy``. ``TOY_STEP_SLEEP`` slows each step down so a
test can kill the process part-way.
"""

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from gcl_jax import train

FEATURES = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)


def toy_method() -> train.Method:
    def init(key, batch):
        return {"w": jax.random.normal(key, (8, 4))}, {"calls": jnp.zeros((), jnp.int32)}

    def loss(params, state, key, batch):
        noisy = batch + 0.1 * jax.random.normal(key, batch.shape)
        out = jnp.tanh(noisy @ params["w"])
        value = jnp.mean((out - 0.5) ** 2) + 1e-3 * jnp.sum(params["w"] ** 2)
        return value, ({"calls": state["calls"] + 1}, {"norm": jnp.linalg.norm(params["w"])})

    def embed(params, state, batch):
        return batch @ params["w"]

    return train.Method(init, loss, embed)


def batch_fn(step: int):
    time.sleep(float(os.environ.get("TOY_STEP_SLEEP", "0")))
    rows = np.random.default_rng(step).permutation(64)[:16]
    return FEATURES[rows]


if __name__ == "__main__":
    out, steps = sys.argv[1], int(sys.argv[2])
    optimizer, lr = train.make_optimizer(1e-2, steps, schedule="cosine", warmup_steps=5)
    state = train.fit(
        toy_method(), optimizer, batch_fn, steps, seed=3, out_dir=out, checkpoint_every=4, keep=2,
        resume="--resume" in sys.argv, learning_rate=lr, progress=False,
    )
    np.save(os.path.join(out, "final.npy"), np.asarray(state.params["w"]))
    print("calls", int(state.state["calls"]))
