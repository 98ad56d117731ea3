"""The ``dml`` command line.

``dml train CONFIG [--set key=value ...] [--resume | --overwrite] [--output-dir DIR]`` trains from a YAML config
(examples in ``configs/``) into an empty or new output folder (``--resume`` continues the run in it, ``--overwrite``
replaces it); ``dml data list`` prints the registered datasets; ``dml data download NAME [--root DIR]`` fetches a
benchmark (or prints the manual steps), ``dml data check NAME [--root DIR] [--decode]`` verifies one on disk and
``dml data cache NAME [--split S] [--size N]`` decodes a split once into a memory-mapped array for fast epochs.
Bad usage (unknown option, unknown config key, wrong type, non-finite number, duplicate YAML key, unknown dataset
or dataset keyword) exits with status 2 and a one-line explanation; a failure during the run exits with status 1
(for ``data check``: a missing, incomplete or corrupt dataset; for ``train``: also an ``eval.protocol`` that the
dataset's files cannot serve, and a missing or corrupt image, named with the ``dml data check`` command that finds
them all and the ``skip_corrupt`` option that trains without them);
``data download`` of a dataset without a stable URL prints the manual steps and exits with status 3.
Multi-GPU: ``torchrun --nproc_per_node=N -m dml.cli train CONFIG``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import sys
from collections.abc import Iterator, Sequence

from dml import __version__

USAGE_ERROR = 2
RUN_ERROR = 1
MANUAL_DOWNLOAD = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dml", description="Deep metric learning: train and evaluate embeddings.")
    parser.add_argument("--version", action="version", version=f"dml {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a model from a YAML config",
        description="Train an embedding model from a YAML config file.",
    )
    train.add_argument("config", metavar="CONFIG", help="YAML config file, e.g. configs/smoke_synthetic.yaml")
    train.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a config value, e.g. --set optim.lr=0.01 (repeatable; values parsed as YAML)",
    )
    folder = train.add_mutually_exclusive_group()
    folder.add_argument(
        "--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoint.pt instead of starting afresh"
    )
    folder.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in a non-empty OUTPUT_DIR; the earlier run's files are replaced once the first epoch is "
        "trained",
    )
    train.add_argument(
        "--output-dir", metavar="DIR", help="where to write checkpoints and metrics (overrides output_dir)"
    )

    data = commands.add_parser("data", help="dataset utilities", description="Dataset utilities.")
    data.set_defaults(data_parser=data)
    data_commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data_commands.add_parser("list", help="print the registered dataset names")
    download = data_commands.add_parser(
        "download",
        help="download, verify and unpack a benchmark (or print how to get it)",
        description="Download, verify (checksum) and atomically unpack a benchmark into its folder. Datasets "
        "without a stable public URL (cars196, sop, inshop, hotels50k) get printed manual steps and "
        f"exit status {MANUAL_DOWNLOAD}; an already complete folder exits 0 without downloading.",
    )
    download.add_argument("name", metavar="NAME", help="cub200, cars196, sop, inshop or hotels50k")
    download.add_argument("--root", metavar="DIR", help="dataset folder (default: the data folder's NAME/)")
    download.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    download.add_argument(
        "--keep-archive", action="store_true", help="keep the verified archive next to the dataset folder"
    )
    check = data_commands.add_parser(
        "check",
        help="verify a benchmark's layout, image counts and files",
        description="Verify a benchmark on disk: layout, image count per split, missing files, and with "
        "--decode corrupt files. Exits 0 when everything is in order, 1 otherwise.",
    )
    check.add_argument("name", metavar="NAME", help="cub200, cars196, sop, inshop or hotels50k")
    check.add_argument("--root", metavar="DIR", help="dataset folder (default: the data folder's NAME/)")
    check.add_argument("--decode", action="store_true", help="decode every image to find corrupt files (slow)")
    cache = data_commands.add_parser(
        "cache",
        help="decode a split once into a memory-mapped uint8 array for fast epochs",
        description="Decode every image of a dataset split once, resize it (shorter side SIZE, centre SIZE×SIZE "
        "square) and store it as a memory-mapped uint8 array under the data folder's cache/, so "
        "training epochs decode no JPEGs. Re-running reuses a complete cache, resumes an interrupted "
        "one and rebuilds a stale one.",
    )
    cache.add_argument("name", metavar="NAME", help="a registered dataset, e.g. cub200")
    cache.add_argument("--split", default="train", choices=("train", "test", "all"), help="which split (train)")
    cache.add_argument("--size", type=int, default=288, help="side of the stored square images (288)")
    cache.add_argument("--root", metavar="DIR", help="data folder (default: $DML_DATA or the repository's data/)")
    cache.add_argument("--workers", type=int, default=2, help="decoding processes (2)")
    cache.add_argument("--force", action="store_true", help="rebuild even if a complete cache exists")
    _search_parsers(commands)
    return parser


def _search_parsers(commands: argparse._SubParsersAction) -> None:
    """``dml eval``, ``dml index`` and ``dml search`` (:mod:`dml.search`)."""
    evaluate = commands.add_parser(
        "eval",
        help="score a saved run (or checkpoint) under its dataset's protocol",
        description="Score the trained model of a run folder (or a checkpoint.pt) on a split of its dataset, under "
        "the dataset's evaluation protocol and the run's eval settings; prints the metrics and writes them with "
        "their provenance to RUN_DIR/eval-SPLIT.json. A user's own images are split as the run saved them "
        "(split.csv).",
    )
    evaluate.add_argument("run", metavar="RUN_DIR", help="a folder written by dml train, or its checkpoint.pt")
    evaluate.add_argument("--split", choices=("train", "test", "all"), help="which split (default: the run's)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (auto)")
    evaluate.add_argument("--cache-dir", metavar="DIR", help="where the cached pipeline keeps its caches")
    evaluate.add_argument("--out", metavar="FILE", help="where to write the metrics (RUN_DIR/eval-SPLIT.json)")

    index = commands.add_parser(
        "index",
        help="embed a gallery of images with a trained run into an index folder",
        description="Embed every image of a gallery (a folder, a CSV/TSV list of path,label rows, or NAME:SPLIT of "
        "a registered dataset) with the trained model of RUN_DIR and its evaluation preprocessing; write the "
        "embeddings, the items, the model's fingerprint and the preprocessing to INDEX_DIR. Exact search by "
        "default; from a million images a faiss index (HNSW or IVF, by size) with its recall against exact search "
        "printed. An interrupted build resumes; unreadable images are skipped, listed and warned about.",
    )
    index.add_argument("run", metavar="RUN_DIR", help="a folder written by dml train, or its checkpoint.pt")
    index.add_argument("--images", required=True, metavar="PATH_OR_LIST", help="gallery folder, list or NAME:SPLIT")
    index.add_argument("--out", required=True, metavar="INDEX_DIR", help="the index folder to write")
    index.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="stored embeddings")
    index.add_argument(
        "--search",
        choices=("auto", "exact", "approximate"),
        default="auto",
        help="exact search, or a faiss index (auto: from 1,000,000 images)",
    )
    index.add_argument(
        "--kind",
        choices=("auto", "hnsw", "ivf"),
        default="auto",
        help="the faiss index (auto: hnsw below 1,000,000 images, ivf from there)",
    )
    index.add_argument("--batch-size", type=int, default=64, help="images embedded at a time (64)")
    index.add_argument("--workers", type=int, default=0, help="decoding processes (0: in this process)")
    index.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (auto)")
    index.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")

    search = commands.add_parser(
        "search",
        help="top-k gallery matches of query images, exported as CSV, JSON and an HTML report",
        description="Rank the gallery of INDEX_DIR for each query image (files or folders) with the index's model "
        "and write RESULT_DIR/results.csv (the released Hotels-50K evaluation format: query id then the top-k "
        "result ids), results.json (matches with scores, labels and provenance) and report.html (static, "
        "self-contained, thumbnails).",
    )
    search.add_argument("index", metavar="INDEX_DIR", help="a folder written by dml index")
    search.add_argument("queries", nargs="+", metavar="QUERY_IMAGES", help="query image files or folders")
    search.add_argument("--out", required=True, metavar="RESULT_DIR", help="where to write the results")
    search.add_argument("--top-k", type=int, default=100, help="matches per query (100)")
    search.add_argument("--run", metavar="RUN_DIR", help="the run embedding the queries (default: the index's)")
    search.add_argument("--exact", action="store_true", help="exact search even if the index is approximate")
    search.add_argument("--shown", type=int, default=10, help="matches per query in report.html (10)")
    search.add_argument("--no-report", dest="report", action="store_false", help="write no report.html")
    search.add_argument(
        "--region",
        metavar="X0,Y0,X1,Y1",
        help="rank by the similarity this part of the query carries (pixels of the query image)",
    )
    search.add_argument(
        "--no-heat-maps", dest="heat_maps", action="store_false", help="no similarity heat maps in report.html"
    )
    search.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (auto)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dml`` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    if args.command == "data":
        return _data(args)
    if args.command in ("eval", "index", "search"):
        return _search_command(args)
    return _train(args)


def _search_command(args: argparse.Namespace) -> int:
    """``dml eval`` / ``index`` / ``search``: a run-time problem is one line and exit status 1, bad input 2."""
    from dml.data.images import CorruptImageError, MissingImageError
    from dml.search import IncompleteIndexError, IndexMismatchError, UnknownImageFormatError
    from dml.train.checkpoint import CheckpointError

    _log_to_stdout()
    try:
        return {"eval": _eval, "index": _index, "search": _search}[args.command](args)
    except KeyboardInterrupt:
        again = " (it resumes where it stopped)" if args.command == "index" else ""
        print(f"dml {args.command}: interrupted; run the same command again{again}.", file=sys.stderr)
        return 130
    except (UnknownImageFormatError, IndexMismatchError, IncompleteIndexError) as err:
        print(f"dml {args.command}: error: {_error_line(err)}", file=sys.stderr)
        return USAGE_ERROR
    except (CheckpointError, CorruptImageError, MissingImageError, ValueError, RuntimeError, OSError) as err:
        print(f"dml {args.command}: error: {_error_line(err)}", file=sys.stderr)
        return RUN_ERROR


def _eval(args: argparse.Namespace) -> int:
    from dml.search import evaluate_run

    record, written = evaluate_run(
        args.run, split=args.split, device=args.device, cache_dir=args.cache_dir, out=args.out
    )
    print(f"{record['dataset']} ({record['split']} split, protocol {record['protocol']}), epoch {record['epoch']}:")
    for key, value in record["metrics"].items():
        if not isinstance(value, (list, dict)):
            print(f"  {key:32s} {value:.4f}" if isinstance(value, float) else f"  {key:32s} {value}")
    print(f"written to {written}")
    return 0


def _index(args: argparse.Namespace) -> int:
    from dml.search import build_index

    if args.batch_size < 1 or args.workers < 0:
        print("dml index: error: --batch-size must be >= 1 and --workers >= 0.", file=sys.stderr)
        return USAGE_ERROR
    with _warnings_as_lines("dml index"):
        index = build_index(
            args.run,
            args.images,
            args.out,
            dtype=args.dtype,
            search=args.search,
            kind=args.kind,
            batch_size=args.batch_size,
            device=args.device,
            workers=args.workers,
            progress=args.progress and sys.stderr.isatty(),
        )
    m = index.manifest
    print(
        f"indexed {m['count']} images ({m['dim']}-d {m['dtype']}) of {m['images']} into {index.folder}; "
        f"{len(m['skipped'])} skipped."
    )
    if m["approximate"]:
        a = m["approximate"]
        print(
            f"approximate search: faiss {a['kind']}, built in {a['build_seconds']:.1f} s, recall@{a['k']} against "
            f"exact search {a['recall']:.4f} (on {a['recall_queries']} gallery images as queries)."
        )
    else:
        print("exact search (chunked ranking of the whole gallery).")
    return 0


def _search(args: argparse.Namespace) -> int:
    from dml.search import export, search

    if args.top_k < 1:
        print("dml search: error: --top-k must be >= 1.", file=sys.stderr)
        return USAGE_ERROR
    from dml.search.explain import parse_region

    region = None if args.region is None else parse_region(args.region)
    with _warnings_as_lines("dml search"):
        result = search(
            args.index,
            args.queries,
            top_k=args.top_k,
            run=args.run,
            exact=True if args.exact else None,
            device=args.device,
            region=region,
        )
    written = export(result, args.out, report=args.report, shown=args.shown, heat_maps=args.heat_maps)
    best = result.rows[:, 0] if result.top_k else []
    for q, row in enumerate(best[:5]):
        item = result.index.items
        print(
            f"{result.queries.paths[q].name}: best match {item.paths[int(row)].name} (label "
            f"{item.labels[int(row)] or '-'}, score {result.scores[q, 0]:.3f})"
        )
    if len(best) > 5:
        print(f"... and {len(best) - 5} more queries")
    print(
        f"{len(result.queries)} queries, top {result.top_k} ({'exact' if result.exact else 'approximate'}) written "
        f"to {', '.join(str(p) for p in written.values())}"
    )
    return 0


@contextlib.contextmanager
def _warnings_as_lines(command: str) -> Iterator[None]:
    """Warnings (e.g. skipped unreadable images) as one ``command: warning: ...`` line each on stderr."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for warning in caught:
                print(f"{command}: warning: {warning.message}", file=sys.stderr)


