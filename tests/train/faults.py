"""Fault injection for the resume tests: a callback that SIGKILLs the process right after an epoch's checkpoint.

``python -m tests.train.faults EPOCH MODULE:FUNCTION`` is not needed: a test's subprocess script calls
:func:`kill_train_after` first, so every later ``dml.train.train`` call (also one made inside ``dml.reproduce``)
carries the callback.
"""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path

import dml.train
from dml.train.callbacks import Callback


class KillAfterEpoch(Callback):
    """SIGKILL (SIGTERM where there is none) the process once epoch ``epoch``'s checkpoint is written."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_checkpoint(self, epoch: int, path: Path) -> None:
        if epoch == self.epoch:
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def kill_train_after(epoch: int) -> None:
    """Make ``dml.train.train`` add :class:`KillAfterEpoch` ``(epoch)`` to its callbacks (in this process)."""
    original = dml.train.train

    @functools.wraps(original)
    def train(*args, callbacks=(), **kwargs):
        return original(*args, callbacks=(*callbacks, KillAfterEpoch(epoch)), **kwargs)

    dml.train.train = train


def script(epoch: int) -> str:
    """The first lines of a subprocess script that trains with the fault (run with ``cwd`` = the repository)."""
    return f"from tests.train.faults import kill_train_after\nkill_train_after({epoch})\n"
