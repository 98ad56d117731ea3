"""The training loop: P×K batches, a metric loss, periodic retrieval evaluation, exact resumption.

Outputs in ``config.output_dir`` (rank 0 only):

* ``config.yaml``: the resolved config; ``run_info.json``: commit, hardware, versions, seeds;
* ``metrics.json``: ``{"epochs": [{epoch, loss, lr, <eval metrics>}, ...], "final": {...} | null}``, atomically
  rewritten after every epoch;
* ``checkpoint.pt``: atomically written after every epoch: model, loss, optimizer, scheduler and AMP-scaler state,
  the epoch, the Python/NumPy/torch RNG states and the metrics history.

Data: ``config.data.pipeline`` picks how batches are made (fixed-size tensors, per-image transforms of image
files, or a decoded cache augmented batch by batch); :mod:`dml.train.pipeline` builds them.

Evaluation (:func:`evaluate`) follows each benchmark's published protocol, ``config.eval.protocol`` (``auto``
picks it from ``data.name``; :data:`dml.train.pipeline.AUTO_PROTOCOL`):

* ``self`` (CUB-200-2011, Cars196, SOP, synthetic data): every image of the evaluation split queries all the others,
  :func:`dml.eval.retrieval_metrics`: ``recall@k`` for ``k`` in ``eval.ks``, ``map@r``, ``r_precision``, ``nmi``;
* ``query-gallery`` (In-Shop; Liu et al., "DeepFashion: Powering Robust Clothes Recognition and Retrieval with Rich
  Annotations", CVPR 2016): the test split is embedded once and its query images are ranked against its gallery
  images only, :func:`dml.eval.query_gallery_metrics`, with the same keys;
* ``hotels`` (Hotels-50K; Stylianou et al., "Hotels-50K: A Global Hotel Recognition Dataset", AAAI 2019,
  papers.md §7.2): the test photos are ranked against the *training* images (same hotel ids), giving
  :func:`dml.eval.hotel_retrieval_metrics`'s ``instance@K`` (K from ``eval.ks``), ``chain@1``, ``chain@3``,
  ``chain@5`` and ``num_queries_with_chain``, plus the ``eval.include`` metrics of the same test-vs-train ranking
  from :func:`dml.eval.query_gallery_metrics` (``recall@k``, ``map@r``, ...). ``recall@K`` is not an alias of
  ``instance@K``: the released Hotels-50K code averages over *all* queries, so a test photo whose hotel has no
  training image on disk (a rotted URL) counts as a miss, while ``recall@K`` averages over the queries with a
  positive (``num_queries_without_positives`` counts the others), so
  ``instance@K = recall@K · (1 − num_queries_without_positives / num_queries)``; they are equal when every test
  hotel has a training image. Every ``eval.include`` metric costs a ranking of the test photos against the whole
  training set (about a million images for the full release); ``nmi`` clusters both sets into as many clusters as
  hotels, so full-size runs should set ``eval.include: [recall]``.

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
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import dml.data
import dml.eval
import dml.losses
import dml.models
from dml.data.registry import check_keywords
from dml.train import distributed, pipeline
from dml.train.callbacks import Callback, EpochCallback, EpochEndFunction, Method
from dml.eval.protocol import Evaluation, resolve_protocol
from dml.train.config import Config, ConfigError, OptimConfig, dump, from_dict, to_dict
from dml.utils import atomic_save_json, atomic_torch_save, run_info, seed_everything
from dml.utils.registry import did_you_mean

log = logging.getLogger("dml.train")
# Keys that may change between a run and its resumption: they do not change what is trained (the device may change
# the last bits of the numbers, but refusing to resume a CPU run on a GPU would help nobody).
RESUME_MAY_DIFFER = ("output_dir", "train.epochs", "train.log_every", "data.num_workers", "device", "eval.batch_size",
                     "data.cache_workers")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; an explicit but unavailable device is an error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if name == "cuda":
        if not cuda:
            raise RuntimeError("device 'cuda' was requested but torch.cuda.is_available() is False; "
                               "set device to 'auto' or 'cpu' (--set device=cpu).")
        return torch.device("cuda", local_rank)
    if name == "mps" and not mps:
        raise RuntimeError("device 'mps' was requested but torch.backends.mps.is_available() is False; "
                           "set device to 'auto' or 'cpu' (--set device=cpu).")
    return torch.device(name)


def build_optimizer(params: list[nn.Parameter] | list[dict[str, Any]], config: OptimConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov-free, with ``momentum``), Adam or AdamW; ``momentum`` is used by SGD only.

    ``params`` is a list of parameters or of parameter groups (dicts with their own ``lr``), as torch accepts.
    """
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"Unknown optimizer {config.name!r}; choose one of 'sgd', 'adam', 'adamw'.")


