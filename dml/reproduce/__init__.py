"""Reproduction experiments: a paper's recipes as YAML next to its notebook, run over methods and seeds.

The parts every reproduction page shares live here, so that a page holds only its own experiment logic:

* :mod:`~dml.reproduce.experiment`: the experiment folder (:func:`load_experiment`), its profiles and
  ``dml train`` command lines, and :func:`find_root` for the default folders;
* :mod:`~dml.reproduce.runs`: :func:`run_methods` (reused or resumed runs), :func:`summarize`,
  :func:`epoch_curve`, :func:`save_full_run` / :func:`load_recorded`;
* :mod:`~dml.reproduce.tables`: published tables and the published-vs-recorded :func:`comparison_table`;
* :mod:`~dml.reproduce.probes`: the one module that calls into :mod:`dml.train` for the trainer's data,
  evaluation and initial model (:func:`probe`, :func:`test_evaluation`, :func:`epoch_zero`,
  :func:`train_diagnostics_callback`, the β log :class:`MarginBetaLog`); the integrator of a trainer API change
  re-points this module only;
* :mod:`~dml.reproduce.page`: :func:`quiet`, :func:`run_folder`, :func:`chance_recall`,
  :func:`curve_from_epoch_zero`, :func:`summary_table` (in :mod:`~dml.reproduce.tables`).
"""

from dml.reproduce.experiment import (
    DEVICES,
    RESERVED,
    Experiment,
    Profile,
    check_device,
    find_root,
    load_experiment,
)
from dml.reproduce.page import chance_recall, curve_from_epoch_zero, quiet, run_folder
from dml.reproduce.probes import (
    MarginBetaLog,
    epoch_zero,
    initial_model,
    probe,
    split_labels,
    test_evaluation,
    train_diagnostics_callback,
)
from dml.reproduce.runs import (
    EpochCallback,
    RunResult,
    epoch_curve,
    load_recorded,
    run_methods,
    save_full_run,
    summarize,
)
from dml.reproduce.tables import comparison_table, published_tables, summary_table

__all__ = [
    "DEVICES",
    "RESERVED",
    "EpochCallback",
    "Experiment",
    "MarginBetaLog",
    "Profile",
    "RunResult",
    "chance_recall",
    "check_device",
    "comparison_table",
    "curve_from_epoch_zero",
    "epoch_curve",
    "epoch_zero",
    "find_root",
    "initial_model",
    "load_experiment",
    "load_recorded",
    "probe",
    "published_tables",
    "quiet",
    "run_folder",
    "run_methods",
    "save_full_run",
    "split_labels",
    "summarize",
    "summary_table",
    "test_evaluation",
    "train_diagnostics_callback",
]
