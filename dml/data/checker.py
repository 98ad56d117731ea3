"""``dml data check NAME``: is a benchmark complete and intact on disk?

:func:`check` builds the dataset's loaders (which validates the layout and parses the annotation files), counts
the images of every split against the expected counts of :mod:`dml.data.catalog` (or the ``expected`` argument,
so small fixture trees can be checked too), verifies that every listed file exists and, with ``decode=True``,
decodes every image with :func:`dml.data.find_corrupt_images` (slow: a full pass over the data).

Hotels-50K is special: its images are downloaded from URLs that rot, so its counts are reported but never fail
the check, and CSV rows without a file are reported as a note rather than as missing files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dml.data.catalog import dataset_info
from dml.data.files import DatasetNotFoundError, dataset_dir
from dml.data.images import find_corrupt_images
from dml.data.registry import build  # the loaders register themselves when dml.data is imported, first
from dml.utils.progress import tqdm


@dataclass
class CheckReport:
    """The outcome of :func:`check`.

    Attributes:
        name: Dataset name. root: The dataset folder checked.
        counts: Images found per split. expected: Expected counts. exact_counts: Whether mismatches fail.
        missing: Listed files that do not exist. corrupt: ``(path, reason)`` of files that do not decode (only
            with ``decoded``). decoded: Whether images were decoded. error: Why the dataset could not be read at
            all (layout or annotation problem), else ``None``. notes: Informational lines.
    """

    name: str
    root: Path
    counts: dict[str, int] = field(default_factory=dict)
    expected: dict[str, int] = field(default_factory=dict)
    exact_counts: bool = True
    missing: list[Path] = field(default_factory=list)
    corrupt: list[tuple[Path, str]] = field(default_factory=list)
    decoded: bool = False
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def count_mismatches(self) -> dict[str, tuple[int, int]]:
        """``split -> (found, expected)`` for every split whose count differs (only when counts are exact)."""
        if not self.exact_counts:
            return {}
        return {split: (self.counts.get(split, 0), want) for split, want in self.expected.items()
                if self.counts.get(split, 0) != want}

    @property
    def ok(self) -> bool:
        """No error, no missing or corrupt file, and every exact count matches."""
        return self.error is None and not self.missing and not self.corrupt and not self.count_mismatches

    def format(self, *, max_files: int = 10) -> str:
        """A human-readable report (what ``dml data check`` prints)."""
        lines = [f"{dataset_info(self.name).title} in {self.root}"]
        if self.error is not None:
            return "\n".join([*lines, f"ERROR: {self.error}"])
        mismatches = self.count_mismatches
        for split, found in self.counts.items():
            want = self.expected.get(split)
            if want is None:
                verdict = ""
            elif split in mismatches:
                verdict = f"  MISMATCH: expected {want:,}"
            elif found == want:
                verdict = "  ok"
            else:
                verdict = f"  (published: {want:,}; counts are approximate for this dataset)"
            lines.append(f"  {split:>10}: {found:>9,} images{verdict}")
        lines += [f"  note: {note}" for note in self.notes]
        for title, files in (("missing", [(p, "") for p in self.missing]), ("corrupt", self.corrupt)):
            if files:
                lines.append(f"  {len(files):,} {title} file(s):")
                lines += [f"    {path}" + (f": {reason}" if reason else "") for path, reason in files[:max_files]]
                if len(files) > max_files:
                    lines.append(f"    ... and {len(files) - max_files:,} more")
        if not self.decoded:
            lines.append("  images were not decoded; add --decode to find truncated or corrupt files (slow)")
        lines.append("OK" if self.ok else "PROBLEMS FOUND")
        return "\n".join(lines)


def check(name: str, root: str | os.PathLike | None = None, *, decode: bool = False,
          expected: dict[str, int] | None = None, exact_counts: bool | None = None,
          progress: bool = False) -> CheckReport:
    """Check benchmark ``name`` in its dataset folder; never raises for a missing or broken dataset.

    Args:
        name: A benchmark of :data:`dml.data.catalog.CATALOG`.
        root: Dataset folder (see :func:`dml.data.files.dataset_dir`); default ``data_root()/name``.
        decode: Also decode every image (slow).
        expected: Expected image count per split, replacing the published counts (e.g. for fixture trees).
        exact_counts: Whether count mismatches fail; default from the catalogue (``False`` only for Hotels-50K).
        progress: Show a progress bar while decoding.

    Returns:
        A :class:`CheckReport`; ``report.ok`` is the verdict and ``report.format()`` the text.
    """
    info = dataset_info(name)
    directory = dataset_dir(name, root)
    report = CheckReport(name=name, root=directory, expected=dict(info.expected if expected is None else expected),
                         exact_counts=info.exact_counts if exact_counts is None else exact_counts)
    try:
        parts = _build_parts(name, directory, build)
    except (DatasetNotFoundError, ValueError) as error:
        report.error = str(error)
        return report
    for split, dataset in parts.items():
        report.counts[split] = len(dataset)
    if name == "inshop":
        report.counts["test"] = report.counts["query"] + report.counts["gallery"]
    report.counts["all"] = sum(len(d) for d in parts.values())
    paths = [path for dataset in parts.values() for path in dataset.paths]
    if name == "hotels50k":
        missing_rows = sum(d.num_missing for d in parts.values())
        if missing_rows:
            report.notes.append(f"{missing_rows:,} images listed in train_set.csv / test_set.csv have no file "
                                "(rotted URLs or an incomplete download); the loaders use the ones present")
        report.notes += _occlusion_counts(directory, build)
    report.missing = [path for path in paths if not path.is_file()]
    if decode:
        present = [path for path in paths if path.is_file()]
        report.corrupt = find_corrupt_images(tqdm(present, desc=f"decoding {name}", unit="img",
                                                  disable=not progress))
        report.decoded = True
    return report


def _build_parts(name: str, directory: Path, build) -> dict:
    """The disjoint parts whose union is the whole dataset, built with the registry."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # Hotels' missing-rows warning becomes a report note
        if name == "inshop":
            return {"train": build(name, split="train", root=directory),
                    "query": build(name, split="test", root=directory, subset="query"),
                    "gallery": build(name, split="test", root=directory, subset="gallery")}
        return {"train": build(name, split="train", root=directory), "test": build(name, split="test", root=directory)}


def _occlusion_counts(directory: Path, build) -> list[str]:
    import warnings

    from dml.data.hotels import OCCLUSIONS

    notes = []
    for level, folder in OCCLUSIONS.items():
        if level == "unoccluded" or not (directory / "images" / "test" / folder).is_dir():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                count = len(build("hotels50k", split="test", root=directory, occlusion=level))
            except (DatasetNotFoundError, ValueError) as error:
                notes.append(f"test images with {level} occlusion could not be read: {error}".split("\n")[0])
                continue
        notes.append(f"test images with {level} occlusion: {count:,}")
    return notes