def build_loss(config: Config, *, num_classes: int) -> nn.Module:
    """The loss of ``config.loss``. A proxy loss (:class:`dml.losses.ProxyLoss`) left with ``num_classes`` or
    ``embedding_dim`` unset gets the training split's class count and ``config.model.embedding_dim``."""
    kwargs = dict(config.loss.kwargs)
    if issubclass(dml.losses.loss_class(config.loss.name), dml.losses.ProxyLoss):
        if kwargs.get("num_classes") is None:
            kwargs["num_classes"] = num_classes
        if kwargs.get("embedding_dim") is None:
            kwargs["embedding_dim"] = config.model.embedding_dim
    return dml.losses.build(config.loss.name, **kwargs)


def build_model(config: Config) -> dml.models.EmbeddingModel:
    """The embedding model described by ``config.model`` (and ``config.channels_last``)."""
    m = config.model
    return dml.models.build(m.backbone, embedding_dim=m.embedding_dim, pooling=m.pooling, normalize=m.normalize,
                            pretrained=m.pretrained, channels_last=config.channels_last,
                            backbone_kwargs=m.backbone_kwargs)


def load_model(run_dir: str | os.PathLike, *, device: str | torch.device = "cpu") -> dml.models.EmbeddingModel:
    """Rebuild the trained model of a run folder from its ``checkpoint.pt`` (in eval mode)."""
    state = _load_checkpoint(Path(run_dir) / "checkpoint.pt")
    config = from_dict(state["config"])
    config.model.pretrained = False  # the checkpoint holds the weights; do not download anything
    model = build_model(config)
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def preflight(config: Config) -> None:
    """Check names and hyperparameters against the registries before anything slow happens (``ConfigError``)."""
    config.validate()
    checks = [
        ("data.name", config.data.name, dml.data.available()),
        ("model.backbone", config.model.backbone, dml.models.available_backbones()),
        ("model.pooling", config.model.pooling, dml.models.available_poolings()),
        ("loss.name", config.loss.name, dml.losses.available()),
    ]
    for key, value, choices in checks:
        if value not in choices:
            raise ConfigError(f"Config key {key!r}: unknown value {value!r}.{did_you_mean(value, choices)} "
                              f"Choose one of {choices}.")
    pipeline.check(config)
    valid = dml.losses.hyperparameters(config.loss.name)
    unknown = sorted(set(config.loss.kwargs) - set(valid))
    if unknown:
        raise ConfigError(f"Config key 'loss.kwargs': {unknown} are not hyperparameters of loss "
                          f"{config.loss.name!r}; valid ones (with defaults): {valid}.")
    try:
        check_keywords(config.data.name, config.data.kwargs)
    except TypeError as err:
        raise ConfigError(f"Config key 'data.kwargs': {err}") from err


