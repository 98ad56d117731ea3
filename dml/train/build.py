"""Building a run from its config: the device, the model, the loss, the optimiser, and the checks before anything
slow happens (:func:`preflight`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

import dml.data
import dml.gradients  # registers the loss 'gradient_surgery', built from gradient elements)
import dml.losses
import dml.models
from dml.data.loaders import check_pipeline
from dml.data.registry import check_keywords
from dml.train.checkpoint import load_checkpoint
from dml.train.config import Config, ConfigError, OptimConfig, from_dict
from dml.utils.registry import did_you_mean


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; an explicit but unavailable device is an error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if name == "cuda":
        if not cuda:
            raise RuntimeError(
                "device 'cuda' was requested but torch.cuda.is_available() is False; "
                "set device to 'auto' or 'cpu' (--set device=cpu)."
            )
        return torch.device("cuda", local_rank)
    if name == "mps" and not mps:
        raise RuntimeError(
            "device 'mps' was requested but torch.backends.mps.is_available() is False; "
            "set device to 'auto' or 'cpu' (--set device=cpu)."
        )
    return torch.device(name)


def build_optimizer(params: list[nn.Parameter] | list[dict[str, Any]], config: OptimConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov-free, with ``momentum``), Adam, AdamW or RMSprop; ``momentum`` is used by SGD and RMSprop.

    ``params`` is a list of parameters or of parameter groups (dicts with their own ``lr``), as torch accepts.
    """
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.name == "rmsprop":  # the Reality-Check protocol's optimiser (momentum 0.9 there)
        return torch.optim.RMSprop(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise ValueError(f"Unknown optimizer {config.name!r}; choose one of 'sgd', 'adam', 'adamw', 'rmsprop'.")


def build_loss(config: Config, *, num_classes: int, feature_dim: int | None = None) -> nn.Module:
    """The loss of ``config.loss``. A proxy loss (:class:`dml.losses.ProxyLoss`) left with ``num_classes`` or
    ``embedding_dim`` unset gets the training split's class count and ``config.model.embedding_dim``; so does a
    loss marked ``sized_by_run`` (``cgd``), which also gets ``feature_dim`` (the model head's ``auxiliary_dim``)."""
    kwargs = dict(config.loss.kwargs)
    cls = dml.losses.loss_class(config.loss.name)
    if getattr(cls, "sized_by_run", False) and kwargs.get("feature_dim") is None:
        kwargs["feature_dim"] = feature_dim or None
    if issubclass(cls, dml.losses.ProxyLoss) or getattr(cls, "sized_by_run", False):
        if kwargs.get("num_classes") is None:
            kwargs["num_classes"] = num_classes
        if kwargs.get("embedding_dim") is None:
            kwargs["embedding_dim"] = config.model.embedding_dim
    sizes = {"num_classes": num_classes, "embedding_dim": config.model.embedding_dim, "learners": config.model.learners}
    for key in getattr(dml.losses.loss_class(config.loss.name), "run_sizes", ()):  # sizes a loss takes from the run
        if kwargs.get(key) is None:
            kwargs[key] = sizes[key]
    return dml.losses.build(config.loss.name, **kwargs)


def build_model(config: Config) -> nn.Module:
    """The embedding model described by ``config.model`` (and ``config.channels_last``): an
    :class:`~dml.models.EmbeddingModel`, or with ``model.learners > 1`` a :class:`~dml.models.LearnerEnsemble`."""
    m = config.model
    common = dict(
        embedding_dim=m.embedding_dim,
        pooling=m.pooling,
        normalize=m.normalize,
        pretrained=m.pretrained,
        channels_last=config.channels_last,
        backbone_kwargs=m.backbone_kwargs,
    )
    if m.learners > 1:
        return dml.models.build_ensemble(m.backbone, learners=m.learners, shared_backbone=m.shared_backbone, **common)
    return dml.models.build(m.backbone, head=m.head, head_kwargs=m.head_kwargs, **common)


def load_model(run_dir: str | os.PathLike, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the trained model of a run folder from its ``checkpoint.pt`` (in eval mode).

    The checkpoint is verified against the SHA-256 in the folder's ``manifest.json`` and read with
    ``weights_only=True``, so a folder from anywhere can be opened without running its code
    (:func:`dml.train.checkpoint.load_checkpoint`; :class:`~dml.train.checkpoint.CheckpointError` otherwise)."""
    state = load_checkpoint(Path(run_dir) / "checkpoint.pt")
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
        ("model.head", config.model.head, dml.models.available_heads()),
        ("loss.name", config.loss.name, dml.losses.available()),
    ]
    for key, value, choices in checks:
        if value not in choices:
            raise ConfigError(
                f"Config key {key!r}: unknown value {value!r}.{did_you_mean(value, choices)} Choose one of {choices}."
            )
    check_pipeline(config.data, config.eval.protocol)
    valid = dml.losses.hyperparameters(config.loss.name)
    unknown = sorted(set(config.loss.kwargs) - set(valid))
    if unknown:
        raise ConfigError(
            f"Config key 'loss.kwargs': {unknown} are not hyperparameters of loss "
            f"{config.loss.name!r}; valid ones (with defaults): {valid}."
        )
    try:
        check_keywords(config.data.name, config.data.kwargs)
    except TypeError as err:
        raise ConfigError(f"Config key 'data.kwargs': {err}") from err
    from dml.train.methods import check_method  # the registry imports dml.train.config, as this module does

    check_method(config.method.name, config.method.kwargs)
