"""``torchrun`` across two "nodes": two launchers of one process each, on 127.0.0.1 with the gloo backend.

Each launcher is what one machine of a multi-node job runs (README, "Training on several machines"):
``torchrun --nnodes=2 --nproc_per_node=1 --node_rank=R --rdzv_endpoint=HOST:PORT -m dml.cli train CONFIG``. The two
processes join one process group (ranks 0 and 1), share every P×K batch, and end with the parameters of the same
run in a single process; only rank 0 (node 0) writes the run's files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from dml.train import load_config, load_model, train
from tests.pages import REPO
from tests.train.test_distributed import TINY_DDP as OVERRIDES
from tests.train.test_distributed import _free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),  # about 15 s on 2 idle cores; mostly the four interpreters' torch imports
    pytest.mark.skipif(
        not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo is unavailable"
    ),
]


def _node(node_rank: int, port: int, output_dir: Path, data_root: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes=2", "--nproc_per_node=1", f"--node_rank={node_rank}", f"--rdzv_endpoint=127.0.0.1:{port}",
        "-m", "dml.cli", "train", str(REPO / "configs" / "smoke_synthetic.yaml"),
        "--output-dir", str(output_dir), "--set", f"data.root={data_root}",
        *[arg for override in OVERRIDES for arg in ("--set", override)],
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_nodes_of_one_process_train_as_one_process(tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    data_root.mkdir()
    port = _free_port()
    nodes = [_node(rank, port, tmp_path / f"node{rank}", data_root) for rank in (0, 1)]
    try:
        outputs = [node.communicate(timeout=200)[0] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    for rank, (node, output) in enumerate(zip(nodes, outputs)):
        assert node.returncode == 0, f"node {rank} failed:\n{output[-3000:]}"
    assert (tmp_path / "node0" / "metrics.json").is_file()
    assert not (tmp_path / "node1").exists() or not any((tmp_path / "node1").iterdir()), "only rank 0 writes"

    single = load_config(
        str(REPO / "configs" / "smoke_synthetic.yaml"),
        [*OVERRIDES, f"output_dir={tmp_path / 'single'}", f"data.root={data_root}"],
    )
    torch.set_num_threads(1)
    train(single)
    expected, got = load_model(tmp_path / "single").state_dict(), load_model(tmp_path / "node0").state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-5, msg=f"parameter {key} differs")
