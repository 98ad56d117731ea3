"""A fair comparison: the protocol of "A Metric Learning Reality Check" (Musgrave, Belongie & Lim, ECCV 2020).

* :mod:`~dml.protocol.splits`: one run config per class-disjoint fold of the training classes
  (:mod:`dml.data.folds`), and the test split left alone;
* :mod:`~dml.protocol.stopping`: :class:`EarlyStopping` on validation MAP@R, keeping the best epoch's weights;
* :mod:`~dml.protocol.search`: Optuna search on validation MAP@R in a resumable SQLite study;
* :mod:`~dml.protocol.intervals`: t-intervals over seeds and bootstrap intervals over test queries;
* :mod:`~dml.protocol.spec`: the budget and search spaces of an experiment folder (``search.yaml``);
* :mod:`~dml.protocol.run`: :func:`run_protocol`, tune → retrain over seeds → test once (separated and
  concatenated).
"""

from dml.protocol.intervals import bootstrap_interval, t_interval
from dml.protocol.run import FoldModel, retrain, run_protocol, test_embeddings, test_report, train_fold, tune
from dml.protocol.search import check_space, finished_trials, open_study, overrides_of, search, suggest
from dml.protocol.spec import ProtocolSpec, Settings, load_spec
from dml.protocol.splits import fold_config, test_config
from dml.protocol.stopping import EarlyStopping

__all__ = [
    "EarlyStopping",
    "FoldModel",
    "ProtocolSpec",
    "Settings",
    "bootstrap_interval",
    "check_space",
    "finished_trials",
    "fold_config",
    "load_spec",
    "open_study",
    "overrides_of",
    "retrain",
    "run_protocol",
    "search",
    "suggest",
    "t_interval",
    "test_config",
    "test_embeddings",
    "test_report",
    "train_fold",
    "tune",
]
