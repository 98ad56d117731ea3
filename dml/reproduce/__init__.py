"""Reproduction experiments: a paper's recipes as YAML next to its notebook, run over methods and seeds.

The parts every reproduction page shares live here, so that a page holds only its own experiment logic:

* :mod:`~dml.reproduce.experiment`: the experiment folder (:func:`load_experiment`), its profiles and
  ``dml train`` command lines, and :func:`find_root` for the default folders;
* :mod:`~dml.reproduce.runs`: :func:`run_methods` (reused or resumed runs), :func:`summarize`,
  :func:`epoch_curve`, :func:`save_full_run` / :func:`load_recorded`;
* :mod:`~dml.reproduce.tables`: published tables and the published-vs-recorded :func:`comparison_table`;
* :mod:`~dml.reproduce.probes`: the one module that calls into :mod:`dml.train` for the trainer's data,
  evaluation and initial model (:func:`probe`, :func:`test_evaluation`, :func:`epoch_zero`).
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
from dml.reproduce.runs import (
                                      EpochCallback,
                                      RunResult,
                                      epoch_curve,
                                      load_recorded,
                                      run_methods,
                                      save_full_run,
                                      summarize,
)
from dml.reproduce.tables import comparison_table, published_tables

__all__ = ["DEVICES", "RESERVED", "EpochCallback", "Experiment", "Profile", "RunResult", "check_device",
           "comparison_table", "epoch_curve", "find_root", "load_experiment", "load_recorded", "published_tables",
           "run_methods", "save_full_run", "summarize"]