def train(config: Config, *, resume: bool = False, callbacks: Sequence[Callback] = (), method: Method | None = None,
          on_epoch_end: EpochCallback | None = None) -> dict[str, Any]:
    """Train ``config`` and return the final metrics (``epoch``, ``loss``, ``lr`` and the retrieval metrics).

    ``resume=True`` continues from ``output_dir/checkpoint.pt``. Launched by ``torchrun`` (``WORLD_SIZE > 1``),
    every process trains a DistributedDataParallel replica on its share of each global batch; only rank 0
    evaluates and writes files, so the other ranks return the training metrics only.

    ``callbacks`` (:class:`dml.train.callbacks.Callback`) observe the loop; ``on_epoch_end(epoch, model)`` is the
    shorthand for one that only has that hook: the numbers it returns (e.g. a diagnostic such as
    :func:`dml.diagnostics.hard_triplet_ratio`) are added to that epoch's record in ``metrics.json``, with the
    random-number state restored after the call, so a callback never changes what is trained. ``method``
    (:class:`dml.train.callbacks.Method`) owns the training step and the test-time embedding.
    With ``eval.at_start`` the untrained model is evaluated first (and the epoch-end callbacks run), recorded as
    epoch 0, the RNG state restored afterwards.
    """
    preflight(config)
    info = distributed.env_info()
    device = resolve_device(config.device, info.local_rank)
    owns_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    info = distributed.init_from_env(device.type)
    hooks = list(callbacks) + ([EpochEndFunction(on_epoch_end)] if on_epoch_end is not None else [])
    try:
        return _train(config, resume=resume, info=info, device=device, callbacks=hooks, method=method or Method())
    finally:
        if owns_group:
            distributed.cleanup()


@dataclass
class _Run:
    """Everything one training run holds, built once by :func:`_build_run`."""

    config: Config
    info: distributed.DistInfo
    device: torch.device
    data: pipeline.Pipeline
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


def _train(config: Config, *, resume: bool, info: distributed.DistInfo, device: torch.device,
           callbacks: list[Callback], method: Method) -> dict[str, Any]:
    run = _build_run(config, resume=resume, info=info, device=device, callbacks=callbacks, method=method)
    start_epoch = _restore(run) if resume else 0
    if info.is_main:
        dump(config, run.out / "config.yaml")
        _write_run_info(run.out / "run_info.json", config, device, info, start_epoch if resume else None)
    for callback in callbacks:
        callback.on_train_start(run.model)
    if config.eval.at_start and start_epoch == 0:
        _evaluate_at_start(run)
    for epoch in range(start_epoch + 1, config.train.epochs + 1):
        _run_epoch(run, epoch)
    final: dict[str, Any] = dict(run.history[-1]) if run.history else {}
    if info.is_main:
        if not any(key not in ("epoch", "loss", "lr") for key in final):
            final.update(_evaluate(run))
        atomic_save_json({"epochs": run.history, "final": final}, run.out / "metrics.json")
        log.info("final: " + _summary(final, None))
    distributed.barrier()
    return final


def _build_run(config: Config, *, resume: bool, info: distributed.DistInfo, device: torch.device,
               callbacks: list[Callback], method: Method) -> _Run:
    out = Path(config.output_dir)
    ckpt_path = out / "checkpoint.pt"
    if resume and not ckpt_path.is_file():
        raise FileNotFoundError(f"Cannot resume: {str(ckpt_path)!r} does not exist. Run without --resume to start "
                                "a fresh run, or point --output-dir at the folder of the run to continue.")
    if not resume and ckpt_path.exists() and info.is_main:
        log.info(f"warning: {ckpt_path} exists and will be overwritten by this fresh run (use --resume to continue "
                 "it).")
    seed_everything(config.seed, deterministic=config.deterministic)
    amp = config.amp and device.type == "cuda"
    if config.amp and not amp and info.is_main:
        log.info(f"note: amp is only used on CUDA; training in float32 on {device.type}.")
    data = pipeline.build(config, info=info, device=device)
    # Re-seed: the initial weights must not depend on whether a dataset was generated or read from its cache,
    # nor on the rank (only rank 0 builds the evaluation set).
    seed_everything(config.seed, deterministic=config.deterministic)
    model = build_model(config).to(device)
    loss_fn = build_loss(config, num_classes=data.train_set.num_classes).to(device)
    # Proxy losses index their proxies by label, so the loss sees class ids mapped to 0..C-1 (sorted original ids).
    train_classes = torch.as_tensor(np.unique(data.train_set.labels), device=device)
    model, net = _parallel(model, info, device)
    groups = [{"params": list(model.parameters())}]
    if any(True for _ in loss_fn.parameters()):
        groups.append({"params": list(loss_fn.parameters()), "lr": config.optim.lr * config.optim.loss_lr_multiplier})
    optimizer = build_optimizer(groups, config.optim)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=config.optim.milestones,
                                                     gamma=config.optim.gamma)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    return _Run(config, info, device, data, model, net, loss_fn, train_classes, optimizer, scheduler, scaler, amp,
                callbacks, method, out, [])


