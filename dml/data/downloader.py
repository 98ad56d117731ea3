"""``dml data download NAME``: fetch, verify and unpack a benchmark, so that a half-done job never looks done.

The steps and what each guarantees:

1. **Fetch** (:func:`fetch`) streams the archive into ``<file>.part`` with a tqdm progress bar. If the connection
   drops, the next attempt (automatic, up to ``retries`` times, or the next run of the command) asks the server for
   the rest with an HTTP ``Range: bytes=<size of .part>-`` request and appends; a server that ignores ``Range``
   (status 200 instead of 206) restarts the file from scratch. Only a complete transfer is renamed from ``.part``
   to its final name.
2. **Verify**: the MD5 / SHA-256 of the complete file must equal the catalogue's value (:mod:`dml.data.catalog`);
   on a mismatch the file is deleted and :class:`ChecksumError` is raised, so a corrupt archive is never extracted
   or resumed from.
3. **Extract** (:func:`dml.data.extract.safe_extract`) into a fresh temporary folder *next to* the dataset folder
   (same file system), refusing absolute paths, ``..`` and links that escape it.
4. **Install**: the temporary folder is renamed onto the dataset folder in one ``os.rename`` (atomic on POSIX), after
   checking that the archive produced the expected marker file. On any failure the temporary folder is deleted, so
   the dataset folder either does not exist or is complete.

A failure to write to the local disk is not a network failure and is never retried: a full disk (``ENOSPC``,
``EDQUOT``, ``EFBIG``), a read-only file system (``EROFS``) or a folder without write permission raise
:class:`LocalWriteError` at once, saying to free space or choose another ``--root``. The bytes fetched before a full
disk stay in the ``.part`` file (the next run resumes from them); a full disk during extraction removes the partly
extracted folder and keeps the verified archive, so the next run unpacks it without downloading again.

Only CUB-200-2011 has a stable public URL; for the others :func:`download` raises :class:`ManualDownloadRequired`,
whose message is the manual procedure (and the CLI prints it and exits with status 3).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from dml.data.catalog import DatasetInfo, Download, dataset_info
from dml.data.extract import safe_extract
from dml.data.files import dataset_dir
from dml.utils.progress import tqdm

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
READ_ONLY = {errno.EROFS}
NO_PERMISSION = {errno.EACCES, errno.EPERM}


class DownloadError(RuntimeError):
    """A download could not be completed (network failure, unexpected server reply, or a folder in the way)."""


class ChecksumError(DownloadError):
    """A downloaded file does not have the published checksum; it has been deleted."""


class ManualDownloadRequired(DownloadError):
    """The dataset has no stable public URL; the message holds the manual instructions."""


class LocalWriteError(DownloadError):
    """Writing to the local disk failed (full, read-only, no permission): not retried; ``errno`` is the cause's."""

    def __init__(self, message: str, errno_code: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_code


def local_write_error(path: str | os.PathLike, error: OSError, *, kept: str = "", action: str | None = None
                      ) -> LocalWriteError:
    """The :class:`LocalWriteError` for a failed write to ``path`` (or of ``action``): the cause, what ``kept``
    says survives, the fix."""
    code = error.errno
    if code in DISK_FULL:
        cause = f"the disk is full ({error.strerror or error})"
        fix = "Free space on that disk, or download to another disk with --root DIR (or DML_DATA)"
    elif code in READ_ONLY:
        cause = "the file system is read-only"
        fix = "Choose a writable folder with --root DIR (or DML_DATA)"
    elif code in NO_PERMISSION:
        cause = "permission denied"
        fix = "Choose a folder you can write to with --root DIR (or DML_DATA)"
    else:
        cause = f"{type(error).__name__}: {error}"
        fix = "Check the disk, or choose another folder with --root DIR (or DML_DATA)"
    action = action or f"Cannot write {path}"
    return LocalWriteError(f"{action}: {cause}. {fix}{'; ' + kept if kept else ''}.", code)


def _make_dirs(path: Path) -> None:
    """``mkdir -p path``; a full, read-only or forbidden disk is a :class:`LocalWriteError`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise DownloadError(f"Cannot create the folder {path}: {blocking} is a file, not a folder. Choose another "
                            "folder with --root DIR (or DML_DATA).") from error
    except OSError as error:
        raise local_write_error(path, error) from error


class _IncompleteTransfer(OSError):
    pass


@dataclass(frozen=True)
class DownloadResult:
    """What :func:`download` did: ``status`` is ``"downloaded"`` or ``"present"`` (already complete)."""

    name: str
    path: Path
    status: str


def file_digest(path: str | os.PathLike, algorithm: str = "md5", *, chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: str | os.PathLike, *, md5: str | None = None, sha256: str | None = None) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the given digest(s)."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected is not None:
            actual = file_digest(path, algorithm)
            if actual.lower() != expected.lower():
                raise ChecksumError(f"{path} has {algorithm} {actual}, expected {expected}: the file is corrupt, "
                                    "truncated or not the published archive.")


def fetch(url: str, destination: str | os.PathLike, *, md5: str | None = None, sha256: str | None = None,
          progress: bool = True, retries: int = 3, retry_wait: float = 2.0, timeout: float = 60.0,
          chunk_size: int = 1 << 20) -> Path:
    """Download ``url`` to ``destination`` resumably and verify it.

    Args:
        url: HTTP(S) address.
        destination: Final file path; the transfer goes to ``destination + ".part"`` until it is complete.
        md5, sha256: Expected digests (``None`` skips that check; pass at least one for untrusted sources).
        progress: Show a tqdm bar on stderr.
        retries: Resumed attempts after a dropped connection or a transient HTTP error (408, 429, 5xx).
        retry_wait: Seconds before the first retry, doubled after each.
        timeout: Socket timeout in seconds.
        chunk_size: Bytes per read.

    Returns:
        ``destination`` as a ``Path``. An existing ``destination`` with the right checksum is kept as is; one with
        the wrong checksum is deleted and fetched again.

    Raises:
        ChecksumError: the complete file has the wrong digest (the file is deleted).
        LocalWriteError: the local disk is full, read-only or not writable; raised at once, never retried (the
            ``.part`` file keeps the bytes written so far).
        DownloadError: the transfer failed ``retries + 1`` times (the ``.part`` file is kept; run again to resume)
            or the server answered with a non-retryable error.
    """
    destination = Path(destination)
    _make_dirs(destination.parent)
    part = destination.with_name(destination.name + ".part")
    if destination.exists():
        try:
            verify(destination, md5=md5, sha256=sha256)
            return destination
        except ChecksumError:
            destination.unlink()
    failures = 0
    while True:
        try:
            _transfer(url, part, progress=progress, timeout=timeout, chunk_size=chunk_size)
            break
        except urllib.error.HTTPError as error:
            if error.code not in RETRYABLE_STATUS or failures >= retries:
                raise DownloadError(f"Downloading {url} failed: HTTP {error.code} {error.reason}.") from error
        except (OSError, http.client.HTTPException) as error:
            if failures >= retries:
                size = part.stat().st_size if part.exists() else 0
                raise DownloadError(f"Downloading {url} failed after {failures + 1} attempt(s) "
                                    f"({type(error).__name__}: {error}); {size} bytes are saved in {part}. Run the "
                                    "same command again to resume.") from error
        failures += 1
        time.sleep(retry_wait * 2 ** (failures - 1))
    try:
        verify(part, md5=md5, sha256=sha256)
    except ChecksumError as error:
        part.unlink()
        raise ChecksumError(f"{error} Downloaded from {url}; the partial file was deleted, run the command again "
                            "to start over. If it fails again the server's file has changed: report it.") from None
    os.replace(part, destination)
    return destination


def _transfer(url: str, part: Path, *, progress: bool, timeout: float, chunk_size: int) -> None:
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "dml-data-download/1", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # nothing left to send: the .part file is already complete
            return
        raise
    with response:
        if offset and response.status == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                raise DownloadError(f"{url}: asked for bytes from {offset}, the server sent "
                                    f"{response.headers.get('Content-Range')!r}. Delete {part} and retry.")
            mode = "ab"
        else:
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        try:
            out = open(part, mode, buffering=0)  # noqa: SIM115 (closed below)  unbuffered: no write is pending
        except OSError as error:
            raise local_write_error(part, error) from error
        with out, tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=part.name.removesuffix(".part").lstrip("."), disable=not progress, file=sys.stderr,
                       dynamic_ncols=True) as bar:
            try:
                while chunk := response.read(chunk_size):  # network errors (OSError too) propagate: retried
                    _write_all(out, chunk)
                    bar.update(len(chunk))
                _sync(out)
            except _WriteFailed as failed:
                size = part.stat().st_size
                need = f" ({_human_size(total - size)} more are needed)" if total is not None else ""
                raise local_write_error(part, failed.error, kept=f"the {size:,} bytes fetched so far stay in "
                                        f"{part}{need} and the same command resumes from them") from failed.error
    if total is not None and part.stat().st_size < total:
        raise _IncompleteTransfer(f"connection closed after {part.stat().st_size} of {total} bytes")


class _WriteFailed(Exception):
    """A write to the ``.part`` file failed (unlike the network errors around it, never retried)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _write_all(out, data: bytes) -> None:
    """Write all of ``data`` to the unbuffered file ``out`` (a raw write may accept only part of it)."""
    view = memoryview(data)
    try:
        while view:
            written = out.write(view)
            if not written:  # a regular file accepting nothing is out of space
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]
    except OSError as error:
        raise _WriteFailed(error) from error


