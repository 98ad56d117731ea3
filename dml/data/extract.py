"""Unpacking downloaded archives without letting them write outside the destination folder.

An archive is untrusted input: a tar or zip member named ``/etc/x`` or ``../../x``, a symlink pointing out of the
folder (``evil -> /home/me``) followed by a member ``evil/.bashrc``, or a hard link to a file outside, would write
or expose files anywhere the user can ("tar slip", CVE-2007-4559). :func:`safe_extract` inspects **every** member
before extracting anything and refuses the archive (:class:`UnsafeArchiveError`) when a member

* has an absolute name or a ``..`` component,
* is a symlink whose target is absolute or contains ``..`` (so every link points at or below its own folder and
  no chain of links can climb out),
* is a hard link to a path outside the destination or through a symlink of the archive,
* lies below a symlink of the same archive (the lexical checks cannot see through a link created earlier),
* is a device file or a FIFO,
* would be written through a symlink that **already exists** in the destination folder and leads outside it (a
  folder ``data -> /home/me`` left from earlier, then a member ``data/.bashrc``): every member's path is resolved
  on disk before anything is extracted and must stay inside the (resolved) destination. A symlinked destination
  itself is fine; it is resolved first.

Tar extraction additionally uses Python's ``"data"`` extraction filter (PEP 706) where the interpreter has it, which
repeats these checks on the real file system and drops set-uid bits. Zip files never create symlinks with
:mod:`zipfile` (a symlink entry would become a small text file), but a symlink entry pointing outside is refused
all the same so that both formats follow one rule.
"""
from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from pathlib import Path

TAR_SUFFIXES = (".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class UnsafeArchiveError(ValueError):
    """An archive member would be written, or would point, outside the extraction folder."""


def safe_extract(archive: str | os.PathLike, destination: str | os.PathLike) -> list[str]:
    """Extract a tar (optionally gzip/bz2/xz-compressed) or zip ``archive`` into ``destination``.

    Every member is checked before anything is written, so a refused archive leaves ``destination`` untouched.

    Returns:
        The member names, in archive order.

    Raises:
        UnsafeArchiveError: a member escapes ``destination`` (see the module docstring).
        ValueError: the file is neither a tar nor a zip archive.
    """
    archive, destination = Path(archive), Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    destination = Path(os.path.realpath(destination))
    if zipfile.is_zipfile(archive):
        return _extract_zip(archive, destination)
    if tarfile.is_tarfile(archive):
        return _extract_tar(archive, destination)
    raise ValueError(f"{archive} is neither a tar nor a zip archive (or it is truncated); delete it and download "
                     "it again.")


def _check_name(name: str, archive: Path) -> str:
    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to extract an archive "
                                 "that writes outside its folder.")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains '..'; refusing to extract an archive that "
                                 "writes outside its folder.")
    return "/".join(parts)


def _check_link_target(member: str, target: str, archive: Path, *, hard: bool) -> None:
    """``target`` of a link named ``member``: relative to the member's folder (symlink) or the archive root."""
    kind = "hard link" if hard else "symlink"
    if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: {kind} {member!r} points to the absolute path {target!r}; refusing "
                                 "to extract it.")
    if ".." in target.replace("\\", "/").split("/"):
        # Each link then points at or below its own folder, so no chain of links can climb out of the root
        # (a -> ., b -> a/.., c -> b/x would otherwise resolve outside while every name looks harmless).
        raise UnsafeArchiveError(f"{archive}: {kind} {member!r} -> {target!r} contains '..'; refusing to extract "
                                 "an archive whose links climb out of their folder.")


def _check_on_disk(name: str, destination: Path, archive: Path) -> None:
    """Refuse a member whose path, resolved through the symlinks already on disk, leaves ``destination``."""
    if not name:
        return
    target = destination.joinpath(*name.split("/"))
    resolved = Path(os.path.realpath(target))
    if resolved == destination or destination in resolved.parents:
        return
    link = next((p for p in (target, *target.parents) if p.is_symlink()), None)  # realpath leaves through one
    through = f"the symlink {link} -> {os.readlink(link)}" if link is not None else "a symlink"
    raise UnsafeArchiveError(f"{archive}: member {name!r} would be written to {resolved}, outside {destination}, "
                             f"through {through} that already exists there; refusing to extract it. Remove that "
                             "symlink (or extract into an empty folder).")


def _below_link(name: str, links: set[str]) -> str | None:
    parts = name.split("/")
    for end in range(1, len(parts)):
        prefix = "/".join(parts[:end])
        if prefix in links:
            return prefix
    return None


def _extract_tar(archive: Path, destination: Path) -> list[str]:
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        links: set[str] = set()
        for member in members:
            name = _check_name(member.name, archive)
            _check_on_disk(name, destination, archive)
            through = _below_link(name, links)
            if through is not None:
                raise UnsafeArchiveError(f"{archive}: member {member.name!r} lies below the symlink {through!r} of "
                                         "the same archive; refusing to extract it.")
            if member.ischr() or member.isblk() or member.isfifo():
                raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a device file or FIFO; refusing "
                                         "to extract it.")
            if member.issym():
                _check_link_target(name, member.linkname, archive, hard=False)
                links.add(name)
            elif member.islnk():
                target = _check_name(member.linkname, archive)
                _check_on_disk(target, destination, archive)
                _check_link_target(name, target, archive, hard=True)
                via = target if target in links else _below_link(target, links)
                if via is not None:
                    raise UnsafeArchiveError(f"{archive}: hard link {member.name!r} -> {member.linkname!r} goes "
                                             f"through the symlink {via!r}; refusing to extract it.")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(destination, members=members, filter="data")
        else:  # Python < 3.10.12 / 3.11.4: the checks above are the only guard
            tar.extractall(destination, members=members)
        return [m.name for m in members]


def _extract_zip(archive: Path, destination: Path) -> list[str]:
    with zipfile.ZipFile(archive) as handle:
        infos = handle.infolist()
        for info in infos:
            name = _check_name(info.filename, archive)
            _check_on_disk(name, destination, archive)
            if stat.S_ISLNK(info.external_attr >> 16):
                target = handle.read(info).decode("utf-8", errors="replace")
                _check_link_target(name, target, archive, hard=False)
        handle.extractall(destination, members=infos)
        return [info.filename for info in infos]
