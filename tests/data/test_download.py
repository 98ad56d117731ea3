"""dml data download: resumable verified transfers from a local HTTP server, safe and atomic extraction.

Every transfer goes to a ``http.server`` on 127.0.0.1 started in a thread; its handler implements ``Range``
requests and can drop the connection part-way, as a flaky network would. No test touches an outside address.
"""
from __future__ import annotations

import errno
import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

import dml.data
from dml.cli import MANUAL_DOWNLOAD, main
from dml.data import catalog
from dml.data.downloader import ChecksumError, DownloadError, LocalWriteError, fetch, install_archive
from dml.data.extract import UnsafeArchiveError, safe_extract
from tests.fixtures.benchmarks import make_cub_archive, make_sop


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start, status = 0, 200
        header = self.headers.get("Range")
        if header and server.ranges:
            start = int(header.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if server.drops > 0:  # send part of the body, then cut the connection without finishing
            server.drops -= 1
            self.wfile.write(payload[: server.cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests, httpd.drops, httpd.cut, httpd.ranges = {}, [], 0, 0, True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


PAYLOAD = bytes(range(256)) * 1200  # 300 KiB


def test_fetch_streams_with_a_progress_bar_and_verifies(server, tmp_path, capsys):
    server.files["/blob.bin"] = PAYLOAD
    path = fetch(f"{server.url}/blob.bin", tmp_path / "blob.bin", md5=md5(PAYLOAD),
                 sha256=hashlib.sha256(PAYLOAD).hexdigest(), chunk_size=16384)
    assert path.read_bytes() == PAYLOAD and not (tmp_path / "blob.bin.part").exists()
    err = capsys.readouterr().err
    assert "blob.bin" in err and "100%" in err and "300k" in err.lower()
    fetch(f"{server.url}/blob.bin", path, md5=md5(PAYLOAD), progress=False)  # complete file: no new request
    assert len(server.requests) == 1


def test_dropped_connection_is_resumed_with_a_range_request(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    server.drops, server.cut = 1, 100_000
    path = fetch(f"{server.url}/blob.bin", tmp_path / "blob.bin", md5=md5(PAYLOAD), retries=1, retry_wait=0,
                 progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("/blob.bin", None), ("/blob.bin", "bytes=100000-")]


def test_interrupted_transfer_keeps_the_part_file_and_the_next_run_resumes(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    server.drops, server.cut = 2, 70_000
    target = tmp_path / "blob.bin"
    with pytest.raises(DownloadError, match="Run the same command again to resume"):
        fetch(f"{server.url}/blob.bin", target, md5=md5(PAYLOAD), retries=1, retry_wait=0, progress=False)
    part = tmp_path / "blob.bin.part"
    assert not target.exists() and part.stat().st_size == 140_000  # two attempts of 70,000 bytes each
    fetch(f"{server.url}/blob.bin", target, md5=md5(PAYLOAD), retries=0, progress=False)
    assert target.read_bytes() == PAYLOAD and not part.exists()
    assert [r for _, r in server.requests] == [None, "bytes=70000-", "bytes=140000-"]


def test_complete_part_file_answered_416_is_verified_and_kept(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD)
    path = fetch(f"{server.url}/blob.bin", tmp_path / "blob.bin", md5=md5(PAYLOAD), progress=False)
    assert path.read_bytes() == PAYLOAD and server.requests == [("/blob.bin", f"bytes={len(PAYLOAD)}-")]


def test_server_ignoring_range_restarts_from_scratch(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    server.ranges = False
    (tmp_path / "blob.bin.part").write_bytes(b"stale bytes from another file")
    path = fetch(f"{server.url}/blob.bin", tmp_path / "blob.bin", md5=md5(PAYLOAD), progress=False)
    assert path.read_bytes() == PAYLOAD


def test_checksum_mismatch_is_refused_and_nothing_is_kept(server, tmp_path):
    server.files["/blob.bin"] = PAYLOAD
    with pytest.raises(ChecksumError, match="expected 0+"):
        fetch(f"{server.url}/blob.bin", tmp_path / "blob.bin", md5="0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_errors_are_reported(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(f"{server.url}/absent.bin", tmp_path / "absent.bin", md5="0" * 32, progress=False)


class _FullDisk:
    """A file that holds ``capacity`` bytes, as on a nearly full disk: the write that crosses the limit stores what
    fits, then fails with ``OSError(ENOSPC)``."""

    def __init__(self, handle, capacity: int) -> None:
        self.handle, self.room = handle, capacity

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            self.handle.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


def _open_on_a_full_disk(capacity: int):
    """A replacement for ``open`` that hands out :class:`_FullDisk` files for writing."""

    def fake_open(path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)  # noqa: SIM115 (closed by _FullDisk or the caller)
        return _FullDisk(handle, capacity) if any(c in mode for c in "wa") else handle

    return fake_open


def test_full_disk_stops_at_once_keeps_the_bytes_and_the_next_run_resumes(server, tmp_path, monkeypatch):
    """ENOSPC is not a dropped connection: no retry, no back-off, no advice to run again unchanged."""
    server.files["/blob.bin"] = PAYLOAD
    waits = []
    monkeypatch.setattr("dml.data.downloader.time.sleep", waits.append)
    monkeypatch.setattr("dml.data.downloader.open", _open_on_a_full_disk(100_000), raising=False)
    target = tmp_path / "blob.bin"
    with pytest.raises(LocalWriteError, match=r"the disk is full .*Free space.*--root DIR") as info:
        fetch(f"{server.url}/blob.bin", target, md5=md5(PAYLOAD), retries=3, progress=False, chunk_size=16384)
    assert info.value.errno == errno.ENOSPC and "100,000 bytes fetched so far stay in" in str(info.value)
    assert "run the same command again" not in str(info.value).lower() and "\n" not in str(info.value)
    assert len(server.requests) == 1 and waits == []  # stopped at the first failure
    part = tmp_path / "blob.bin.part"
    assert part.read_bytes() == PAYLOAD[:100_000]  # exactly what the disk took
    monkeypatch.undo()
    fetch(f"{server.url}/blob.bin", target, md5=md5(PAYLOAD), retries=0, progress=False)
    assert target.read_bytes() == PAYLOAD and server.requests[-1] == ("/blob.bin", "bytes=100000-")


@pytest.mark.parametrize("code,message", [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied")])
def test_read_only_or_forbidden_target_stops_at_once(server, tmp_path, monkeypatch, code, message):
    server.files["/blob.bin"] = PAYLOAD
    waits = []
    monkeypatch.setattr("dml.data.downloader.time.sleep", waits.append)

    def refuse(path, mode="r", *args, **kwargs):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr("dml.data.downloader.open", refuse, raising=False)
    with pytest.raises(LocalWriteError, match=rf"Cannot write .*blob.bin.part: [a-z ]*{message}\. .*--root DIR"):
        fetch(f"{server.url}/blob.bin", tmp_path / "blob.bin", md5=md5(PAYLOAD), retries=3, progress=False)
    assert len(server.requests) == 1 and waits == []


# ---- extraction ---------------------------------------------------------------------------------------------


def tar_with(path: Path, members: list[tuple[str, str, str]]) -> Path:
    """Members ``(kind, name, content-or-target)`` with kind ``file``, ``symlink`` or ``hardlink``."""
    with tarfile.open(path, "w:gz") as tar:
        for kind, name, value in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(value.encode())
                tar.addfile(info, io.BytesIO(value.encode()))
            else:
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = value
                tar.addfile(info)
    return path


def test_benign_archives_extract(tmp_path):
    tar_with(tmp_path / "ok.tgz", [("file", "top/a.txt", "a"), ("symlink", "top/link", "a.txt"),
                                   ("hardlink", "top/b.txt", "top/a.txt")])
    safe_extract(tmp_path / "ok.tgz", tmp_path / "out")
    assert (tmp_path / "out/top/link").read_text() == "a" and (tmp_path / "out/top/b.txt").read_text() == "a"
    with zipfile.ZipFile(tmp_path / "ok.zip", "w") as handle:
        handle.writestr("folder/x.txt", "x")
    assert safe_extract(tmp_path / "ok.zip", tmp_path / "zout") == ["folder/x.txt"]
    assert (tmp_path / "zout/folder/x.txt").read_text() == "x"


@pytest.mark.parametrize("members,message", [
    ([("file", "top/ok.txt", "ok"), ("file", "../escape.txt", "x")], "contains '..'"),
    ([("file", "top/../../escape.txt", "x")], "contains '..'"),
    ([("file", "/tmp/escape.txt", "x")], "absolute path"),
    ([("symlink", "top/link", "../../outside")], "contains '..'"),
    ([("symlink", "top/link", "/etc")], "absolute path"),
    ([("hardlink", "top/hard", "../outside.txt")], "contains '..'"),
    ([("symlink", "top/up", "."), ("symlink", "top/up/evil", ".")], "lies below the symlink"),
    ([("symlink", "top/up", ".."), ("symlink", "top/up/evil", "..")], "contains '..'"),
    ([("symlink", "top/link", "."), ("file", "top/link/x.txt", "x")], "lies below the symlink"),
    ([("symlink", "a", "."), ("symlink", "b", "a/.."), ("symlink", "c", "b/secret")], "contains '..'"),
    ([("symlink", "top/in", "sub/.."), ("file", "top/x", "x")], "contains '..'"),
    ([("symlink", "top/link", "."), ("hardlink", "top/hard", "top/link")], "through the symlink"),
], ids=["dotdot", "inner-dotdot", "absolute", "symlink-out", "symlink-abs", "hardlink-out", "symlink-chain",
        "symlink-up", "through-symlink", "symlink-chain-climbs-out", "symlink-dotdot-inside", "hardlink-to-symlink"])
def test_unsafe_tar_members_are_refused_before_anything_is_written(tmp_path, members, message):
    archive = tar_with(tmp_path / "evil.tgz", members)
    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract(archive, tmp_path / "a" / "b" / "out")
    assert list((tmp_path / "a" / "b" / "out").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "evil.tgz"]


def test_unsafe_zip_members_are_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as handle:
        handle.writestr("ok.txt", "ok")
        handle.writestr("../escape.txt", "x")
    with pytest.raises(UnsafeArchiveError, match="contains '..'"):
        safe_extract(tmp_path / "evil.zip", tmp_path / "out")
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as handle:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)  # a symlink entry
        handle.writestr(info, "../../outside")
    with pytest.raises(UnsafeArchiveError, match="contains '..'"):
        safe_extract(tmp_path / "link.zip", tmp_path / "out2")
    assert not (tmp_path / "escape.txt").exists() and list((tmp_path / "out").iterdir()) == []


def test_failed_install_leaves_no_half_extracted_tree(tmp_path):
    archive = tar_with(tmp_path / "evil.tgz", [("file", "CUB_200_2011/images.txt", "1 a.jpg\n"),
                                               ("file", "../escape.txt", "x")])
    with pytest.raises(UnsafeArchiveError):
        install_archive(archive, tmp_path / "data" / "cub200", marker="CUB_200_2011/images.txt")
    assert list((tmp_path / "data").iterdir()) == []
    good = tar_with(tmp_path / "good.tgz", [("file", "other/readme.txt", "x")])
    with pytest.raises(DownloadError, match="unpacked without CUB_200_2011/images.txt"):
        install_archive(good, tmp_path / "data" / "cub200", marker="CUB_200_2011/images.txt")
    assert list((tmp_path / "data").iterdir()) == []


# ---- the command ---------------------------------------------------------------------------------------------


@pytest.fixture
def local_cub(server, tmp_path, monkeypatch):
    """Point the catalogue's CUB entry at a generated archive served locally, with its real MD5."""
    archive = tmp_path / "served" / "CUB_200_2011.tgz"
    archive.parent.mkdir()
    tree = make_cub_archive(archive, work=tmp_path / "work", classes=(1, 2, 101), per_class=2)
    data = archive.read_bytes()
    server.files["/records/cub/CUB_200_2011.tgz"] = data
    spec = replace(catalog.CUB.download, url=f"{server.url}/records/cub/CUB_200_2011.tgz", md5=md5(data))
    monkeypatch.setitem(catalog.CATALOG, "cub200", replace(catalog.CUB, download=spec))
    return tree, data


def test_download_command_end_to_end(local_cub, server, tmp_path, capsys, monkeypatch):
    tree, data = local_cub
    server.drops, server.cut = 1, len(data) // 3
    waits = []
    monkeypatch.setattr("dml.data.downloader.time.sleep", waits.append)
    root = tmp_path / "data" / "cub200"
    assert main(["data", "download", "cub200", "--root", str(root)]) == 0
    assert waits == [2.0]  # one back-off before the resumed attempt
    out, err = capsys.readouterr()
    assert "downloaded and verified" in out and "100%" in err
    assert [r for _, r in server.requests] == [None, f"bytes={len(data) // 3}-"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cub200"]  # archive and staging removed
    assert (root / "attributes.txt").is_file()
    report = dml.data.check("cub200", root, expected=tree.expected, decode=True)
    assert report.ok, report.format()
    assert main(["data", "download", "cub200", "--root", str(root)]) == 0
    assert "already complete" in capsys.readouterr().out and len(server.requests) == 2


def test_download_checksum_mismatch_exits_1_and_installs_nothing(local_cub, tmp_path, capsys, monkeypatch):
    spec = replace(catalog.CATALOG["cub200"].download, md5="f" * 32)
    monkeypatch.setitem(catalog.CATALOG, "cub200", replace(catalog.CUB, download=spec))
    assert main(["data", "download", "cub200", "--root", str(tmp_path / "data" / "cub200"), "--no-progress"]) == 1
    assert "expected ffff" in capsys.readouterr().err
    assert list((tmp_path / "data").iterdir()) == []


def test_download_refuses_a_non_empty_incomplete_folder(local_cub, tmp_path, capsys):
    root = tmp_path / "data" / "cub200"
    root.mkdir(parents=True)
    (root / "notes.txt").write_text("mine")
    assert main(["data", "download", "cub200", "--root", str(root), "--no-progress"]) == 1
    assert "is not empty" in capsys.readouterr().err and (root / "notes.txt").read_text() == "mine"


def test_download_to_a_full_disk_exits_1_with_one_line_and_installs_nothing(local_cub, server, tmp_path, capsys,
                                                                            monkeypatch):
    waits = []
    monkeypatch.setattr("dml.data.downloader.time.sleep", waits.append)
    monkeypatch.setattr("dml.data.downloader.open", _open_on_a_full_disk(1000), raising=False)
    root = tmp_path / "data" / "cub200"
    assert main(["data", "download", "cub200", "--root", str(root), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dml data download: error: Cannot write ") and err.count("\n") == 1, err
    assert "the disk is full" in err and "--root DIR" in err and "Traceback" not in err
    assert len(server.requests) == 1 and waits == [] and not root.exists()


def test_a_file_in_the_way_of_the_root_is_named(local_cub, server, tmp_path, capsys):
    (tmp_path / "data").write_text("not a folder")
    assert main(["data", "download", "cub200", "--root", str(tmp_path / "data" / "cub200"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'data'} is a file, not a folder" in err and "--root DIR" in err and err.count("\n") == 1
    assert server.requests == []


def test_disk_full_during_extraction_exits_1_keeps_the_archive_and_the_next_run_unpacks_it(
    local_cub, server, tmp_path, capsys
):
    """The archive downloads and verifies, then the disk fills up while it is unpacked (tarfile's file writes)."""
    import tarfile

    tree, data = local_cub
    root = tmp_path / "data" / "cub200"
    with pytest.MonkeyPatch.context() as full:
        full.setattr(tarfile, "bltn_open", _open_on_a_full_disk(500))
        assert main(["data", "download", "cub200", "--root", str(root), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dml data download: error: Unpacking ") and err.count("\n") == 1, err
    assert "the disk is full" in err and "--root DIR" in err and "Traceback" not in err
    assert "partly extracted files were removed" in err and "unpacks to" in err
    archive = tmp_path / "data" / ".cub200.CUB_200_2011.tgz"
    assert str(archive) in err and archive.read_bytes() == data  # the verified archive is kept
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [archive.name]  # no staging, no dataset
    assert main(["data", "download", "cub200", "--root", str(root), "--no-progress"]) == 0
    assert len(server.requests) == 1  # unpacked from the kept archive, not downloaded again
    assert dml.data.check("cub200", root, expected=tree.expected).ok


def test_manual_datasets_print_instructions_and_exit_3(tmp_path, capsys):
    root = tmp_path / "sop"
    assert main(["data", "download", "sop", "--root", str(root)]) == MANUAL_DOWNLOAD == 3
    out = capsys.readouterr().out
    assert "Deep-Metric-Learning-CVPR16" in out and f"unzip Stanford_Online_Products.zip -d {root}" in out
    assert "Ebay_train.txt" in out and f"dml data check sop --root {root}" in out
    make_sop(root, train_classes=1, test_classes=1, per_class=1)
    assert main(["data", "download", "sop", "--root", str(root)]) == 0
    assert "already complete" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["cars196", "inshop", "hotels50k"])
def test_every_manual_dataset_has_instructions(name, tmp_path, capsys):
    assert main(["data", "download", name, "--root", str(tmp_path / name)]) == 3
    out = capsys.readouterr().out
    assert str(tmp_path / name) in out and "Expected layout" in out and "<root>" not in out


def test_unknown_dataset_is_a_usage_error(capsys):
    assert main(["data", "download", "cub"]) == 2
    assert "Did you mean 'cub200'" in capsys.readouterr().err