def _sync(out) -> None:
    """``fsync`` the file (a network file system may report a full disk only here)."""
    try:
        os.fsync(out.fileno())
    except OSError as error:
        raise _WriteFailed(error) from error


def _human_size(size: int) -> str:
    """``size`` bytes in the largest unit that keeps a digit before the point (bytes, KB, MB or GB)."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size:,} bytes"


def _range_start(content_range: str) -> int | None:
    try:  # "bytes 100-999/1000"
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def is_installed(info: DatasetInfo, directory: Path) -> bool:
    """Whether ``directory`` holds the marker file of ``info``'s archive."""
    return info.download is not None and (directory / info.download.marker).exists()


def _loadable(name: str, directory: Path) -> bool:
    """Whether the loaders can read every split of ``name`` from ``directory`` (layout and annotations only)."""
    import warnings

    from dml.data.files import DatasetNotFoundError
    from dml.data.registry import build

    if not directory.is_dir():
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            build(name, split="all", root=directory)
    except (DatasetNotFoundError, ValueError):
        return False
    return True


def download(name: str, root: str | os.PathLike | None = None, *, progress: bool = True, keep_archive: bool = False,
             retries: int = 3, retry_wait: float = 2.0) -> DownloadResult:
    """Download, verify and install benchmark ``name`` into its dataset folder.

    Args:
        name: A benchmark of :data:`dml.data.catalog.CATALOG`.
        root: Dataset folder (see :func:`dml.data.files.dataset_dir`); default ``data_root()/name``.
        progress: Show a progress bar.
        keep_archive: Keep the verified archive next to the dataset folder instead of deleting it.
        retries, retry_wait: As in :func:`fetch`.

    Returns:
        A :class:`DownloadResult`; ``status="present"`` when the folder was already complete (nothing fetched).

    Raises:
        ManualDownloadRequired: the dataset has no stable URL; the message says what to do by hand.
        ChecksumError, DownloadError: see :func:`fetch`; also a non-empty, incomplete dataset folder in the way.
        UnsafeArchiveError: the archive tries to write outside its folder.
    """
    info = dataset_info(name)
    directory = dataset_dir(name, root)
    if info.download is None:
        if _loadable(name, directory):
            return DownloadResult(name, directory, "present")
        raise ManualDownloadRequired(
            f"{info.title} cannot be downloaded automatically (no stable public URL).\n"
            f"{info.instructions.replace('<root>', str(directory))}\n"
            f"Expected layout:\n{info.layout.replace('<root>', str(directory))}\n"
            f"Then verify with `dml data check {name} --root {directory}`.")
    if is_installed(info, directory):
        return DownloadResult(name, directory, "present")
    if directory.exists() and any(directory.iterdir()):
        raise DownloadError(f"{directory} is not empty but does not hold a complete {info.title} "
                            f"({info.download.marker} is missing). Move or delete it, or pass --root with a new "
                            f"folder; if {directory} is your shared data folder, pass --root {directory / name}.")
    _make_dirs(directory.parent)
    archive = directory.parent / f".{directory.name}.{info.download.filename}"
    spec: Download = info.download
    if progress:
        logger.info("Downloading %s from %s (checksum %s, %s)", info.title, spec.url, spec.md5 or spec.sha256,
                    spec.checksum_source)
    fetch(spec.url, archive, md5=spec.md5, sha256=spec.sha256, progress=progress, retries=retries,
          retry_wait=retry_wait)
    install_archive(archive, directory, marker=spec.marker)
    if not keep_archive:
        archive.unlink()
    return DownloadResult(name, directory, "downloaded")


