"""Run configuration: nested dataclasses, loaded from YAML plus ``key.sub=value`` overrides, dumped back to YAML.

>>> config = load_config("configs/smoke_synthetic.yaml", ["optim.lr=0.01", "data.sampler.p=4"])

Every key is checked: an unknown key (in the file or an override) fails with its dotted path and the closest valid
name; a value of the wrong type fails with the expected type; a number that is not finite (``.inf``, ``.nan``, also
inside the free-form mappings) fails with its key before anything runs; a key written twice in one mapping (which
YAML would resolve silently, the last one winning) fails with both line numbers. Free-form mappings
(``data.kwargs``, ``model.backbone_kwargs``, ``loss.kwargs``) accept any key; the dataset, backbone or loss checks
them when built. Files and override values are read with :class:`UniqueKeyLoader`, a ``yaml.SafeLoader``: no tag
can construct a Python object.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dml.data.samplers import BATCHINGS
from dml.data.settings import CROPS, PIPELINES, AugmentConfig, ConfigError, DataConfig, SamplerConfig  # noqa: F401  (AugmentConfig, SamplerConfig: re-exported)
from dml.eval.protocol import PROTOCOLS
from dml.eval.retrieval import LONE_QUERIES
from dml.utils import atomic_write
from dml.utils.registry import did_you_mean

DEVICES = ("auto", "cpu", "cuda", "mps")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.YAMLError):
    """A YAML mapping sets the same key twice: ``path`` (dotted), first and second ``lines`` (1-based)."""

    def __init__(self, path: str, lines: tuple[int, int]) -> None:
        super().__init__(f"key {path!r} appears twice, on lines {lines[0]} and {lines[1]}")
        self.path, self.lines = path, lines


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises :class:`DuplicateKeyError` for a key repeated within one mapping.

    PyYAML keeps the last of two equal keys without a word, so ``lr: 0.1 ... lr: 0.5`` trains with 0.5. Keys that a
    merge (``<<: *base``) brings in may be overridden: only keys written in the mapping itself are compared.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        self._check_unique_keys(node, "", set())
        return super().construct_document(node)

    def _check_unique_keys(self, node: yaml.Node, path: str, seen: set[int]) -> None:
        if id(node) in seen:  # an alias to a node already checked (or a recursive structure)
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._check_unique_keys(item, f"{path}[{i}]", seen)
        if not isinstance(node, yaml.MappingNode):
            return
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                self._check_unique_keys(value_node, path, seen)
                continue
            key = self.construct_object(key_node)
            dotted = f"{path}.{key}" if path else str(key)
            line = key_node.start_mark.line + 1
            if key in lines:
                raise DuplicateKeyError(dotted, (lines[key], line))
            lines[key] = line
            self._check_unique_keys(value_node, dotted, seen)


@dataclass
class ModelConfig:
    backbone: str = "small_cnn"
    pretrained: bool = False
    embedding_dim: int = 64
    pooling: str = "avg"
    normalize: bool = True
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    learners: int = 1  # > 1: an ensemble of heads of embedding_dim outputs each (dml.models.ensemble)
    shared_backbone: bool = True  # an ensemble's heads on one backbone (true) or one backbone each (false)
    head: str = "linear"  # a registered head (dml.models.available_heads()): linear, split, cgd, diml
    head_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossConfig:
    name: str = "contrastive"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    loss_lr_multiplier: float = 1.0  # lr of the loss's own parameters (proxies, margin beta) = lr x this


@dataclass
class TrainConfig:
    epochs: int = 10
    log_every: int = 10


@dataclass
class EvalConfig:
    """Retrieval evaluation: ``recall@k`` for every ``k`` in ``ks`` and the metrics in ``include`` (see
    :mod:`dml.eval.retrieval`), every ``every`` epochs, embedding ``batch_size`` images at a time.

    ``protocol`` says who queries whom: ``"self"``, ``"query-gallery"``, ``"hotels"`` or ``"auto"`` (default:
    the dataset's own, :data:`dml.eval.AUTO_PROTOCOL`); the protocols and their metrics are described in
    :mod:`dml.eval.protocol`. ``at_start`` also evaluates the untrained model, recorded as epoch 0.
    ``lone_queries``: ``"exclude"`` (``recall@k`` over the queries with a positive) or ``"miss"`` (over all
    queries, as the released code of Xuan et al. computes it; :mod:`dml.eval.retrieval`).
    """

    ks: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    every: int = 1
    batch_size: int = 256
    include: list[str] = field(default_factory=lambda: ["recall", "map@r", "r_precision", "nmi"])
    protocol: str = "auto"
    at_start: bool = False
    lone_queries: str = "exclude"


@dataclass
class MethodConfig:
    """The training method (:mod:`dml.train.methods`): ``"metric"`` (plain metric learning) or a registered
    method such as ``"divide_conquer"``, with its keyword hyperparameters."""

    name: str = "metric"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Config:
    """A complete training run. ``eval.every = 0`` evaluates only once, after the last epoch.

    ``deterministic``: use deterministic kernels (``torch.use_deterministic_algorithms``, cuDNN without
    autotuning), which GPU runs need to be bit-reproducible. On the CPU it also disables the oneDNN convolutions
    (about 10x slower), while CPU runs with the same thread count are reproducible without it, so CPU configs may
    set it to false.
    """

    seed: int = 0
    deterministic: bool = True
    output_dir: str = "runs/default"
    device: str = "auto"
    amp: bool = False
    channels_last: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    method: MethodConfig = field(default_factory=MethodConfig)

    def validate(self) -> Config:
        """Check value ranges and choices that types alone do not capture; returns ``self``."""
        d, a = self.data, self.data.augment
        checks = [
            (self.device in DEVICES, "device", f"must be one of {list(DEVICES)}; got {self.device!r}"),
            (
                self.optim.name in OPTIMIZERS,
                "optim.name",
                f"must be one of {list(OPTIMIZERS)}; got {self.optim.name!r}",
            ),
            (self.optim.lr > 0, "optim.lr", f"must be > 0; got {self.optim.lr}"),
            (self.model.learners >= 1, "model.learners", f"must be >= 1; got {self.model.learners}"),
            (self.train.epochs >= 1, "train.epochs", f"must be >= 1; got {self.train.epochs}"),
            (self.train.log_every >= 1, "train.log_every", f"must be >= 1; got {self.train.log_every}"),
            (
                self.eval.every >= 0,
                "eval.every",
                f"must be >= 0 (0 = only after the last epoch); got {self.eval.every}",
            ),
            (self.eval.batch_size >= 1, "eval.batch_size", f"must be >= 1; got {self.eval.batch_size}"),
            (self.data.num_workers >= 0, "data.num_workers", f"must be >= 0; got {self.data.num_workers}"),
            (
                self.data.sampler.p >= 2,
                "data.sampler.p",
                f"must be >= 2 (a batch needs negatives); got {self.data.sampler.p}",
            ),
            (
                self.data.sampler.k >= 2,
                "data.sampler.k",
                f"must be >= 2 (a batch needs positives); got {self.data.sampler.k}",
            ),
            (all(k >= 1 for k in self.eval.ks), "eval.ks", f"must be positive integers; got {self.eval.ks}"),
            (
                self.eval.protocol in PROTOCOLS,
                "eval.protocol",
                f"must be one of {list(PROTOCOLS)}; got {self.eval.protocol!r}."
                f"{did_you_mean(self.eval.protocol, PROTOCOLS)} 'auto' picks the dataset's own protocol "
                "(query-gallery for inshop, hotels for hotels50k, self otherwise)",
            ),
            (
                self.eval.lone_queries in LONE_QUERIES,
                "eval.lone_queries",
                f"must be one of {list(LONE_QUERIES)}; got {self.eval.lone_queries!r} ('miss' divides recall by "
                "all queries, as the released code of Xuan et al. does)",
            ),
            (
                self.data.sampler.batching in BATCHINGS,
                "data.sampler.batching",
                f"must be one of {list(BATCHINGS)}; got {self.data.sampler.batching!r} ('released' cuts one "
                "stream of rounds into batches, as the released code of Xuan et al. does)",
            ),
            (
                d.pipeline in PIPELINES,
                "data.pipeline",
                f"must be one of {list(PIPELINES)}; got {d.pipeline!r}.{did_you_mean(d.pipeline, PIPELINES)}"
                " 'tensor' for datasets of fixed-size tensors (synthetic, digits), 'jpeg' or 'cached' for image files",
            ),
            (
                a.crop in CROPS,
                "data.augment.crop",
                f"must be one of {list(CROPS)}; got {a.crop!r}.{did_you_mean(a.crop, CROPS)}"
                " 'random' is the released recipe's RandomCrop",
            ),
            (a.size >= 1, "data.augment.size", f"must be >= 1; got {a.size}"),
            (
                a.resize is None or a.resize >= a.size,
                "data.augment.resize",
                f"must be null or >= data.augment.size ({a.size}) so that the crop fits; got {a.resize}",
            ),
            (0.0 <= a.flip <= 1.0, "data.augment.flip", f"is a probability in [0, 1]; got {a.flip}"),
            (
                a.test_resize >= a.size,
                "data.augment.test_resize",
                f"must be >= data.augment.size ({a.size}) so that the centre crop fits; got {a.test_resize}",
            ),
            (d.cache_size >= 1, "data.cache_size", f"must be >= 1; got {d.cache_size}"),
            (
                d.cache_workers >= 0,
                "data.cache_workers",
                f"must be >= 0 (0 decodes in this process); got {d.cache_workers}",
            ),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(f"Config key {key!r} {message}.")
        return self


def to_dict(config: Config) -> dict[str, Any]:
    """The config as plain nested dicts and lists."""
    return dataclasses.asdict(config)


def dump(config: Config, path: str | os.PathLike | None = None) -> str:
    """The config as YAML text; also written (atomically) to ``path`` if given."""
    text = yaml.safe_dump(to_dict(config), sort_keys=False, default_flow_style=None)
    if path is not None:
        with atomic_write(path, "w") as handle:
            handle.write(text)
    return text


def from_dict(data: dict[str, Any] | None) -> Config:
    """Build and validate a :class:`Config` from nested dicts (missing keys take their defaults)."""
    return _build(Config, data or {}, "").validate()


def load_config(path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML file (``None``: all defaults), apply ``key.sub=value`` overrides, build and validate.

    Override values are parsed with ``yaml.safe_load``, so ``optim.milestones=[5,8]``, ``model.pretrained=true``
    and ``data.root=null`` do what they look like.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"Config file {str(path)!r} is a folder; pass a YAML file (examples are in configs/).")
        if not path.is_file():
            raise ConfigError(f"Config file {str(path)!r} does not exist; check the path (examples are in configs/).")
        with open(path, encoding="utf-8") as handle:
            try:
                loaded = yaml.load(handle, Loader=UniqueKeyLoader)
            except UnicodeDecodeError as err:
                raise ConfigError(
                    f"Config file {str(path)!r} is not UTF-8 text (byte {err.start}: {err.reason}); is it a YAML file?"
                ) from None
            except DuplicateKeyError as err:
                raise ConfigError(
                    f"Config file {str(path)!r}: {err} (YAML would keep only the last); delete one of them."
                ) from err
            except yaml.YAMLError as err:
                raise ConfigError(f"Config file {str(path)!r} is not valid YAML: {err}") from err
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"Config file {str(path)!r} must contain a mapping of keys to values at the top level; "
                f"got a {type(loaded).__name__}."
            )
        data = loaded
    for override in overrides:
        apply_override(data, override)
    return from_dict(data)


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set ``data[k1][k2]... = yaml.safe_load(value)`` for an override ``k1.k2...=value`` (in place)."""
    if "=" not in override:
        raise ConfigError(f"Override {override!r} has no '='; write it as key.sub=value, e.g. optim.lr=0.01.")
    key, raw = override.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(
            f"Override {override!r} has an empty key part; write it as key.sub=value, e.g. optim.lr=0.01."
        )
    try:
        value = yaml.load(raw, Loader=UniqueKeyLoader) if raw.strip() else ""
    except DuplicateKeyError as err:
        raise ConfigError(f"Override {override!r}: the value sets {err.path!r} twice; keep one.") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"Override {override!r}: the value {raw!r} is not valid YAML ({err}).") from err
    _check_path(parts)
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(
                f"Override {override!r}: {'.'.join(parts[: i + 1])!r} is not a mapping, so it has no "
                f"key {parts[i + 1]!r}."
            )
        node = child
    node[parts[-1]] = value


