"""The `text_classifier` workload of `lamina bench` in JAX (XLA on the CPU), for a side-by-side
figure: int32 ids (256, 128), the last 28 steps padded with 0 -> embedding lookup (20000, 64) ->
tanh(2x) -> mean over the unpadded steps -> dense(4) -> softmax. Prints the median of 7 runs.

Run with the peer's environment: ~/.cache/lamina-peer-venv/bin/python benches/peers/jax_text_classifier.py
"""
import time

import jax
import jax.numpy as jnp
import numpy as np

V, D, B, T = 20000, 64, 256, 128
emb = jnp.asarray(np.random.default_rng(6).uniform(-0.05, 0.05, (V, D)).astype(np.float32))
w = jnp.asarray(np.random.default_rng(7).normal(size=(D, 4)).astype(np.float32))
b = jnp.zeros(4, jnp.float32)
k = np.arange(B * T)
ids = np.where(k % T < 100, k * 7919 % 19999 + 1, 0).reshape(B, T).astype(np.int32)
ids = jnp.asarray(ids)


@jax.jit
def model(ids):
    x = jnp.tanh(jnp.take(emb, ids, axis=0) * 2.0)
    m = (ids != 0)[..., None]
    pooled = jnp.sum(jnp.where(m, x, 0.0), axis=1) / jnp.sum(m.astype(jnp.float32), axis=1)
    return jax.nn.softmax(pooled @ w + b, axis=-1)


model(ids).block_until_ready()
times = []
for _ in range(7):
    t = time.perf_counter()
    model(ids).block_until_ready()
    times.append(time.perf_counter() - t)
print(f"jax {jax.__version__} text_classifier median {sorted(times)[3]:.6f} s")
