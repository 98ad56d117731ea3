"""The README's "Your own images" commands, run exactly as written on a generated folder of images."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.fixtures.user_images import make_image_folder

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Your own images: train, evaluate, index, search, report", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_the_readme_commands_train_evaluate_index_search_and_report(tmp_path: Path) -> None:
    commands = readme_commands()
    assert [shlex.split(c)[1] for c in commands] == ["train", "eval", "index", "search"]
    make_image_folder(tmp_path / "my_photos", classes=8, per_class=6)
    (tmp_path / "configs").symlink_to(REPO / "configs")
    (tmp_path / "data").mkdir()
    env = {**os.environ, "DML_DATA": str(tmp_path / "data"), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == ".venv/bin/dml"
        done = subprocess.run(
            [sys.executable, "-m", "dml.cli", *argv[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    run = tmp_path / "runs" / "my_photos"
    assert (run / "split.csv").is_file() and json.loads((run / "eval-test.json").read_text())["metrics"]["recall@1"] > 0
    results = tmp_path / "runs" / "my_photos_search"
    record = json.loads((results / "results.json").read_text())
    assert len(record["queries"]) == 6 and all(len(q["matches"]) == 10 for q in record["queries"])
    assert "<img" in (results / "report.html").read_text()
    assert not list((tmp_path / "my_photos").glob("*.*"))  # nothing written into the user's folder