def _extraction_kept(archive: str | os.PathLike, staging: Path) -> str:
    """What a failed extraction leaves: nothing of the partial tree, the verified archive, and the space needed."""
    needed = ""
    with contextlib.suppress(Exception):  # only for the message; a second failure must not hide the first
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tar:
                size = sum(member.size for member in tar.getmembers())
        else:
            with zipfile.ZipFile(archive) as handle:
                size = sum(info.file_size for info in handle.infolist())
        free = shutil.disk_usage(staging.parent).free
        needed = f" (the dataset unpacks to {_human_size(size)}; {_human_size(free)} are free there)"
    return (f"the partly extracted files were removed and the verified archive {archive} is kept, so the same "
            f"command unpacks it again without downloading{needed}")


def install_archive(archive: str | os.PathLike, directory: str | os.PathLike, *, marker: str | None = None) -> Path:
    """Extract ``archive`` into a temporary sibling of ``directory``, then rename it onto ``directory``.

    ``directory`` must not exist or be empty. If extraction fails, is refused as unsafe, or does not produce
    ``marker``, the temporary folder is removed and ``directory`` is left as it was; a full, read-only or
    forbidden disk raises :class:`LocalWriteError` (the archive is kept).
    """
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise DownloadError(f"{directory} is not empty; refusing to install over it. Move or delete it first.")
    _make_dirs(directory.parent)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.extracting-", dir=directory.parent))
    except OSError as error:
        raise local_write_error(directory.parent, error) from error
    try:
        try:
            safe_extract(archive, staging)
        except OSError as error:
            if error.errno not in DISK_FULL | READ_ONLY | NO_PERMISSION:
                raise
            raise local_write_error(directory.parent, error, kept=_extraction_kept(archive, staging),
                                    action=f"Unpacking {archive} into {directory.parent} failed") from error
        if marker is not None and not (staging / marker).exists():
            raise DownloadError(f"{archive} unpacked without {marker}; it is not the expected archive.")
        if directory.exists():
            directory.rmdir()
        os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory
