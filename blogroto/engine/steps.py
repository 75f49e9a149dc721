"""One optimisation step of a training run, on each Keras backend.

The losses and the network are backend-neutral Keras; only how gradients are taken differs:
TensorFlow records them on a `GradientTape` inside one `tf.function` (traced once for every crop
size, and split across GPUs by `tf.distribute.MirroredStrategy` when there are several), PyTorch
runs eagerly and calls `backward()`, JAX differentiates a pure function of the weights with
`jax.value_and_grad` under `jax.jit` (Keras' `StatelessScope` lets the same model code run on
given weight values) and applies the optimizer statelessly.

`make_train_step` returns `step(x, i) -> [loss values]` for a numpy batch `x` and step number `i`.
"""

from __future__ import annotations

import contextlib

import numpy as np

from blogroto.engine.runtime import (
    backend_name,
    gpu_names,
    import_keras,
    tensorflow_if_backend,
    to_numpy,
)


def distribution_strategy():
    """tf.distribute.MirroredStrategy on TensorFlow with several GPUs (data parallel), else None.
    On JAX and PyTorch training uses one device (docs/backends.md: Keras' distribution API)."""
    tf = tensorflow_if_backend()
    if tf is not None and len(gpu_names()) > 1:
        return tf.distribute.MirroredStrategy()
    return None


def replicas(strategy) -> int:
    return 1 if strategy is None else strategy.num_replicas_in_sync


def scope(strategy):
    """Where the network and optimizer must be created (the strategy's scope, if any)."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def make_train_step(net, losses, optimizer, scaled: bool, strategy=None):
    """`losses(x, step)` returns (total, parts...); the step minimises total over the network's
    trainable weights with `optimizer` (a LossScaleOptimizer when `scaled`: float16)."""
    name = backend_name()
    if name == "tensorflow":
        return _tensorflow_step(net, losses, optimizer, scaled, strategy)
    if name == "jax":
        return _jax_step(net, losses, optimizer, scaled)
    return _torch_step(net, losses, optimizer, scaled)


def _floats(values) -> list[float]:
    return [float(to_numpy(v)) for v in values]


def _tensorflow_step(net, losses, optimizer, scaled, strategy):
    tf = tensorflow_if_backend()
    n = replicas(strategy)

    def replica_step(x, step):
        with tf.GradientTape() as tape:
            values = losses(x, step)
            loss = values[0] / n
            if scaled:
                loss = optimizer.scale_loss(loss)
        grads = tape.gradient(loss, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
        return values

    # One trace for every crop size: the same graph before and after a resume, which keeps a
    # resumed run bit-identical (Adam turns float-rounding differences into lr-sized steps).
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.float32), tf.TensorSpec([], tf.int64)])
    def train_step(x, step):
        if n > 1:
            out = strategy.run(replica_step, args=(x, step))
            return [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) / n for v in out]
        return replica_step(x, step)

    return lambda x, step: _floats(train_step(tf.constant(x), tf.constant(step, tf.int64)))


def _torch_step(net, losses, optimizer, scaled):
    import torch

    ops = import_keras().ops
    weights = net.trainable_variables

    def train_step(x, step):
        values = losses(ops.convert_to_tensor(x), ops.convert_to_tensor(np.int64(step)))
        loss = optimizer.scale_loss(values[0]) if scaled else values[0]
        for w in weights:
            w.value.grad = None
        loss.backward()
        with torch.no_grad():
            optimizer.apply([w.value.grad for w in weights], weights)
        return _floats(v.detach() for v in values)

    return train_step


def _jax_step(net, losses, optimizer, scaled):
    import jax

    keras = import_keras()
    weights, slots = net.trainable_variables, optimizer.variables

    def loss_of(values, slot_values, x, step):
        # the optimizer's slots are mapped too: a LossScaleOptimizer reads its current scale
        with keras.StatelessScope(state_mapping=list(zip(weights, values)) + list(zip(slots, slot_values))):
            out = losses(x, step)
            loss = optimizer.scale_loss(out[0]) if scaled else out[0]
        return loss, out

    @jax.jit
    def pure_step(values, slot_values, x, step):
        (_, out), grads = jax.value_and_grad(loss_of, has_aux=True)(values, slot_values, x, step)
        values, slot_values = optimizer.stateless_apply(slot_values, grads, values)
        return values, slot_values, out

    def train_step(x, step):
        values, slot_values, out = pure_step([w.value for w in weights], [s.value for s in slots], x,
                                             np.int32(step))
        for variable, value in zip(weights, values):
            variable.assign(value)
        for variable, value in zip(slots, slot_values):
            variable.assign(value)
        return _floats(out)

    return train_step
