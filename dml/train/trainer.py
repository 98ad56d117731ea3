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
``DML_KILL_AFTER_EPOCH=N`` SIGKILLs the process right after epoch ``N``'s checkpoint is written: the fault
injection the resume test uses.
"""
from __future__ import annotations

import json
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

import dml.data
import dml.eval
import dml.losses
import dml.models
from dml.data.registry import check_keywords
from dml.train import distributed, pipeline
from dml.train.config import PROTOCOLS, Config, ConfigError, OptimConfig, dump, from_dict, to_dict
from dml.utils import atomic_save_json, atomic_torch_save, run_info, seed_everything
from dml.utils.registry import did_you_mean

KILL_ENV = "DML_KILL_AFTER_EPOCH"
EpochCallback = Callable[[int, nn.Module], "dict[str, Any] | None"]
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


def train(config: Config, *, resume: bool = False, on_epoch_end: EpochCallback | None = None) -> dict[str, Any]:
    """Train ``config`` and return the final metrics (``epoch``, ``loss``, ``lr`` and the retrieval metrics).

    ``resume=True`` continues from ``output_dir/checkpoint.pt``. Launched by ``torchrun`` (``WORLD_SIZE > 1``),
    every process trains a DistributedDataParallel replica on its share of each global batch; only rank 0
    evaluates and writes files, so the other ranks return the training metrics only.

    ``on_epoch_end(epoch, model)``, called on rank 0 after each epoch's evaluation, may return a dict of extra
    numbers (e.g. a diagnostic such as :func:`dml.diagnostics.hard_triplet_ratio`); they are added to that epoch's
    record in ``metrics.json``. The random-number state is restored after the call, so a callback never changes
    what is trained.
    """
    preflight(config)
    info = distributed.env_info()
    device = resolve_device(config.device, info.local_rank)
    owns_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    info = distributed.init_from_env(device.type)
    try:
        return _train(config, resume=resume, info=info, device=device, on_epoch_end=on_epoch_end)
    finally:
        if owns_group:
            distributed.cleanup()


def _train(config: Config, *, resume: bool, info: distributed.DistInfo, device: torch.device,
           on_epoch_end: EpochCallback | None = None) -> dict[str, Any]:
    out = Path(config.output_dir)
    ckpt_path = out / "checkpoint.pt"
    log = _Logger(enabled=info.is_main)
    kill_after = _kill_after_epoch()
    if resume and not ckpt_path.is_file():
        raise FileNotFoundError(f"Cannot resume: {str(ckpt_path)!r} does not exist. Run without --resume to start "
                                "a fresh run, or point --output-dir at the folder of the run to continue.")
    if not resume and ckpt_path.exists() and info.is_main:
        log(f"warning: {ckpt_path} exists and will be overwritten by this fresh run (use --resume to continue it).")

    seed_everything(config.seed, deterministic=config.deterministic)
    amp = config.amp and device.type == "cuda"
    if config.amp and not amp:
        log(f"note: amp is only used on CUDA; training in float32 on {device.type}.")

    data = pipeline.build(config, info=info, device=device)
    train_set, loader = data.train_set, data.loader

    # Re-seed: the initial weights must not depend on whether a dataset was generated or read from its cache,
    # nor on the rank (only rank 0 builds the evaluation set).
    seed_everything(config.seed, deterministic=config.deterministic)
    model = build_model(config).to(device)
    loss_fn = build_loss(config, num_classes=train_set.num_classes).to(device)
    # Proxy losses index their proxies by label, so the loss sees class ids mapped to 0..C-1 (sorted original ids).
    train_classes = torch.as_tensor(np.unique(train_set.labels), device=device)
    net: nn.Module = model
    if info.enabled:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
        else:
            if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
                log("warning: batch norm on CPU uses per-process batch statistics (SyncBatchNorm needs a GPU), so "
                    "this run differs slightly from single-process training; small_cnn's norm='group' avoids it.")
            net = nn.parallel.DistributedDataParallel(model)
    groups = [{"params": list(model.parameters())}]
    if any(True for _ in loss_fn.parameters()):
        groups.append({"params": list(loss_fn.parameters()), "lr": config.optim.lr * config.optim.loss_lr_multiplier})
    optimizer = build_optimizer(groups, config.optim)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=config.optim.milestones,
                                                     gamma=config.optim.gamma)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    history: list[dict[str, Any]] = []
    start_epoch = 0
    if resume:
        state = _load_checkpoint(ckpt_path)
        _check_resumable(_with_defaults(state["config"]), to_dict(config))
        model.load_state_dict(state["model"])
        loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        history = state["history"]
        start_epoch = state["epoch"]
        log(f"resuming {out} after epoch {start_epoch}")
    if info.is_main:
        dump(config, out / "config.yaml")
        _write_run_info(out / "run_info.json", config, device, info, start_epoch if resume else None)

    for epoch in range(start_epoch + 1, config.train.epochs + 1):
        started = time.perf_counter()
        data.set_epoch(epoch)
        net.train()
        lr = optimizer.param_groups[0]["lr"]
        total, steps = 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{config.train.epochs}", leave=False, dynamic_ncols=True,
                   disable=not (info.is_main and sys.stderr.isatty()))
        for images, labels in bar:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
                embeddings = net(images)
            embeddings = distributed.gather_with_grad(embeddings.float())
            labels = distributed.gather(labels)
            loss = loss_fn(embeddings, torch.searchsorted(train_classes, labels))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"The loss became {loss.item()} at epoch {epoch}, step {steps + 1}; lower "
                                         f"optim.lr (now {lr}) or check the data for corrupt images.")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += loss.item()
            steps += 1
            if bar.disable:
                if steps % config.train.log_every == 0:
                    log(f"epoch {epoch} step {steps}/{len(loader)} loss {loss.item():.4f}")
            else:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        bar.close()
        scheduler.step()
        record: dict[str, Any] = {"epoch": epoch, "loss": total / max(steps, 1), "lr": lr}
        if config.eval.every and epoch % config.eval.every == 0 and info.is_main:
            record.update(evaluate(model, data.evaluation, config, device))
        if on_epoch_end is not None and info.is_main:
            rng = _get_rng_state()
            extra = on_epoch_end(epoch, model)
            _set_rng_state(rng)
            clash = sorted(set(extra or {}) & set(record))
            if clash:
                raise ValueError(f"on_epoch_end returned {clash}, which the trainer already records; rename them.")
            record.update(extra or {})
        history.append(record)
        if info.is_main:
            atomic_save_json({"epochs": history, "final": None}, out / "metrics.json")
            atomic_torch_save(_checkpoint(epoch, config, model, loss_fn, optimizer, scheduler, scaler, history),
                              ckpt_path)
            log(_summary(record, time.perf_counter() - started))
        distributed.barrier()
        if kill_after == epoch:
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))

    final: dict[str, Any] = dict(history[-1]) if history else {}
    if info.is_main:
        if not any(key not in ("epoch", "loss", "lr") for key in final):
            final.update(evaluate(model, data.evaluation, config, device))
        atomic_save_json({"epochs": history, "final": final}, out / "metrics.json")
        log("final: " + _summary(final, None))
    distributed.barrier()
    return final


def evaluate(model: nn.Module, data: Any, config: Config, device: torch.device) -> dict[str, float | int]:
    """Retrieval metrics of ``model`` under the evaluation protocol (``config.eval``: protocol, ks, include,
    batch_size; the protocols and their keys are in the module docstring).

    ``data`` is the :class:`~dml.train.pipeline.Evaluation` that :func:`dml.train.pipeline.build` makes, or the
    evaluation split alone (a dataset of fixed-size tensors or a ``DataLoader`` of ready batches), evaluated under
    ``config.eval.protocol`` resolved for ``config.data.name``: ``query-gallery`` then reads the dataset's
    ``is_query`` mask; ``hotels`` needs the training gallery and hence an ``Evaluation``.
    """
    if not isinstance(data, pipeline.Evaluation):
        data = _as_evaluation(data, config)
    batch, ks, include = config.eval.batch_size, tuple(config.eval.ks), tuple(config.eval.include)
    embeddings, labels = dml.eval.embed(model, data.data, batch_size=batch, device=device)
    if data.protocol == "self":
        metrics = dml.eval.retrieval_metrics(embeddings, labels, ks=ks, metric="cosine", include=include,
                                             seed=config.seed)
    elif data.protocol == "query-gallery":
        mask = np.asarray(data.is_query, dtype=bool)
        if len(mask) != len(labels):
            raise ValueError(f"is_query has {len(mask)} flags for {len(labels)} evaluation images; pass the mask "
                             "of the evaluated split.")
        q = torch.from_numpy(mask)
        metrics = dml.eval.query_gallery_metrics(embeddings[q], labels[mask], embeddings[~q], labels[~mask], ks=ks,
                                                 metric="cosine", include=include, seed=config.seed)
    elif data.protocol == "hotels":
        gallery, gallery_labels = dml.eval.embed(model, data.gallery, batch_size=batch, device=device)
        top = max(ks + dml.eval.hotels.CHAIN_KS)
        if top > len(gallery_labels):
            raise ValueError(f"Hotels-50K top-K accuracy needs K <= the gallery size ({len(gallery_labels)} training "
                             f"images); eval.ks is {list(ks)} and the chain accuracy uses K = "
                             f"{list(dml.eval.hotels.CHAIN_KS)}. Lower eval.ks or train on more images.")
        metrics = dml.eval.query_gallery_metrics(embeddings, labels, gallery, gallery_labels, ks=ks, metric="cosine",
                                                 include=include, seed=config.seed)
        metrics.update(dml.eval.hotel_retrieval_metrics(
            embeddings, gallery, labels, gallery_labels, data.chain_labels, data.gallery_chain_labels,
            metric="cosine", top=top, instance_ks=ks, chain_ks=dml.eval.hotels.CHAIN_KS))
    else:
        raise ValueError(f"Unknown evaluation protocol {data.protocol!r}; use one of {list(PROTOCOLS[1:])}.")
    return {key: value if isinstance(value, int) else float(value) for key, value in metrics.items()}


def _as_evaluation(data: Any, config: Config) -> pipeline.Evaluation:
    """Wrap a bare evaluation split for :func:`evaluate` under the config's protocol."""
    protocol = pipeline.resolve_protocol(config.data.name, config.eval.protocol)
    if protocol == "self":
        return pipeline.Evaluation(protocol, data)
    if protocol == "query-gallery":
        dataset = data.dataset if isinstance(data, DataLoader) else data
        is_query = getattr(dataset, "is_query", None)
        if is_query is None:
            raise ValueError(f"Protocol 'query-gallery' (eval.protocol={config.eval.protocol!r}) needs the "
                             f"evaluation split's is_query mask, which {type(dataset).__name__} does not have; pass "
                             "a dataset with is_query (e.g. dml.data.build('inshop', split='test')), a "
                             "dml.train.pipeline.Evaluation, or set eval.protocol=self.")
        return pipeline.Evaluation(protocol, data, is_query=np.asarray(is_query, dtype=bool))
    raise ValueError(f"Protocol {protocol!r} ranks the test split against the training images, so evaluate() needs "
                     "a dml.train.pipeline.Evaluation with the gallery (dml.train.pipeline.build makes it), not the "
                     "test split alone; or set eval.protocol=self.")


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
            flat["eval.protocol"] = pipeline.resolve_protocol(flat["data.name"], flat["eval.protocol"])
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


def _kill_after_epoch() -> int | None:
    value = os.environ.get(KILL_ENV)
    if not value:
        return None
    try:
        return int(value)
    except ValueError as err:
        raise ValueError(f"{KILL_ENV} must be an epoch number; got {value!r}. Unset it for a normal run.") from err


def _summary(record: dict[str, Any], seconds: float | None) -> str:
    parts = [f"{k} {v:.4f}" if isinstance(v, float) and not math.isnan(v) and k != "lr" else f"{k} {v}"
             for k, v in record.items() if not isinstance(v, (list, tuple, dict))]  # histograms: metrics.json only
    if seconds is not None:
        parts.append(f"({seconds:.1f} s)")
    return " | ".join(parts)


class _Logger:
    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, message: str) -> None:
        if self.enabled:
            tqdm.write(message, file=sys.stdout)