def _parallel(model: nn.Module, info: distributed.DistInfo, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """``(model, net)``: the model and what the loop calls, its DistributedDataParallel wrapper under torchrun."""
    if not info.enabled:
        return model, model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model, nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    if info.is_main and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        log.info("warning: batch norm on CPU uses per-process batch statistics (SyncBatchNorm needs a GPU), so this "
                 "run differs slightly from single-process training; small_cnn's norm='group' avoids it.")
    return model, nn.parallel.DistributedDataParallel(model)


def _restore(run: _Run) -> int:
    """Load the run's checkpoint into it; the epoch it was written after."""
    state = _load_checkpoint(run.out / "checkpoint.pt")
    _check_resumable(_with_defaults(state["config"]), to_dict(run.config))
    run.model.load_state_dict(state["model"])
    run.loss_fn.load_state_dict(state["loss"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"])
    run.history = state["history"]
    if run.info.is_main:
        log.info(f"resuming {run.out} after epoch {state['epoch']}")
    return state["epoch"]


def _evaluate(run: _Run) -> dict[str, float | int]:
    e = run.config.eval
    return dml.eval.evaluate(run.model, run.data.evaluation, ks=e.ks, include=e.include, batch_size=e.batch_size,
                             device=run.device, seed=run.config.seed, embed_fn=run.method.embed)


def _evaluate_at_start(run: _Run) -> None:
    """Epoch 0: the untrained model's metrics (rank 0), the RNG state restored so training is unchanged."""
    if run.info.is_main:
        rng = _get_rng_state()
        record: dict[str, Any] = {"epoch": 0, "loss": None, "lr": run.optimizer.param_groups[0]["lr"]}
        record.update(_evaluate(run))
        _set_rng_state(rng)
        _epoch_end_callbacks(run, 0, record)
        run.history.append(record)
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
    record: dict[str, Any] = {"epoch": epoch, "loss": mean_loss, "lr": lr}
    config, info = run.config, run.info
    if config.eval.every and epoch % config.eval.every == 0 and info.is_main:
        record.update(_evaluate(run))
    if info.is_main:
        _epoch_end_callbacks(run, epoch, record)
    run.history.append(record)
    if info.is_main:
        ckpt_path = run.out / "checkpoint.pt"
        atomic_save_json({"epochs": run.history, "final": None}, run.out / "metrics.json")
        atomic_torch_save(_checkpoint(epoch, config, run.model, run.loss_fn, run.optimizer, run.scheduler,
                                      run.scaler, run.history), ckpt_path)
        log.info(_summary(record, time.perf_counter() - started))
        for callback in run.callbacks:
            callback.on_checkpoint(epoch, ckpt_path)
    distributed.barrier()


def _epoch_end_callbacks(run: _Run, epoch: int, record: dict[str, Any]) -> None:
    for callback in run.callbacks:
        rng = _get_rng_state()
        extra = callback.on_epoch_end(epoch, run.model)
        _set_rng_state(rng)
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
    bar = tqdm(loader, desc=f"epoch {epoch}/{config.train.epochs}", leave=False, dynamic_ncols=True,
               disable=not (run.info.is_main and sys.stderr.isatty()))
    for images, labels in bar:
        images = images.to(device, non_blocking=True)
        labels = torch.searchsorted(run.train_classes, labels.to(device, non_blocking=True))
        loss = run.method.training_step(run.net, run.loss_fn, images, labels, amp=run.amp,
                                        gather=distributed.gather_with_grad, gather_labels=distributed.gather)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"The loss became {loss.item()} at epoch {epoch}, step {steps + 1}; lower "
                                     f"optim.lr (now {lr}) or check the data for corrupt images.")
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
    return dml.eval.evaluate(model, data, ks=e.ks, include=e.include, batch_size=e.batch_size, device=device,
                             seed=config.seed)


def _as_evaluation(data: Any, config: Config) -> dml.eval.Evaluation:
    """Wrap a bare evaluation split for :func:`evaluate` under the config's protocol."""
    protocol = dml.eval.resolve_protocol(config.data.name, config.eval.protocol)
    if protocol == "hotels":
        raise ValueError(f"Protocol {protocol!r} ranks the test split against the training images, so evaluate() "
                         "needs a dml.eval.Evaluation with the gallery (Evaluation.of(test, protocol='hotels', "
                         "gallery=train)), not the test split alone; or set eval.protocol=self.")
    try:
        return dml.eval.Evaluation.of(data, protocol=protocol)
    except ValueError as err:
        raise ValueError(f"{err} (eval.protocol={config.eval.protocol!r})") from err


def _checkpoint(epoch: int, config: Config, model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
                scheduler: Any, scaler: torch.amp.GradScaler, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "config": to_dict(config),
        "model": model.state_dict(),
        "loss": loss_fn.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": _get_rng_state(),
        "history": history,
    }


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        # Our own file; it holds NumPy RNG state, which the weights-only unpickler rejects.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise RuntimeError(f"Could not read the checkpoint {str(path)!r} ({err}). Checkpoints are written atomically, "
                           "so it was probably produced by another program or version; start a fresh run without "
                           "--resume.") from err


def _check_resumable(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """``ValueError`` naming every key (outside :data:`RESUME_MAY_DIFFER`) in which the configs differ.
    ``eval.protocol`` is compared resolved (``auto`` on ``cub200`` is ``self``), i.e. by what it evaluates."""
    saved, current = _flatten(saved), _flatten(current)
    for flat in (saved, current):
        if "eval.protocol" in flat and "data.name" in flat:
            flat["eval.protocol"] = resolve_protocol(flat["data.name"], flat["eval.protocol"])
    differences = [key for key in sorted(set(saved) | set(current))
                   if key not in RESUME_MAY_DIFFER and saved.get(key) != current.get(key)]
    if differences:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in differences)
        hint = (" A checkpoint written before eval.protocol existed was evaluated by self-retrieval; continue it "
                "with --set eval.protocol=self." if "eval.protocol" in differences else "")
        raise ValueError(f"Cannot resume: the config differs from the checkpoint's in {details}. Resume with the "
                         "original config (the run folder's config.yaml), or start a fresh run in another folder."
                         + hint)


def _with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's config with the keys added since it was written set to their defaults (which reproduce the
    older behaviour), so older checkpoints stay resumable. ``eval.protocol`` is the exception: before it existed
    every run was evaluated by self-retrieval, so a missing one is ``self`` (which ``auto`` equals for every
    dataset but ``inshop`` and ``hotels50k``)."""
    if isinstance(saved.get("eval"), dict) and "protocol" not in saved["eval"]:
        saved = {**saved, "eval": {**saved["eval"], "protocol": "self"}}
    try:
        return to_dict(from_dict(saved))
    except ConfigError:
        return saved


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and key not in ("kwargs", "backbone_kwargs"):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _get_rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_run_info(path: Path, config: Config, device: torch.device, info: distributed.DistInfo,
                    resumed_after: int | None) -> None:
    previous: dict[str, Any] = {}
    if resumed_after is not None and path.is_file():
        with open(path) as handle:
            previous = json.load(handle)
    record = run_info(seeds={"seed": config.seed, "sampler": f"(seed={config.seed}, epoch)"},
                      extra={"device": str(device), "world_size": info.world_size,
                             "deterministic": config.deterministic,
                             "torch_threads": torch.get_num_threads(),
                             "amp": config.amp and device.type == "cuda"})
    if resumed_after is not None:
        record["resumed_after_epoch"] = previous.get("resumed_after_epoch", []) + [resumed_after]
        record["started"] = previous.get("started", previous.get("date"))
    atomic_save_json(record, path)


def _summary(record: dict[str, Any], seconds: float | None) -> str:
    parts = [f"{k} {v:.4f}" if isinstance(v, float) and not math.isnan(v) and k != "lr" else f"{k} {v}"
             for k, v in record.items() if not isinstance(v, (list, tuple, dict))]  # histograms: metrics.json only
    if seconds is not None:
        parts.append(f"({seconds:.1f} s)")
    return " | ".join(parts)
