"""``safe_extract`` into a folder that already holds symlinks: a member is never written through a link that leads
out of the folder, for zip and tar alike, and nothing is extracted from a refused archive."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from dml.data.extract import UnsafeArchiveError, safe_extract


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as handle:
        for name, text in members.items():
            handle.writestr(name, text)
    return path


def _tar(path: Path, members: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


@pytest.fixture(params=["zip", "tar"])
def make_archive(request: pytest.FixtureRequest):
    return (lambda path, members: _zip(path.with_suffix(".zip"), members)) if request.param == "zip" else (
        lambda path, members: _tar(path.with_suffix(".tgz"), members)
    )


@pytest.mark.parametrize("link_name,member", [("data", "data/.bashrc"), ("notes.txt", "notes.txt")],
                         ids=["folder-link", "file-link"])
def test_a_member_through_an_existing_symlink_out_of_the_folder_is_refused(
    tmp_path: Path, make_archive, link_name: str, member: str
) -> None:
    outside, out = tmp_path / "outside", tmp_path / "out"
    outside.mkdir()
    out.mkdir()
    (outside / "notes.txt").write_text("mine")
    os.symlink(outside if link_name == "data" else outside / "notes.txt", out / link_name)
    archive = make_archive(tmp_path / "evil", {"first.txt": "1", member: "evil"})
    with pytest.raises(UnsafeArchiveError, match=rf"member '{member}' would be written to .*outside .*through the "
                                                 rf"symlink .*{link_name} -> .*that already exists"):
        safe_extract(archive, out)
    assert sorted(p.name for p in outside.iterdir()) == ["notes.txt"] and (outside / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == [link_name]  # nothing extracted, not even the first member


def test_symlinks_that_stay_inside_and_a_symlinked_destination_are_fine(tmp_path: Path, make_archive) -> None:
    real = tmp_path / "disk" / "data"
    (real / "v2").mkdir(parents=True)
    os.symlink(real, tmp_path / "data")  # the destination itself is a link (e.g. data -> /mnt/big/data)
    os.symlink("v2", real / "latest")  # a link inside the folder, to a folder inside it
    archive = make_archive(tmp_path / "ok", {"latest/x.txt": "x"})
    assert safe_extract(archive, tmp_path / "data") == ["latest/x.txt"]
    assert (real / "v2" / "x.txt").read_text() == "x"
