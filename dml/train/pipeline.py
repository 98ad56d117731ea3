"""Temporary: removed once the notebooks use the new API (:mod:`dml.data.loaders`, :mod:`dml.eval.protocol`).

Maps the old ``Config``-taking calls onto the new ones; nothing in ``dml/`` imports it.
"""
from __future__ import annotations

from typing import Any

import torch

from dml.data.loaders import Pipeline, build_loaders, whole_classes
from dml.data.loaders import evaluation_split as _evaluation_split
from dml.eval.protocol import PROTOCOL_ARRAY, Evaluation, resolve_protocol

__all__ = ["PROTOCOL_ARRAY", "Evaluation", "build", "evaluation_split", "resolve_protocol", "whole_classes"]


def build(config: Any, *, info: Any, device: torch.device) -> Pipeline:
    """``dml.data.build_loaders(config.data, protocol=config.eval.protocol, ...)``."""
    return build_loaders(config.data, protocol=config.eval.protocol, seed=config.seed,
                         eval_batch_size=config.eval.batch_size, rank=info.rank, world_size=info.world_size,
                         is_main=info.is_main, device=device)


def evaluation_split(config: Any, split: str, *, device: torch.device | str = "cpu", max_items: int | None = None,
                     seed: int = 0) -> tuple[Any, Any]:
    """``dml.data.evaluation_split(config.data, split, batch_size=config.eval.batch_size, ...)``."""
    return _evaluation_split(config.data, split, batch_size=config.eval.batch_size, device=device,
                             max_items=max_items, seed=seed)
