"""The method registry behind a config's ``method: {name, kwargs}``."""

from __future__ import annotations

import pytest

from dml.train import ConfigError, Method, available_methods, build_method
from dml.train.methods import check_method


def test_the_registry_builds_methods_by_name_and_checks_their_keywords() -> None:
    assert {"metric", "divide_conquer"} <= set(available_methods())
    assert type(build_method("metric")) is Method
    assert build_method("divide_conquer", recluster_every=3).recluster_every == 3
    with pytest.raises(ConfigError, match="divide_conquer"):
        check_method("divide_and_conquer", [])
    with pytest.raises(ConfigError, match="recluster_every"):
        check_method("divide_conquer", ["recluster_evry"])
    with pytest.raises(ConfigError, match="metric"):
        check_method("metric", ["lr"])