def _check_path(parts: list[str]) -> None:
    """Fail early (with a suggestion) if a dotted override key does not exist in the schema."""
    cls: Any = Config
    for i, part in enumerate(parts):
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            if typing.get_origin(cls) is dict:
                return  # inside a free-form mapping such as data.kwargs
            raise ConfigError(
                f"Config key {'.'.join(parts[:i])!r} holds a single value, not a mapping, so "
                f"{'.'.join(parts)!r} does not exist; set {'.'.join(parts[:i])}=VALUE instead."
            )
        hints = typing.get_type_hints(cls)
        if part not in hints:
            _unknown_key(".".join(parts[:i]), part, list(hints))
        cls = hints[part]


def _unknown_key(prefix: str, key: str, valid: list[str]) -> None:
    dotted = f"{prefix}.{key}" if prefix else key
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean {(prefix + '.' if prefix else '') + close[0]!r}?" if close else ""
    where = f"in {prefix!r}" if prefix else "at the top level"
    raise ConfigError(f"Unknown config key {dotted!r}.{hint} Valid keys {where}: {valid}.")


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config key {prefix or '<top level>'!r} must be a mapping of keys to values; "
            f"got {data!r} ({type(data).__name__})."
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        if key not in hints:
            _unknown_key(prefix, str(key), list(hints))
        dotted = f"{prefix}.{key}" if prefix else key
        values[key] = _coerce(hints[key], value, dotted)
    return cls(**values)


