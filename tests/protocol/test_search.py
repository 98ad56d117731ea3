"""The Optuna search: a study killed mid-trial (SIGKILL) resumes, completes its budget and repeats no finished trial;
its points are those of an uninterrupted search."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dml.protocol import check_space, finished_trials, open_study, overrides_of, search

REPO = Path(__file__).resolve().parents[2]
SPACE = {"loss.kwargs.margin": {"low": 0.01, "high": 0.5, "log": True}, "loss.kwargs.beta": {"low": 0.5, "high": 1.5}}

# A search whose objective logs each evaluated point (one JSON line) and, with KILL_AT=n, kills its own process with
# SIGKILL in the middle of the n-th objective call, after the point is suggested and before a value is returned.
SCRIPT = """
import json, os, signal, sys
from dml.protocol import search
log, kill_at = sys.argv[2], int(os.environ.get("KILL_AT", "0"))
space = json.loads(sys.argv[3])
calls = []
def objective(trial, point):
    calls.append(1)
    if len(calls) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    with open(log, "a") as handle:
        handle.write(json.dumps(point) + "\\n")
    return -(point["loss.kwargs.margin"] - 0.1) ** 2 - (point["loss.kwargs.beta"] - 1.0) ** 2
search(sys.argv[1], objective, name="demo", space=space, trials=6, seed=3)
"""


def _run(db: Path, log: Path, kill_at: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "KILL_AT": str(kill_at), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", SCRIPT, str(db), str(log), json.dumps(SPACE)]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _points(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_killed_study_resumes_and_completes_the_budget_without_repeating_finished_trials(tmp_path: Path) -> None:
    killed = _run(tmp_path / "study.db", tmp_path / "killed.log", kill_at=4)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = _points(tmp_path / "killed.log")
    assert len(before) == 3  # three trials finished, the fourth was killed mid-way
    resumed = _run(tmp_path / "study.db", tmp_path / "resumed.log")
    assert resumed.returncode == 0, resumed.stderr
    after = _points(tmp_path / "resumed.log")
    assert len(after) == 3  # only the missing trials: the interrupted one again, then two new ones
    assert not any(point in before for point in after)  # no finished trial repeated
    study = open_study(tmp_path / "study.db", name="demo")
    assert len(finished_trials(study)) == 6
    assert sum(bool(t.user_attrs.get("interrupted")) for t in study.trials) == 1
    calls = []

    def objective(trial, point):
        calls.append(point)
        return -((point["loss.kwargs.margin"] - 0.1) ** 2) - (point["loss.kwargs.beta"] - 1.0) ** 2

    search(tmp_path / "study.db", objective, name="demo", space=SPACE, trials=6, seed=3)
    assert calls == []  # a finished study trains nothing
    search(tmp_path / "whole.db", objective, name="demo", space=SPACE, trials=6, seed=3)
    assert calls == before + after  # an uninterrupted search suggests the same points


def test_space_and_overrides() -> None:
    check_space(SPACE)
    assert overrides_of({"loss.kwargs.margin": 0.25}) == ["loss.kwargs.margin=0.25"]
    with pytest.raises(ValueError, match="low < high"):
        check_space({"loss.kwargs.margin": {"low": 0.0, "high": 1.0, "log": True}})
    with pytest.raises(ValueError, match="low, high"):
        check_space({"loss.kwargs.margin": {"low": 0.0, "hi": 1.0}})
