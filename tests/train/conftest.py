"""Fixtures of the trainer's tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.train.test_resume import TINY


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "data": {**TINY["data"], "root": str(tmp_path / "data")}}))
    return path