def _data(args: argparse.Namespace) -> int:
    import dml.data

    if args.data_command == "list":
        for name in dml.data.available():
            print(name)
        return 0
    if args.data_command == "cache":
        return _cache(args)
    if args.data_command not in ("download", "check"):
        args.data_parser.print_help(sys.stderr)
        return USAGE_ERROR
    try:
        dml.data.dataset_info(args.name)
    except dml.data.UnknownDatasetError as err:
        print(f"dml data {args.data_command}: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    if args.data_command == "check":
        try:
            report = dml.data.check(args.name, args.root, decode=args.decode, progress=True)
        except (FileNotFoundError, NotADirectoryError) as err:  # e.g. $DML_DATA names a missing folder
            print(f"dml data check: error: {err}", file=sys.stderr)
            return RUN_ERROR
        print(report.format())
        return 0 if report.ok else RUN_ERROR
    return _download(args)


def _download(args: argparse.Namespace) -> int:
    from dml.data import DownloadError, ManualDownloadRequired, UnsafeArchiveError, download

    try:
        result = download(args.name, args.root, progress=args.progress, keep_archive=args.keep_archive)
    except ManualDownloadRequired as err:
        print(err)
        return MANUAL_DOWNLOAD
    except (DownloadError, UnsafeArchiveError, ValueError, OSError) as err:  # OSError: e.g. $DML_DATA is missing
        print(f"dml data download: error: {err}", file=sys.stderr)
        return RUN_ERROR
    except KeyboardInterrupt:
        print("dml data download: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    verb = "is already complete" if result.status == "present" else "was downloaded and verified"
    print(f"{args.name} {verb} in {result.path}. Check it with `dml data check {args.name} --root {result.path}`.")
    return 0


def _cache(args: argparse.Namespace) -> int:
    from dml.data import UnknownDatasetError, build_cache

    try:
        folder = build_cache(
            args.name, split=args.split, size=args.size, root=args.root, workers=args.workers, force=args.force
        )
    except UnknownDatasetError as err:
        print(f"dml data cache: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except (OSError, ValueError) as err:  # a missing dataset folder, a corrupt image, a full disk
        print(f"dml data cache: error: {err}", file=sys.stderr)
        return RUN_ERROR
    except KeyboardInterrupt:
        print("dml data cache: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    print(
        f"{args.name} ({args.split}) cached in {folder}; open it with "
        f"dml.data.build('cached', split={args.split!r}, source={args.name!r}, size={args.size})."
    )
    return 0


def _log_to_stdout() -> None:
    """The trainer's messages (``logging`` of ``dml``, INFO and up) as plain lines on stdout, above any progress bar."""
    from dml.utils.progress import tqdm

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            tqdm.write(self.format(record), file=sys.stdout)

    logger = logging.getLogger("dml")
    if not any(getattr(h, "dml_cli", False) for h in logger.handlers):
        handler = Handler()
        handler.dml_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _output_folder_refusal(output_dir: str, *, resume: bool, overwrite: bool) -> str | None:
    """Why a fresh run may not write into ``output_dir`` (a file, or a non-empty folder without ``--overwrite``)."""
    from pathlib import Path

    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        return f"the output folder {folder} is a file; choose another --output-dir."
    if resume or overwrite or not folder.is_dir():
        return None
    entries = sorted(p.name for p in folder.iterdir())
    if not entries:
        return None
    return (
        f"the output folder {folder} is not empty (it holds {len(entries)} entries, e.g. {entries[0]!r}); continue "
        "its run with --resume, replace it with --overwrite, or choose another --output-dir."
    )


def _train(args: argparse.Namespace) -> int:
    from dml.train import ConfigError, load_config, preflight, train

    _log_to_stdout()

    overrides = list(args.overrides)
    if args.output_dir is not None:
        overrides.append(f"output_dir={args.output_dir}")
    try:
        config = load_config(args.config, overrides)
        preflight(config)
    except ConfigError as err:
        print(f"dml train: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    refusal = _output_folder_refusal(config.output_dir, resume=args.resume, overwrite=args.overwrite)
    if refusal:
        print(f"dml train: error: {refusal}", file=sys.stderr)
        return USAGE_ERROR
    from dml.data.images import CorruptImageError, MissingImageError

    try:
        train(config, resume=args.resume)
    except KeyboardInterrupt:
        print("dml train: interrupted; continue with --resume.", file=sys.stderr)
        return 130
    except (CorruptImageError, MissingImageError) as err:
        print(f"dml train: error: {_bad_image_line(err, config.data)}", file=sys.stderr)
        return RUN_ERROR
    except (ValueError, RuntimeError, FileNotFoundError, FloatingPointError) as err:
        print(f"dml train: error: {_error_line(err)}", file=sys.stderr)
        return RUN_ERROR
    return 0


def _error_line(err: BaseException) -> str:
    """The message of ``err``; for an error a ``DataLoader`` worker re-raised (its message then holds the worker's
    traceback), the original message, taken from the traceback's last line."""
    text = str(err).strip()
    if "Original Traceback" not in text:
        return text
    last = text.splitlines()[-1]
    original = re.match(r"[\w.]+: (.*)", last)  # "dml.data.images.CorruptImageError: Image file ..."
    return original.group(1) if original else last


def _bad_image_line(err: OSError, data: object) -> str:
    """A missing or undecodable image: what is wrong, then how to find every such file of the dataset and how to
    train without them (``skip_corrupt``), instead of the generic fix of :mod:`dml.data.images`."""
    from dml.data.images import FIX, CorruptImageError

    problem = _error_line(err).removesuffix(FIX).strip()
    name, root = getattr(data, "name", "NAME"), getattr(data, "root", None)
    decode = " --decode" if isinstance(err, CorruptImageError) else ""
    command = f"dml data check {name}{f' --root {root}' if root is not None else ''}{decode}"
    return (
        f"{problem} List every unreadable file of {name} with `{command}` and re-download them, or train "
        "without them with --set data.kwargs.skip_corrupt=true (which decodes every image once at the start)."
    )


if __name__ == "__main__":
    sys.exit(main())
