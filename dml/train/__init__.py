"""Training: the config schema, the training loop and multi-process (DDP) helpers.

>>> from dml.train import load_config, train
>>> final = train(load_config("configs/smoke_synthetic.yaml", ["train.epochs=1"]))
"""
from dml.train.config import Config, ConfigError, dump, from_dict, load_config, to_dict
from dml.train.trainer import build_model, build_optimizer, evaluate, load_model, preflight, resolve_device, train

__all__ = [
    "Config",
    "ConfigError",
    "build_model",
    "build_optimizer",
    "dump",
    "evaluate",
    "from_dict",
    "load_config",
    "load_model",
    "preflight",
    "resolve_device",
    "to_dict",
    "train",
]