def _coerce(tp: Any, value: Any, dotted: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert int -> float and numeric strings -> float."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, dotted)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, dotted)
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            _type_error(dotted, f"a list of {_name(args[0])}", value)
        return [_coerce(args[0], v, f"{dotted}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            _type_error(dotted, "a mapping", value)
        _check_finite(value, dotted)
        return dict(value)
    if tp is Any:
        _check_finite(value, dotted)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            _type_error(dotted, "a boolean (true or false)", value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _type_error(dotted, "an integer", value)
        return value
    if tp is float:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)  # YAML 1.1 reads "1e-3" (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _type_error(dotted, "a number", value)
        try:
            value = float(value)
        except OverflowError:  # an integer beyond the float range
            value = math.inf if value > 0 else -math.inf
        _check_finite(value, dotted)
        return value
    if tp is str:
        if not isinstance(value, str):
            _type_error(dotted, "a string", value)
        return value
    raise TypeError(f"Config schema error: unsupported annotation {tp!r} for {dotted!r}.")


def _check_finite(value: Any, dotted: str) -> None:
    """``ConfigError`` naming the key of the first infinite or NaN float in ``value`` (nested mappings and lists)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(
            f"Config key {dotted!r} must be a finite number; got {value}. Fix the value in the YAML file or the "
            "--set override (.inf and .nan are YAML's infinity and not-a-number)."
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{dotted}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_finite(item, f"{dotted}[{i}]")


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _type_error(dotted: str, expected: str, value: Any) -> None:
    raise ConfigError(
        f"Config key {dotted!r} must be {expected}; got {value!r} ({type(value).__name__}). "
        "Fix the value in the YAML file or the --set override."
    )
