"""dml data check: layout, counts against expected values, missing and (with --decode) corrupt files."""
from __future__ import annotations

import pytest

import dml.data
from dml.cli import main
from dml.data import catalog
from tests.fixtures.benchmarks import BUILDERS, make_cub, make_hotels, make_inshop, truncate


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_fixture_tree_passes_with_its_own_counts(name, tmp_path):
    tree = BUILDERS[name](tmp_path / name)
    report = dml.data.check(name, tree.root, expected=tree.expected, decode=True)
    assert report.ok, report.format()
    assert {k: report.counts[k] for k in tree.expected} == tree.expected
    assert report.decoded and report.missing == [] and report.corrupt == []
    assert report.format().endswith("OK")


def test_published_counts_are_the_default_and_a_tiny_tree_fails_them(tmp_path):
    tree = make_cub(tmp_path / "cub200", classes=(1, 101), per_class=1)
    report = dml.data.check("cub200", tree.root)
    assert report.expected == {"train": 5864, "test": 5924, "all": 11788}
    assert report.count_mismatches == {"train": (1, 5864), "test": (1, 5924), "all": (2, 11788)}
    assert not report.ok and "MISMATCH: expected 5,864" in report.format()


def test_published_counts_are_consistent():
    for info in catalog.CATALOG.values():
        parts = ("train", "query", "gallery") if info.name == "inshop" else ("train", "test")
        if info.exact_counts:
            assert sum(info.expected[p] for p in parts) == info.expected["all"], info.name
    assert catalog.INSHOP.expected["test"] == 14218 + 12612


def test_missing_files_are_listed_without_decoding(tmp_path):
    tree = make_inshop(tmp_path / "inshop")
    gone = [tree.files[0], tree.files[-1]]
    for path in gone:
        path.unlink()
    report = dml.data.check("inshop", tree.root, expected=tree.expected)
    assert sorted(report.missing) == sorted(gone) and not report.ok
    text = report.format()
    assert "2 missing file(s)" in text and str(gone[0]) in text and "add --decode" in text


def test_corrupt_files_need_decode(tmp_path):
    tree = make_cub(tmp_path / "cub200")
    broken = truncate(tree.files[4])
    assert dml.data.check("cub200", tree.root, expected=tree.expected).ok  # a truncated file still exists
    report = dml.data.check("cub200", tree.root, expected=tree.expected, decode=True)
    assert [path for path, _ in report.corrupt] == [broken] and not report.ok
    assert "1 corrupt file(s)" in report.format() and "truncated or corrupt" in report.format()


def test_hotels_counts_are_reported_not_enforced(tmp_path):
    tree = make_hotels(tmp_path / "hotels50k", missing_train=2)
    report = dml.data.check("hotels50k", tree.root)
    assert report.ok and not report.exact_counts and report.expected["train"] == 1027871
    text = report.format()
    assert "published: 1,027,871" in text and "2 images listed in train_set.csv" in text
    assert "test images with low occlusion: 4" in text


def test_missing_dataset_is_an_error_not_an_exception(tmp_path):
    report = dml.data.check("sop", tmp_path / "sop")
    assert not report.ok and "Ebay_train.txt" in report.error and "PROBLEMS" not in report.format()


def test_cli_exit_codes(tmp_path, capsys):
    tree = make_cub(tmp_path / "cub200", classes=(1, 101), per_class=1)
    assert main(["data", "check", "cub200", "--root", str(tree.root)]) == 1  # 2 images, not 11,788
    assert "MISMATCH" in capsys.readouterr().out
    hotels = make_hotels(tmp_path / "hotels50k")
    assert main(["data", "check", "hotels50k", "--root", str(hotels.root), "--decode"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("OK")
    assert main(["data", "check", "inshop", "--root", str(tmp_path / "none")]) == 1
    assert "list_eval_partition.txt" in capsys.readouterr().out
    assert main(["data", "check", "cars"]) == 2
