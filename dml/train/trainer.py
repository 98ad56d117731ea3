"""The training loop: P×K batches, a metric loss, periodic retrieval evaluation, exact resumption.

Outputs in ``config.output_dir`` (rank 0 only):

* ``config.yaml``: the resolved config; ``run_info.json``: commit, hardware, versions, seeds; ``split.csv``: the
  train/test assignment of a user's own images (``imagefolder``, ``imagelist``; :mod:`dml.data.splits`);
* ``metrics.json``: ``{"epochs": [{epoch, loss, lr, <eval metrics>}, ...], "final": {...} | null}``, atomically
  rewritten after every epoch;
* ``checkpoint.pt``: atomically written after every epoch: model, loss, optimizer, scheduler and AMP-scaler state,
  the epoch, the Python/NumPy/torch RNG states and the metrics history, as tensors and plain data only, so that it
  is read with ``weights_only=True`` and opening it cannot run code (:mod:`dml.train.checkpoint`);
* ``manifest.json``: the SHA-256 of ``checkpoint.pt``, written atomically with it and verified whenever it is read.

Nothing is written before the run has trained its first epoch (or evaluated the untrained model with
``eval.at_start``): a run that fails earlier leaves its folder as it was. A fresh run into a folder of an earlier
run replaces that run's files then (the ``dml train`` command refuses such a folder without ``--overwrite``).
Temporary files of a write that was killed (``.checkpoint.pt.*.tmp``) are removed when the next run starts.

An epoch is never lost to its evaluation: when an epoch is evaluated (or has epoch-end callbacks), its checkpoint
is written right after training, marked ``evaluated: False``, and written again with the metrics; a run resumed
from the first one evaluates that epoch before training the next.

Data: ``config.data.pipeline`` picks how batches are made (fixed-size tensors, per-image transforms of image
files, or a decoded cache augmented batch by batch); :mod:`dml.data.loaders` builds them.

Evaluation follows each benchmark's published protocol, ``config.eval.protocol`` (``auto`` picks it from
``data.name``), through :func:`dml.eval.evaluate`; the protocols and their metrics are described in
:mod:`dml.eval.protocol`.

Exact resumption: the P×K sampler (and the cached pipeline's batch augmentation) is re-seeded from
``(seed, epoch)`` every epoch and the RNG states are restored, so on CPU a run killed after any epoch and resumed
with ``resume=True`` ends with exactly the metrics of an uninterrupted run (with ``data.num_workers = 0``; worker
processes draw their seeds from the restored torch RNG too, but only in-process loading is covered by the tests).
A :class:`~dml.train.callbacks.Callback`'s ``on_checkpoint`` runs right after each epoch's checkpoint is written:
the resume tests SIGKILL the process there (``tests/train/faults.py``).
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import dml.data
import dml.eval
import dml.losses
import dml.models
from dml.data import loaders
from dml.train import distributed
from dml.train.build import build_loss, build_model, build_optimizer, preflight, resolve_device
from dml.train.callbacks import Callback, EpochCallback, EpochEndFunction, Method
from dml.train.checkpoint import (
    CHECKPOINT,
    MANIFEST,
    check_resumable,
    checkpoint_state,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
    with_defaults,
)
from dml.train.class_means import class_means_for
from dml.train.config import Config, dump, to_dict
from dml.train.methods import build_method
from dml.utils import atomic_save_json, run_info, seed_everything
from dml.utils.progress import tqdm

log = logging.getLogger("dml.train")

RUN_FILES = ("config.yaml", "run_info.json", "metrics.json", CHECKPOINT, MANIFEST)


def train(
    config: Config,
    *,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    method: Method | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> dict[str, Any]:
    """Train ``config`` and return the final metrics (``epoch``, ``loss``, ``lr`` and the retrieval metrics).

    ``resume=True`` continues from ``output_dir/checkpoint.pt``. Launched by ``torchrun`` (``WORLD_SIZE > 1``),
    every process trains a DistributedDataParallel replica on its share of each global batch; only rank 0
    evaluates and writes files, so the other ranks return the training metrics only.

    ``callbacks`` (:class:`dml.train.callbacks.Callback`) observe the loop; ``on_epoch_end(epoch, model)`` is the
    shorthand for one that only has that hook: the numbers it returns (e.g. a diagnostic such as
    :func:`dml.diagnostics.hard_triplet_ratio`) are added to that epoch's record in ``metrics.json``, with the
    random-number state restored after the call, so a callback never changes what is trained. ``method``
    (:class:`dml.train.callbacks.Method`) owns the training step and the test-time embedding; without it the
    config's ``method`` is built (:mod:`dml.train.methods`), and a method that is also a ``Callback`` gets the hooks.
    With ``eval.at_start`` the untrained model is evaluated first (and the epoch-end callbacks run), recorded as
    epoch 0, the RNG state restored afterwards.
    """
    preflight(config)
    info = distributed.env_info()
    device = resolve_device(config.device, info.local_rank)
    owns_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    info = distributed.init_from_env(device.type)
    if method is None:
        method = class_means_for(config)  # a vmf loss with estimator "full" re-estimates its class means
    hooks = list(callbacks) + ([EpochEndFunction(on_epoch_end)] if on_epoch_end is not None else [])
    if method is None:
        method = build_method(config.method.name, **config.method.kwargs)
    if isinstance(method, Callback):  # a method that also observes the loop (e.g. re-clustering)
        hooks.append(method)
    try:
        return _train(config, resume=resume, info=info, device=device, callbacks=hooks, method=method)
    finally:
        if owns_group:
            distributed.cleanup()


@dataclass
class _Run:
    """Everything one training run holds, built once by :func:`_build_run`."""

    config: Config
    info: distributed.DistInfo
    device: torch.device
    data: loaders.Pipeline
    model: nn.Module
    net: nn.Module
    loss_fn: nn.Module
    train_classes: torch.Tensor
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    amp: bool
    callbacks: list[Callback]
    method: Method
    out: Path
    history: list[dict[str, Any]]
    resumed_after: int | None = None
    files_written: bool = False


def _train(
    config: Config,
    *,
    resume: bool,
    info: distributed.DistInfo,
    device: torch.device,
    callbacks: list[Callback],
    method: Method,
) -> dict[str, Any]:
    run = _build_run(config, resume=resume, info=info, device=device, callbacks=callbacks, method=method)
    start_epoch, evaluated = _restore(run) if resume else (0, True)
    run.method.setup(model=run.model, data=run.data, config=config, device=device)
    for callback in callbacks:
        callback.on_loss_built(run.loss_fn)
        callback.on_train_start(run.model)
    if not evaluated:  # the checkpoint was written after training this epoch, before its evaluation finished
        _finish_epoch(run, start_epoch, time.perf_counter())
    if config.eval.at_start and start_epoch == 0:
        _evaluate_at_start(run)
    for epoch in range(start_epoch + 1, config.train.epochs + 1):
        _run_epoch(run, epoch)
        if _stop_requested(run):
            break
    final: dict[str, Any] = dict(run.history[-1]) if run.history else {}
    if info.is_main:
        if not any(key not in ("epoch", "loss", "lr") for key in final):
            final.update(_evaluate(run))
        _write_run_files(run)
        atomic_save_json({"epochs": run.history, "final": final}, run.out / "metrics.json")
        log.info("final: " + _summary(final, None))
    distributed.barrier()
    return final


def _build_run(
    config: Config,
    *,
    resume: bool,
    info: distributed.DistInfo,
    device: torch.device,
    callbacks: list[Callback],
    method: Method,
) -> _Run:
    out = Path(config.output_dir)
    ckpt_path = out / CHECKPOINT
    if resume and not ckpt_path.is_file():
        raise FileNotFoundError(
            f"Cannot resume: {str(ckpt_path)!r} does not exist. Run without --resume to start "
            "a fresh run, or point --output-dir at the folder of the run to continue."
        )
    if info.is_main:
        _remove_orphans(out)
    if not resume and ckpt_path.exists() and info.is_main:
        log.info(
            f"warning: {ckpt_path} exists; this fresh run replaces it once its first epoch is trained "
            "(use --resume to continue it)."
        )
    seed_everything(config.seed, deterministic=config.deterministic)
    amp = config.amp and device.type == "cuda"
    if config.amp and not amp and info.is_main:
        log.info(f"note: amp is only used on CUDA; training in float32 on {device.type}.")
    data = loaders.build_loaders(
        config.data,
        protocol=config.eval.protocol,
        seed=config.seed,
        eval_batch_size=config.eval.batch_size,
        rank=info.rank,
        world_size=info.world_size,
        is_main=info.is_main,
        device=device,
        barrier=distributed.barrier,
    )
    loaders.check_image_files(data, config.data.name)
    # Re-seed: the initial weights must not depend on whether a dataset was generated or read from its cache,
    # nor on the rank (only rank 0 builds the evaluation set).
    seed_everything(config.seed, deterministic=config.deterministic)
    model = build_model(config).to(device)
    # the cgd head's first descriptor, for the cgd loss (an ensemble of learners has no single head)
    feature_dim = getattr(getattr(model, "head", None), "auxiliary_dim", None)
    loss_fn = build_loss(config, num_classes=data.train_set.num_classes, feature_dim=feature_dim).to(device)
    # Proxy losses index their proxies by label, so the loss sees class ids mapped to 0..C-1 (sorted original ids).
    train_classes = torch.as_tensor(np.unique(data.train_set.labels), device=device)
    model, net = _parallel(model, info, device)
    groups = [{"params": list(model.parameters())}]
    if any(True for _ in loss_fn.parameters()):
        groups.append({"params": list(loss_fn.parameters()), "lr": config.optim.lr * config.optim.loss_lr_multiplier})
    optimizer = build_optimizer(groups, config.optim)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=config.optim.milestones, gamma=config.optim.gamma
    )
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    return _Run(
        config,
        info,
        device,
        data,
        model,
        net,
        loss_fn,
        train_classes,
        optimizer,
        scheduler,
        scaler,
        amp,
        callbacks,
        method,
        out,
        [],
    )


def _parallel(model: nn.Module, info: distributed.DistInfo, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """``(model, net)``: the model and what the loop calls, its DistributedDataParallel wrapper under torchrun."""
    if not info.enabled:
        return model, model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model, nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    if info.is_main and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        log.info(
            "warning: batch norm on CPU uses per-process batch statistics (SyncBatchNorm needs a GPU), so this "
            "run differs slightly from single-process training; small_cnn's norm='group' avoids it."
        )
    return model, nn.parallel.DistributedDataParallel(model)


def _restore(run: _Run) -> tuple[int, bool]:
    """Load the run's checkpoint into it; the epoch it was written after, and whether that epoch was evaluated."""
    state = load_checkpoint(run.out / CHECKPOINT)
    check_resumable(with_defaults(state["config"]), to_dict(run.config))
    if state["epoch"] > run.config.train.epochs:
        raise ValueError(
            f"Cannot resume: the checkpoint in {run.out} was written after epoch {state['epoch']}, but train.epochs "
            f"is {run.config.train.epochs}; resume with --set train.epochs={state['epoch']} (or more), or start a "
            "fresh run in another folder to train fewer epochs."
        )
    run.model.load_state_dict(state["model"])
    run.loss_fn.load_state_dict(state["loss"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    run.history = state["history"]
    run.resumed_after = state["epoch"]
    if run.info.is_main:
        log.info(f"resuming {run.out} after epoch {state['epoch']}")
    return state["epoch"], bool(state.get("evaluated", True))


def _evaluate(run: _Run) -> dict[str, float | int]:
    e = run.config.eval
    return dml.eval.evaluate(
        run.model,
        run.data.evaluation,
        ks=e.ks,
        include=e.include,
        batch_size=e.batch_size,
        device=run.device,
        seed=run.config.seed,
        embed_fn=run.method.embed,
        lone_queries=e.lone_queries,
    )


def _evaluate_at_start(run: _Run) -> None:
    """Epoch 0: the untrained model's metrics (rank 0), the RNG state restored so training is unchanged."""
    if run.info.is_main:
        rng = get_rng_state()
        record: dict[str, Any] = {"epoch": 0, "loss": None, "lr": run.optimizer.param_groups[0]["lr"]}
        record.update(_evaluate(run))
        set_rng_state(rng)
        _epoch_end_callbacks(run, 0, record)
        run.history.append(record)
        _write_run_files(run)
        atomic_save_json({"epochs": run.history, "final": None}, run.out / "metrics.json")
        log.info(_summary(record, None))
    distributed.barrier()


def _run_epoch(run: _Run, epoch: int) -> None:
    started = time.perf_counter()
    run.data.set_epoch(epoch)
    for callback in run.callbacks:
        callback.on_epoch_start(epoch, run.model)
    lr = run.optimizer.param_groups[0]["lr"]
    mean_loss = _train_epoch(run, epoch, lr)
    run.scheduler.step()
    run.history.append({"epoch": epoch, "loss": mean_loss, "lr": lr})
    if run.info.is_main and (_evaluates(run.config, epoch) or run.callbacks):
        _save(run, epoch, evaluated=False)  # the trained epoch is safe before its evaluation can fail
    _finish_epoch(run, epoch, started)


def _stop_requested(run: _Run) -> bool:
    """Whether a callback asks to stop after this epoch (early stopping); rank 0's answer, shared with all ranks."""
    stop = run.info.is_main and any(callback.should_stop() for callback in run.callbacks)
    if distributed.is_active():
        flag = torch.tensor([float(stop)], device=run.device)
        torch.distributed.broadcast(flag, src=0)
        stop = bool(flag.item())
    if stop and run.info.is_main:
        log.info(f"stopping early after epoch {run.history[-1]['epoch']} (a callback asked for it)")
    return stop


def _evaluates(config: Config, epoch: int) -> bool:
    return bool(config.eval.every) and epoch % config.eval.every == 0


def _finish_epoch(run: _Run, epoch: int, started: float) -> None:
    """Evaluate epoch ``epoch`` (the last record of the history) if due, run the epoch-end callbacks, checkpoint."""
    record = run.history[-1]
    if run.info.is_main:
        if _evaluates(run.config, epoch):
            record.update(_evaluate(run))
        _epoch_end_callbacks(run, epoch, record)
        _save(run, epoch, evaluated=True)
        log.info(_summary(record, time.perf_counter() - started))
        for callback in run.callbacks:
            callback.on_checkpoint(epoch, run.out / CHECKPOINT)
    distributed.barrier()


def _save(run: _Run, epoch: int, *, evaluated: bool) -> None:
    """The checkpoint (with its manifest) after ``epoch``, then ``metrics.json``, which thus never lists an epoch
    that no checkpoint holds; the run's other files first."""
    _write_run_files(run)
    state = checkpoint_state(
        epoch,
        run.config,
        run.model,
        run.loss_fn,
        run.optimizer,
        run.scheduler,
        run.scaler,
        run.history,
        evaluated=evaluated,
    )
    save_checkpoint(state, run.out / CHECKPOINT)
    atomic_save_json({"epochs": run.history, "final": None}, run.out / "metrics.json")


def _write_run_files(run: _Run) -> None:
    """``config.yaml`` and ``run_info.json``, once, right before the run's first write; a fresh run first removes
    the files of an earlier run in its folder, so the folder never mixes two runs."""
    if run.files_written:
        return
    if run.resumed_after is None:
        for name in (MANIFEST, CHECKPOINT, "metrics.json"):  # the manifest first: a checkpoint is never vouched
            (run.out / name).unlink(missing_ok=True)  # for by the manifest of another run
    dump(run.config, run.out / "config.yaml")
    loaders.save_split(run.config.data, run.out)
    _write_run_info(run.out / "run_info.json", run.config, run.device, run.info, run.resumed_after)
    run.files_written = True


def _remove_orphans(out: Path) -> None:
    """Delete the temporary files of run-file writes that a killed process left behind (``.checkpoint.pt.*.tmp``)."""
    if not out.is_dir():
        return
    orphans = [p for name in RUN_FILES for p in out.glob(f".{name}.*.tmp") if p.is_file()]
    for path in orphans:
        path.unlink(missing_ok=True)
    if orphans:
        log.info(f"removed {len(orphans)} unfinished temporary file(s) of a killed write from {out}.")


def _epoch_end_callbacks(run: _Run, epoch: int, record: dict[str, Any]) -> None:
    for callback in run.callbacks:
        rng = get_rng_state()
        extra = callback.on_epoch_end(epoch, run.model)
        set_rng_state(rng)
        clash = sorted(set(extra or {}) & set(record))
        if clash:
            raise ValueError(f"on_epoch_end returned {clash}, which the trainer already records; rename them.")
        record.update(extra or {})


def _train_epoch(run: _Run, epoch: int, lr: float) -> float:
    """One pass over the training batches; the mean loss."""
    config, device = run.config, run.device
    run.net.train()
    total, steps = 0.0, 0
    loader = run.data.loader
    bar = tqdm(
        loader,
        desc=f"epoch {epoch}/{config.train.epochs}",
        leave=False,
        dynamic_ncols=True,
        disable=not (run.info.is_main and sys.stderr.isatty()),
    )
    for images, labels in bar:
        images = images.to(device, non_blocking=True)
        labels = torch.searchsorted(run.train_classes, labels.to(device, non_blocking=True))
        loss = run.method.training_step(
            run.net,
            run.loss_fn,
            images,
            labels,
            amp=run.amp,
            gather=distributed.gather_with_grad,
            gather_labels=distributed.gather,
        )
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"The loss became {loss.item()} at epoch {epoch}, step {steps + 1}; lower "
                f"optim.lr (now {lr}) or check the data for corrupt images."
            )
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        total += loss.item()
        steps += 1
        for callback in run.callbacks:
            callback.on_step_end(epoch, steps, loss)
        if not bar.disable:
            bar.set_postfix(loss=f"{loss.item():.4f}")
        elif steps % config.train.log_every == 0 and run.info.is_main:
            log.info(f"epoch {epoch} step {steps}/{len(loader)} loss {loss.item():.4f}")
    bar.close()
    return total / max(steps, 1)


def evaluate(model: nn.Module, data: Any, config: Config, device: torch.device) -> dict[str, float | int]:
    """:func:`dml.eval.evaluate` with the settings of ``config.eval`` (ks, include, batch_size) and ``config.seed``.

    ``data`` is a :class:`dml.eval.Evaluation`, or the evaluation split alone (a dataset of fixed-size tensors or a
    ``DataLoader`` of ready batches), evaluated under ``config.eval.protocol`` resolved for ``config.data.name``:
    ``query-gallery`` then reads the dataset's ``is_query`` mask; ``hotels`` needs the training gallery and hence an
    ``Evaluation``.
    """
    if not isinstance(data, dml.eval.Evaluation):
        data = _as_evaluation(data, config)
    e = config.eval
    return dml.eval.evaluate(
        model,
        data,
        ks=e.ks,
        include=e.include,
        batch_size=e.batch_size,
        device=device,
        seed=config.seed,
        lone_queries=e.lone_queries,
    )


def _as_evaluation(data: Any, config: Config) -> dml.eval.Evaluation:
    """Wrap a bare evaluation split for :func:`evaluate` under the config's protocol."""
    protocol = dml.eval.resolve_protocol(config.data.name, config.eval.protocol)
    if protocol == "hotels":
        raise ValueError(
            f"Protocol {protocol!r} ranks the test split against the training images, so evaluate() "
            "needs a dml.eval.Evaluation with the gallery (Evaluation.of(test, protocol='hotels', "
            "gallery=train)), not the test split alone; or set eval.protocol=self."
        )
    try:
        return dml.eval.Evaluation.of(data, protocol=protocol)
    except ValueError as err:
        raise ValueError(f"{err} (eval.protocol={config.eval.protocol!r})") from err


def _write_run_info(
    path: Path, config: Config, device: torch.device, info: distributed.DistInfo, resumed_after: int | None
) -> None:
    previous: dict[str, Any] = {}
    if resumed_after is not None and path.is_file():
        with open(path) as handle:
            previous = json.load(handle)
    record = run_info(
        seeds={"seed": config.seed, "sampler": f"(seed={config.seed}, epoch)"},
        extra={
            "device": str(device),
            "world_size": info.world_size,
            "deterministic": config.deterministic,
            "torch_threads": torch.get_num_threads(),
            "amp": config.amp and device.type == "cuda",
        },
    )
    if resumed_after is not None:
        record["resumed_after_epoch"] = previous.get("resumed_after_epoch", []) + [resumed_after]
        record["started"] = previous.get("started", previous.get("date"))
    atomic_save_json(record, path)


def _summary(record: dict[str, Any], seconds: float | None) -> str:
    parts = [
        f"{k} {v:.4f}" if isinstance(v, float) and not math.isnan(v) and k != "lr" else f"{k} {v}"
        for k, v in record.items()
        if not isinstance(v, (list, tuple, dict))
    ]  # histograms: metrics.json only
    if seconds is not None:
        parts.append(f"({seconds:.1f} s)")
    return " | ".join(parts)
