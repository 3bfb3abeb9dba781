"""The distribution strategy and the compiled training step.

One compiled step serves every task and every strategy: ``strategy.run(replica_step)`` inside a
``tf.function``, a Keras 3 optimizer applying the gradients in the replica function (Keras ``fit``
does not work under MultiWorkerMirroredStrategy).  ``batch_size`` is the *global* batch: every
worker builds the same deterministic global batch and feeds its replicas their slices, so a
distributed run sees exactly the batches of a single-device run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from visionfw.errors import ConfigError

__all__ = ["make_strategy", "is_chief", "distributed_batches", "build_train_step"]


def make_strategy(kind: str | None, num_devices: int | None = None) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy of ``distribute=kind``.

    Args:
        kind: None (the default strategy), ``'mirrored'`` or ``'multi_worker'`` (needs ``TF_CONFIG``).
        num_devices: With ``'mirrored'``: use the first ``num_devices`` GPUs (else CPUs); unset: all.

    Returns:
        The strategy.

    Raises:
        ConfigError: Fewer devices than asked for, or ``multi_worker`` without ``TF_CONFIG``.
    """
    if kind is None:
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        devices = None
        if num_devices:
            gpus = tf.config.list_logical_devices("GPU")
            pool = gpus if gpus else tf.config.list_logical_devices("CPU")
            if len(pool) < num_devices:
                raise ConfigError(f"num_devices={num_devices} but only {len(pool)} devices are visible.")
            devices = [d.name for d in pool[:num_devices]]
        if devices is None and not tf.config.list_logical_devices("GPU"):
            cpus = tf.config.list_logical_devices("CPU")
            devices = [d.name for d in cpus]
        return tf.distribute.MirroredStrategy(devices=devices)
    if "TF_CONFIG" not in os.environ:
        raise ConfigError(
            "distribute=multi_worker needs the TF_CONFIG environment variable "
            "(cluster spec and this worker's task); see tf.distribute docs."
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (the chief, or worker 0 of a cluster without one)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    cluster = resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def distributed_batches(
    strategy: tf.distribute.Strategy, make_dataset: Callable[[], tf.data.Dataset], global_batch: int
) -> Any:
    """An iterator over per-replica slices of the global batches of ``make_dataset()``.

    Args:
        strategy: The run's strategy.
        make_dataset: Builds the (deterministic) dataset of global batches.
        global_batch: Its batch size; divisible by the replicas.

    Returns:
        The distributed iterator.
    """
    n = strategy.num_replicas_in_sync

    def dataset_fn(ctx):
        per = global_batch // n
        local = n // ctx.num_input_pipelines
        first = ctx.input_pipeline_id * local * per

        def split(*batch):
            parts = tuple(
                tf.reshape(t[first : first + local * per], tf.concat([[local, per], tf.shape(t)[1:]], 0)) for t in batch
            )
            return tf.data.Dataset.from_tensor_slices(parts)

        ds = make_dataset().flat_map(split)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        options.deterministic = True
        return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

    return iter(strategy.distribute_datasets_from_function(dataset_fn))


def _core_step(trainer: Any) -> Callable:
    """``core_step(*batch) -> (loss, extra metrics, outputs)``: one replica's forward, backward and
    update, by the task's own ``update_step`` when it has one (a GAN's two networks)."""
    c, task, model, opt = trainer.config, trainer.task, trainer.model, trainer.optimizer
    n = float(trainer.replicas)
    # the optimizer clips per replica before the all-reduce; with several replicas the reduced
    # gradient is clipped here so the result equals the single-device one
    own_clip, clipnorm = trainer.own_clip, c.clipnorm
    metric_names = tuple(trainer.metric_sums)

    def model_update(batch):
        with tf.GradientTape() as tape:
            loss, metrics = task.compute_loss(model, batch, True)
            # each replica's mean over its slice / n sums to the global mean
            scaled = opt.scale_loss(loss / n)
        grads = tape.gradient(scaled, model.trainable_variables)
        if own_clip:
            ctx = tf.distribute.get_replica_context()
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
            grads, _ = tf.clip_by_global_norm(grads, clipnorm)
            grads = [g / n for g in grads]  # the optimizer sums the replicas again
        opt.apply(grads, model.trainable_variables)
        return loss, metrics

    def core_step(*batch):
        if task.update_step is not None:
            loss, metrics = task.update_step(model, opt, batch, n)
        else:
            loss, metrics = model_update(batch)
        extra = {k: tf.cast(metrics[k], tf.float32) for k in metric_names}
        return loss, extra, metrics.get("_outputs")

    return tf.function(core_step, jit_compile=True) if c.jit_compile else core_step


def _replica_step(trainer: Any) -> Callable:
    """``replica_step(*batch) -> (loss, extra)``: the core step on the replica's batch, which a patch
    sampler draws from its pool inside the step (no host round trip) and then learns from."""
    from visionfw.data.sampling import Sampler, per_patch_psnr_gain

    core_step = _core_step(trainer)
    task, model = trainer.task, trainer.model
    pool, sampler, bicubic_fn = trainer.pool, trainer.sampler, trainer.bicubic_fn
    learns = sampler is not None and type(sampler).update is not Sampler.update
    per_replica_batch = int(trainer.config.batch_size) // trainer.replicas

    def replica_step(*batch):
        if pool is not None:
            indices = sampler.draw(per_replica_batch)
            batch = pool.gather(indices)
        loss, extra, outputs = core_step(*batch)
        if learns:
            # gains of the forward pass the step trained on (before its update)
            gains = per_patch_psnr_gain(outputs, batch[1], bicubic_fn(batch[0]))
            sampler.update(indices, gains)
        task.after_step(model, batch, outputs)
        return loss, extra

    return replica_step


def build_train_step(trainer: Any) -> Callable:
    """The compiled step of ``trainer``'s run.

    Args:
        trainer: The built :class:`~visionfw.train.trainer.Trainer` (model, optimizer, strategy,
            task, loss accumulators, EMA variables, patch sampler).

    Returns:
        ``step(iterator) -> global mean loss`` (a ``tf.function``); it adds the loss and the task's
        metrics to the trainer's accumulators and updates the EMA weights.
    """
    replica_step = _replica_step(trainer)
    strategy = trainer.strategy
    metric_names = tuple(trainer.metric_sums)
    ema_vars, trainable = trainer.ema_vars, trainer.model.trainable_variables
    decay = float(trainer.config.ema) if trainer.config.ema else None

    @tf.function
    def train_step(iterator):
        batch = next(iterator) if iterator is not None else ()
        per_replica_loss, per_replica_extra = strategy.run(replica_step, args=tuple(batch))
        loss = strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica_loss, axis=None)
        for name in metric_names:
            trainer.metric_sums[name].assign_add(
                strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica_extra[name], axis=None)
            )
        trainer.loss_sum.assign_add(loss)
        trainer.loss_count.assign_add(1.0)
        if decay is not None:
            for e, v in zip(ema_vars, trainable):
                e.assign(decay * e + (1.0 - decay) * tf.cast(v, e.dtype))
        return loss

    return train_step
