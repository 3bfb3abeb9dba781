"""The training loop of a :class:`~visionfw.train.trainer.Trainer`: the steps, and at each log point
the loss, TensorBoard, validation, checkpoints; a stop on a signal or a non-finite loss; the result."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from visionfw.data.embedded import HELDOUT
from visionfw.errors import TrainingError, VisionFWError
from visionfw.train.guards import LossGrowthWatch, StopRequest, TrainingInterrupted
from visionfw.train.resolve import describe_val_data, model_stem
from visionfw.train.workdir import CsvLog, remove_stale_tmp

__all__ = ["TrainingLoop", "STEP_DELAY_ENV"]

# seconds slept after every step: a test hook (kill a run between checkpoints), not a user option
STEP_DELAY_ENV = "VISIONFW_TEST_STEP_DELAY"


@dataclasses.dataclass
class _Loop:
    """What the loop carries from one log point to the next."""

    start_step: int
    t0: float
    last_t: float
    last_step: int
    loss: float | None = None
    last_val: dict = dataclasses.field(default_factory=dict)
    # (step, loss) of a non-finite loss, or (step, loss, reason) of a task that stopped the run
    nonfinite: tuple | None = None


@dataclasses.dataclass
class _Outputs:
    """Where the loop reports: the CSV log, TensorBoard, the progress bar."""

    log: CsvLog
    writer: Any
    progress: Any
    sample_batch: Any


class TrainingLoop:
    """The loop of :class:`~visionfw.train.trainer.Trainer` (a base class of it): :meth:`run_loop`
    trains to ``config.steps`` using the state the trainer built."""

    # what the trainer provides
    config: Any
    label: str | None
    chief: bool
    replicas: int
    step: int
    elapsed_before: float
    best_psnr: float
    best_step: int | None
    run_id: str
    task: Any
    schedule: Any
    pool: Any
    dataset: Any
    loss_sum: Any
    loss_count: Any
    metric_sums: dict[str, Any]
    make_iterator: Callable[[int], Any]
    build_step: Callable[[], Callable]
    maybe_resume: Callable[[Any], str | None]
    state_groups: Callable[[], dict[str, list]]
    state_is_finite: Callable[[dict[str, list]], bool]
    checkpoint_meta: Callable[[float], dict[str, Any]]
    export_model: Callable[[], Any]

    def run_loop(self) -> dict[str, Any]:
        """Trains from the resumed (or first) step to ``config.steps``.

        Returns:
            The result dict of :func:`~visionfw.train.trainer.train`.
        """
        manager, resumed_from = self._prepare_workdir()
        start_step = self.step
        if resumed_from is not None and start_step >= self.config.steps:
            return self._already_complete(resumed_from)
        log, writer = self._open_logs()
        iterator = self.make_iterator(start_step)
        sample_batch = self._sample_batch(writer, start_step)
        train_step = self.build_step()
        out = _Outputs(log, writer, self._start_progress(start_step), sample_batch)
        t0 = time.perf_counter()
        loop = _Loop(start_step=start_step, t0=t0, last_t=t0, last_step=start_step)
        stop = StopRequest()
        try:
            with stop, writer.as_default() if writer is not None else contextlib.nullcontext():
                self._train_steps(loop, out, train_step, iterator, manager, stop)
                if writer is not None:
                    writer.flush()
                if stop.signum is not None and loop.nonfinite is None and self.step < self.config.steps:
                    self._stop_on_signal(loop, manager, stop.signum)
        finally:
            out.progress.close(line=loop.nonfinite is None and stop.signum is None)
        if loop.nonfinite is not None:
            raise _nonfinite_error(loop.nonfinite, manager.latest())
        return self._result(loop, resumed_from)

    def _check_val_data(self):
        """Every validation set exists, before anything is written (a missing Set5 fails now,
        not at the first validation)."""
        from visionfw.evaluate import resolve_eval_set

        for name in self.config.val_data:
            if name == HELDOUT:
                continue
            try:
                resolve_eval_set(name, self.config.data_dir)
            except VisionFWError as exc:
                raise type(exc)(
                    f"{exc} Or validate on other images: val_data={HELDOUT} (photos held out of "
                    "the embedded training set), or val_data= (no validation)."
                ) from None

    def _prepare_workdir(self):
        """Checks the validation sets, creates the workdir, removes a killed run's temporary files
        and resumes; returns ``(checkpoint manager, the checkpoint resumed from or None)``."""
        from visionfw.train.checkpoint import CheckpointManager

        c = self.config
        self._check_val_data()
        os.makedirs(c.workdir, exist_ok=True)
        manager = CheckpointManager(os.path.join(c.workdir, "checkpoints"), keep=c.keep_checkpoints)
        if self.chief:
            remove_stale_tmp(c.workdir, manager)
        resumed_from = self.maybe_resume(manager)
        manager.run_id = self.run_id
        return manager, resumed_from

    def _open_logs(self):
        """Writes ``config.json``; returns ``(train_log.csv, the TensorBoard writer or None)``."""
        from visionfw.train.workdir import write_run_file

        c = self.config
        if self.chief:
            data = c.to_json().encode()
            write_run_file(os.path.join(c.workdir, "config.json"), lambda f: f.write(data))
        columns = ["step", "loss", "lr", "time", "steps_per_sec"] + [f"train_{m}" for m in self.metric_sums]
        for name in c.val_data:
            columns += [f"val_{name}_psnr", f"val_{name}_ssim"]
        log = CsvLog(os.path.join(c.workdir, "train_log.csv"), columns, self.step, self.chief)
        writer = None
        if c.tensorboard and self.chief:
            import importlib.util

            if importlib.util.find_spec("tensorboard") is None:
                import warnings

                warnings.warn(
                    "TensorBoard is not installed, so no summaries are written; "
                    "`pip install tensorboard` (or pass --notensorboard).",
                    stacklevel=2,
                )
            else:
                writer = tf.summary.create_file_writer(os.path.join(c.workdir, "tb"))
        return log, writer

    def _sample_batch(self, writer, start_step):
        """A fixed batch for the TensorBoard SR samples (the run's first batch), or None."""
        if writer is None or not self.config.val_data:
            return None
        if self.pool is not None:
            return self.pool.gather(tf.range(3))
        ds = self.dataset if self.dataset is not None else self.task.make_dataset(start_step)
        return next(iter(ds.take(1)))

    def _start_progress(self, start_step):
        """The progress bar, after a line on the budget, the data and the validation."""
        from visionfw.console import Progress

        c = self.config
        progress = Progress(
            c.steps,
            self.label or f"train {model_stem(c.model)} x{c.scale}",
            initial=start_step,
            enabled=bool(c.progress and self.chief),
        )
        budget = f"steps {start_step} -> {c.steps} (resumed)" if start_step else f"{c.steps} steps"
        data = "the embedded photos" if c.train_data is None else os.path.basename(os.path.normpath(c.train_data))
        progress.write(f"{progress.desc}: {budget} on {data}, batch {c.batch_size}; {describe_val_data(c)}")
        return progress

    def _train_steps(self, loop, out, train_step, iterator, manager, stop):
        """Steps to ``config.steps`` with a log point (loss, validation, checkpoint) where one is
        due; stops early on a non-finite loss, a task's stop or a signal."""
        c = self.config
        # crash-recovery tests slow the loop down so they can kill it between checkpoints
        step_delay = float(os.environ.get(STEP_DELAY_ENV) or 0.0)
        growth = LossGrowthWatch(c.lr)
        while self.step < c.steps:
            self.task.begin_step(self.step)
            step_loss = train_step(iterator)
            self.step += 1
            if step_delay:
                time.sleep(step_delay)
            s = self.step
            if stop.signum is not None:
                break
            if s == loop.start_step + 1:
                growth.set_start(s, step_loss)  # one read in the run, not one per step
                out.progress.update(s)
                out.progress.restart_clock()  # the first step traced the graph: not a rate to go by
            at_end = s >= c.steps
            do_log = at_end or s % c.log_every == 0
            do_val = bool(c.val_data) and (at_end or (c.val_every and s % c.val_every == 0))
            do_ckpt = at_end or (c.ckpt_every and s % c.ckpt_every == 0)
            if not (do_log or do_val or do_ckpt):
                out.progress.update(s)
                continue
            elapsed = self._log_point(loop, out, growth, line=do_log and not at_end, validate=do_val)
            if loop.nonfinite is not None:
                break
            if do_ckpt and self.chief and not self._save_checkpoint(loop, manager, elapsed):
                break
            if stop.signum is not None:
                break

    def _log_point(self, loop, out, growth, *, line, validate):
        """Reads and resets the loss accumulators (a host sync), logs the step's row (TensorBoard,
        the progress bar, the CSV) and validates; returns the run's elapsed time.  A non-finite
        loss, or a task that stops the run, is recorded in ``loop.nonfinite`` and its row logged."""
        s = self.step
        count = float(self.loss_count.numpy())
        loss = loop.loss = float(self.loss_sum.numpy()) / max(count, 1.0)
        self.loss_sum.assign(0.0)
        self.loss_count.assign(0.0)
        extras = {}
        for name, var in self.metric_sums.items():
            extras[f"train_{name}"] = float(var.numpy()) / max(count, 1.0)
            var.assign(0.0)
        now = time.perf_counter()
        rate = (s - loop.last_step) / max(now - loop.last_t, 1e-9)
        loop.last_t, loop.last_step = now, s
        lr_now = float(self.schedule(max(s - 1, 0)))
        elapsed = self.elapsed_before + now - loop.t0
        row = {"step": s, "loss": f"{loss:.6g}", "lr": f"{lr_now:.6g}", "time": f"{elapsed:.2f}"}
        row["steps_per_sec"] = f"{rate:.3f}"
        if not math.isfinite(loss):
            loop.nonfinite = (s, loss)
            out.log.write(dict(row, loss=loss))
            return elapsed
        growth.check(s, loss)
        stopped = self.task.check_loss(s, loss)
        if stopped:
            loop.nonfinite = (s, loss, stopped)
            out.log.write(row)
            return elapsed
        row.update({k: f"{v:.6g}" for k, v in extras.items()})
        if out.writer is not None:
            for k, v in extras.items():
                tf.summary.scalar(f"train/{k[len('train_') :]}", v, step=s)
            tf.summary.scalar("train/loss", loss, step=s)
            tf.summary.scalar("train/lr", lr_now, step=s)
            tf.summary.scalar("train/steps_per_sec", rate, step=s)
        out.progress.update(s, line=line, loss=f"{loss:.4g}")
        if validate:
            loop.last_val = self._validate(s, row, out.writer, out.sample_batch)
            first = self.config.val_data[0]
            if first in loop.last_val:
                out.progress.update(s, **{f"{first}": f"{loop.last_val[first]['psnr']:.2f} dB"})
        out.log.write(row)
        return elapsed

    def _save_checkpoint(self, loop, manager, elapsed):
        """Writes the step's checkpoint; False (``loop.nonfinite`` set, nothing written) when the
        weights are not finite."""
        groups = self.state_groups()
        if not self.state_is_finite(groups):
            loop.nonfinite = (self.step, float("nan"))
            return False
        manager.save(self.step, groups, self.checkpoint_meta(elapsed))
        return True

    def _stop_on_signal(self, loop, manager, signum):
        """After the first Ctrl-C / SIGTERM: keeps this step's state, then raises
        :class:`TrainingInterrupted` (a signal during the last step's validation lets the run
        finish instead: the loop has ended and the model is written next)."""
        c = self.config
        path, kept = None, "checkpoint {} written"
        if self.chief:
            elapsed = self.elapsed_before + time.perf_counter() - loop.t0
            groups = self.state_groups()
            if os.path.exists(manager.path_for(self.step)):
                path = manager.path_for(self.step)
            elif self.state_is_finite(groups):
                path = manager.save(self.step, groups, self.checkpoint_meta(elapsed))
            else:  # diverged since the last log point: keep the last good checkpoint
                path, kept = manager.latest(), "weights not finite, last good checkpoint {} kept"
        raise TrainingInterrupted(
            f"interrupted at step {self.step} of {c.steps}; {kept.format(path)}. To resume, run "
            "the same command again (resume=auto continues from the last checkpoint).",
            signum=signum,
            step=self.step,
            checkpoint=path,
        )

    def _result(self, loop, resumed_from):
        """The result dict of a run that reached ``config.steps`` (``model.keras`` written)."""
        c = self.config
        total_time = self.elapsed_before + time.perf_counter() - loop.t0
        model_path = self._export()
        first = c.val_data[0] if c.val_data else None
        last_val = loop.last_val
        return {
            "workdir": c.workdir,
            "model_path": model_path,
            "steps": int(self.step),
            "replicas": self.replicas,
            "resumed_from": resumed_from,
            "already_complete": False,
            "final_loss": loop.loss if self.step > loop.start_step else None,
            "val": {k: v for k, v in last_val.items() if k != "protocol"},
            "protocol": last_val.get("protocol", ""),
            "val_psnr": last_val.get(first, {}).get("psnr") if first else None,
            "best_psnr": self.best_psnr if math.isfinite(self.best_psnr) else None,
            "best_step": self.best_step,
            "time_s": total_time,
            "steps_per_sec": (self.step - loop.start_step) / max(time.perf_counter() - loop.t0, 1e-9),
        }

    def _export(self):
        """Writes ``model.keras`` (the float32 / EMA model) atomically; returns its path."""
        from visionfw.files import write_file_atomic

        model_path = os.path.join(self.config.workdir, "model.keras")
        if self.chief:
            write_file_atomic(model_path, self.export_model().save, by_name=True)
        return model_path

    def _already_complete(self, checkpoint):
        """The result of a run whose checkpoint is already at (or past) ``steps``: nothing is
        trained or validated again; ``model.keras`` is written only if it is missing."""
        c = self.config
        model_path = os.path.join(c.workdir, "model.keras")
        if not os.path.exists(model_path):
            model_path = self._export()
        return {
            "workdir": c.workdir,
            "model_path": model_path,
            "steps": int(self.step),
            "replicas": self.replicas,
            "resumed_from": checkpoint,
            "already_complete": True,
            "final_loss": None,
            "val": {},
            "protocol": "",
            "val_psnr": None,
            "best_psnr": self.best_psnr if math.isfinite(self.best_psnr) else None,
            "best_step": self.best_step,
            "time_s": self.elapsed_before,
            "steps_per_sec": 0.0,
        }

    def _validate(self, step, row, writer, sample_batch):
        """Validates the export model, adds its numbers to ``row`` and TensorBoard, and writes
        ``best.npz`` on a new best PSNR of the first validation set."""
        from visionfw.train.checkpoint import CheckpointManager

        model = self.export_model()
        results = self.task.validate(model)
        for name in self.config.val_data:
            r = results.get(name)
            if not r:
                continue
            row[f"val_{name}_psnr"] = f"{r['psnr']:.4f}"
            row[f"val_{name}_ssim"] = f"{r['ssim']:.5f}"
            if writer is not None:
                tf.summary.scalar(f"val/{name}_psnr", r["psnr"], step=step)
                tf.summary.scalar(f"val/{name}_ssim", r["ssim"], step=step)
                if math.isfinite(r.get("bicubic_psnr", float("nan"))):
                    tf.summary.scalar(f"val/{name}_gain_over_bicubic", r["psnr"] - r["bicubic_psnr"], step=step)
        if writer is not None and sample_batch is not None:
            for key, images in self.task.sample_images(model, sample_batch).items():
                tf.summary.image(f"samples/{key}", images, step=step, max_outputs=3)
        first = self.config.val_data[0]
        psnr = results.get(first, {}).get("psnr")
        if psnr is not None and math.isfinite(psnr) and psnr > self.best_psnr and self.chief:
            groups = self.state_groups()
            if self.state_is_finite(groups):
                self.best_psnr, self.best_step = psnr, step
                directory = os.path.join(self.config.workdir, "checkpoints")
                CheckpointManager(directory, keep=self.config.keep_checkpoints).save_best(
                    groups, self.checkpoint_meta(0.0)
                )
        return results


def _nonfinite_error(nonfinite, kept):
    """The one-line TrainingError of a run stopped at a non-finite loss (or by its task)."""
    where = (
        f"The last good checkpoint {kept} is kept (resume=auto restarts from it)"
        if kept
        else "No checkpoint was written yet"
    )
    if len(nonfinite) == 3:
        return TrainingError(f"training stopped at step {nonfinite[0]}: {nonfinite[2]} {where}.")
    return TrainingError(
        f"training diverged: loss {nonfinite[1]} (non-finite) at or before step {nonfinite[0]}. "
        f"{where}; no checkpoint with non-finite weights is written. Lower lr, add clipnorm "
        "or check the training data."
    )
