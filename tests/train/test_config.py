"""Config loading: defaults, YAML files, dotted overrides, unknown keys with suggestions, types, dump round trip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from dml.train import Config, ConfigError, dump, from_dict, load_config, preflight, to_dict
from dml.train.config import UniqueKeyLoader

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_and_file_values(tmp_path: Path) -> None:
    assert load_config(None) == Config()
    config = load_config(_write(tmp_path, "seed: 3\noptim: {name: sgd, lr: 0.05}\ndata: {sampler: {p: 4}}\n"))
    assert (config.seed, config.optim.name, config.optim.lr, config.data.sampler.p) == (3, "sgd", 0.05, 4)
    assert config.data.sampler.k == Config().data.sampler.k  # untouched keys keep their defaults


def test_overrides_are_parsed_as_yaml_and_applied_after_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "optim: {lr: 0.05}\n")
    config = load_config(
        path,
        [
            "optim.lr=0.1",
            "optim.milestones=[3, 6]",
            "model.pretrained=true",
            "data.root=null",
            "data.kwargs.num_classes=10",
            "output_dir=runs/x=y",
            "loss.kwargs={margin: 0.3}",
            "eval.ks=[1]",
        ],
    )
    assert config.optim.lr == 0.1 and config.optim.milestones == [3, 6]
    assert config.model.pretrained is True and config.data.root is None
    assert config.data.kwargs == {"num_classes": 10}
    assert config.output_dir == "runs/x=y"  # only the first '=' separates key and value
    assert config.loss.kwargs == {"margin": 0.3} and config.eval.ks == [1]


def test_numbers_written_without_a_dot_are_accepted_for_floats() -> None:
    # YAML 1.1 (PyYAML) reads 1e-3 as the string "1e-3"
    assert load_config(None, ["optim.lr=1e-3"]).optim.lr == pytest.approx(1e-3)
    lr = load_config(None, ["optim.lr=1"]).optim.lr
    assert lr == 1.0 and isinstance(lr, float)


@pytest.mark.parametrize(
    "override,pattern",
    [
        ("optim.lrr=0.1", r"Unknown config key 'optim.lrr'\. Did you mean 'optim.lr'\?"),
        ("optm.lr=0.1", r"Unknown config key 'optm'\. Did you mean 'optim'\?"),
        ("data.sampler.kk=4", r"'data.sampler.kk'\. Did you mean 'data.sampler.k'\?"),
        ("train.epochs.x=1", r"'train.epochs' holds a single value"),
        ("zzz=1", r"Unknown config key 'zzz'\. Valid keys at the top level"),
    ],
)
def test_unknown_override_keys_name_the_path_and_a_suggestion(override: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, [override])


def test_unknown_yaml_keys_name_the_path_and_a_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, "model:\n  embeding_dim: 32\n")
    with pytest.raises(
        ConfigError,
        match=r"Unknown config key 'model.embeding_dim'\. Did you mean "
        r"'model.embedding_dim'\?.*Valid keys in 'model'",
    ):
        load_config(path)


@pytest.mark.parametrize(
    "override,pattern",
    [
        ("train.epochs=1.5", r"'train.epochs' must be an integer; got 1.5"),
        ("train.epochs=true", r"'train.epochs' must be an integer; got True"),
        ("optim.lr=fast", r"'optim.lr' must be a number; got 'fast'"),
        ("model.normalize=1", r"'model.normalize' must be a boolean"),
        ("eval.ks=4", r"'eval.ks' must be a list of int"),
        ("eval.ks=[1, two]", r"'eval.ks\[1\]' must be an integer"),
        ("data.kwargs=3", r"'data.kwargs' must be a mapping"),
        ("data=3", r"'data' must be a mapping"),
        ("model.backbone=3", r"'model.backbone' must be a string"),
        ("optim.name=lbfgs", r"'optim.name' must be one of \['sgd', 'adam', 'adamw', 'rmsprop'\]"),
        ("device=tpu", r"'device' must be one of"),
        ("data.sampler.k=1", r"'data.sampler.k' must be >= 2"),
        ("data.sampler.batching=stream", r"'data.sampler.batching' must be one of \['per-round', 'released'\]"),
        ("eval.lone_queries=drop", r"'eval.lone_queries' must be one of \['exclude', 'miss'\]"),
        ("optim.lr", r"has no '='"),
    ],
)
def test_bad_values_fail_with_the_key_and_the_expected_type(override: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, [override])


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping of keys to values at the top level"):
        load_config(_write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "seed: [1, 2\n"))
    assert load_config(_write(tmp_path, "")) == Config()
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"seed: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(byte 6"):
        load_config(binary)
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


def test_dump_and_load_round_trip(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "smoke_synthetic.yaml", ["optim.lr=0.02", "data.kwargs.num_classes=10"])
    path = tmp_path / "resolved.yaml"
    text = dump(config, path)
    assert path.read_text() == text
    assert load_config(path) == config
    assert from_dict(yaml.safe_load(text)) == config
    assert to_dict(config)["data"]["sampler"]["p"] == config.data.sampler.p


@pytest.mark.parametrize("name", ["smoke_synthetic.yaml", "digits.yaml"])
def test_example_configs_load_and_pass_preflight(name: str) -> None:
    preflight(load_config(CONFIGS / name))


@pytest.mark.parametrize(
    "override,pattern",
    [
        ("loss.name=tripet", r"'loss.name': unknown value 'tripet'\. Did you mean 'triplet'\?"),
        ("loss.kwargs={margn: 0.1}", r"\['margn'\] are not hyperparameters of loss 'contrastive'"),
        ("model.backbone=resnet", r"'model.backbone': unknown value 'resnet'"),
        ("model.pooling=mean", r"'model.pooling': unknown value 'mean'"),
        ("data.name=mnist", r"'data.name': unknown value 'mnist'"),
    ],
)
def test_preflight_checks_registry_names(override: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        preflight(load_config(None, [override]))


@pytest.mark.parametrize(
    "override,key",
    [
        ("optim.lr=.inf", "optim.lr"),
        ("optim.lr=inf", "optim.lr"),
        ("optim.lr=.nan", "optim.lr"),
        ("optim.gamma=-.inf", "optim.gamma"),
        ("data.augment.flip=.nan", "data.augment.flip"),
        ("loss.kwargs={margin: .inf}", "loss.kwargs.margin"),
        ("data.kwargs.weights=[1.0, .nan]", "data.kwargs.weights[1]"),
        ("optim.lr=1e400", "optim.lr"),
        (f"optim.lr={10**400}", "optim.lr"),
    ],
)
def test_non_finite_numbers_are_refused_up_front_naming_the_key(override: str, key: str) -> None:
    """An infinite learning rate used to surface an epoch later as "embeddings contain NaN"."""
    with pytest.raises(ConfigError, match=rf"Config key '{re.escape(key)}' must be a finite number; got -?(inf|nan)"):
        load_config(None, [override])


def test_non_finite_numbers_in_a_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'optim.weight_decay' must be a finite number; got nan"):
        load_config(_write(tmp_path, "optim:\n  lr: 0.1\n  weight_decay: .NaN\n"))


def test_duplicate_yaml_keys_are_refused_naming_the_key_and_both_lines(tmp_path: Path) -> None:
    text = "seed: 1\noptim:\n  lr: 0.1\n  momentum: 0.9\n  lr: 0.5\ndata: {name: synthetic}\n"
    with pytest.raises(ConfigError, match=r"key 'optim.lr' appears twice, on lines 3 and 5"):
        load_config(_write(tmp_path, text))
    with pytest.raises(ConfigError, match=r"key 'seed' appears twice, on lines 1 and 3"):
        load_config(_write(tmp_path, "seed: 1\ndata: {name: synthetic}\nseed: 2\n"))
    with pytest.raises(ConfigError, match=r"key 'data.augment.size' appears twice, on lines 2 and 2"):
        load_config(_write(tmp_path, "data:\n  augment: {size: 32, flip: 0.5, size: 64}\n"))
    with pytest.raises(ConfigError, match=r"Override 'loss.kwargs=\{margin: 0.1, margin: 0.2\}'.*'margin' twice"):
        load_config(None, ["loss.kwargs={margin: 0.1, margin: 0.2}"])
    # Merge keys override the merged mapping on purpose: not a duplicate. Safe loading still refuses tags.
    merged = "base: &b {lr: 0.1, gamma: 0.5}\n"
    loaded = yaml.load(merged + "optim: {<<: *b, lr: 0.2}\n", Loader=UniqueKeyLoader)
    assert loaded["optim"] == {"lr": 0.2, "gamma": 0.5}
    with pytest.raises(yaml.YAMLError):
        yaml.load("seed: !!python/object/apply:os.system ['echo hacked']\n", Loader=UniqueKeyLoader)
    assert issubclass(UniqueKeyLoader, yaml.SafeLoader)
