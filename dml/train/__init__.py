"""Training: the config schema, the training loop and multi-process (DDP) helpers.

* :mod:`dml.train.build`: device, model, loss, optimiser, :func:`preflight`;
* :mod:`dml.train.trainer`: :func:`train`, the loop; :mod:`dml.train.callbacks`: its hooks (:class:`Callback`,
  :class:`Method`); :mod:`dml.train.checkpoint`: saving, loading, resuming, RNG state.

>>> from dml.train import load_config, train
>>> final = train(load_config("configs/smoke_synthetic.yaml", ["train.epochs=1"]))
"""

from dml.train import divide_conquer  # noqa: F401  (registers the method "divide_conquer")
from dml.train.build import (
    build_loss,
    build_model,
    build_optimizer,
    load_model,
    preflight,
    resolve_device,
)
from dml.train.callbacks import Callback, Method
from dml.train.config import Config, ConfigError, dump, from_dict, load_config, to_dict
from dml.train.methods import available_methods, build_method, register_method
from dml.train.trainer import evaluate, train

__all__ = [
    "Callback",
    "Config",
    "ConfigError",
    "Method",
    "available_methods",
    "build_loss",
    "build_method",
    "build_model",
    "build_optimizer",
    "dump",
    "evaluate",
    "from_dict",
    "load_config",
    "load_model",
    "preflight",
    "register_method",
    "resolve_device",
    "to_dict",
    "train",
]
