"""inshop: train / query / gallery from Eval/list_eval_partition.txt, how they map onto split= and subset=."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import dml.data
import dml.eval
from dml.data import DatasetNotFoundError
from tests.fixtures.benchmarks import make_inshop


@pytest.fixture(scope="module")
def inshop(tmp_path_factory):
    return make_inshop(tmp_path_factory.mktemp("data") / "inshop", train_items=3, test_items=2, per_item=2)


def build(root, split="train", **kw):
    return dml.data.build("inshop", split=split, root=root, **kw)


def test_partitions(inshop):
    train, query, gallery = build(inshop.root), build(inshop.root, "test", subset="query"), \
        build(inshop.root, "test", subset="gallery")
    assert (len(train), len(query), len(gallery)) == (inshop.expected["train"], inshop.expected["query"],
                                                      inshop.expected["gallery"]) == (6, 4, 4)
    assert set(train.labels) == {1, 2, 3} and set(query.labels) == set(gallery.labels) == {4, 5}
    assert set(train.status) == {"train"} and query.is_query.all() and not gallery.is_query.any()
    assert not set(map(str, query.paths)) & set(map(str, gallery.paths))


def test_test_split_is_queries_then_gallery(inshop):
    test = build(inshop.root, "test")
    query, gallery = build(inshop.root, "test", subset="query"), build(inshop.root, "test", subset="gallery")
    assert test.paths == query.paths + gallery.paths
    assert test.is_query.tolist() == [True] * len(query) + [False] * len(gallery)
    everything = build(inshop.root, "all")
    assert len(everything) == inshop.expected["all"] and sorted(map(str, everything.paths)) == sorted(
        map(str, inshop.files))


def test_query_gallery_evaluation_on_one_embedding_pass(inshop):
    """The documented recipe: embed split='test' once, then rank queries against the gallery only."""
    test = build(inshop.root, "test")
    emb = np.eye(8)[test.labels]  # a perfect embedding: one direction per item
    result = dml.eval.query_gallery_metrics(emb[test.is_query], test.labels[test.is_query],
                                            emb[~test.is_query], test.labels[~test.is_query], ks=(1,),
                                            include=("recall",))
    assert result["recall@1"] == 1.0 and result["num_queries"] == 4 and result["num_queries_without_positives"] == 0


@pytest.mark.parametrize("split,subset,message", [("train", "query", "pass split='test'"),
                                                  ("test", "probe", "Unknown subset")])
def test_bad_subset(inshop, split, subset, message):
    with pytest.raises(ValueError, match=message):
        build(inshop.root, split, subset=subset)


def test_images_directly_under_root_also_work(tmp_path):
    tree = make_inshop(tmp_path / "inshop", train_items=1, test_items=1, per_item=1)
    shutil.move(tree.root / "Img" / "img", tree.root / "img")
    (tree.root / "Img").rmdir()
    assert all(p.is_file() for p in build(tree.root, "all").paths)


def test_count_line_must_match(tmp_path):
    tree = make_inshop(tmp_path / "inshop", train_items=1, test_items=1, per_item=1)
    partition = tree.root / "Eval" / "list_eval_partition.txt"
    lines = partition.read_text().splitlines()
    partition.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="declares '3' images on line 1 but lists 2"):
        build(tree.root)


def test_missing_partition_file(tmp_path):
    tree = make_inshop(tmp_path / "inshop", train_items=1, test_items=1, per_item=1)
    (tree.root / "Eval" / "list_eval_partition.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"list_eval_partition\.txt.*\n(.*\n)*.*img\.zip"):
        build(tree.root)
