"""The ``dml`` command line.

``dml train CONFIG [--set key=value ...] [--resume] [--output-dir DIR]`` trains from a YAML config (examples in
``configs/``); ``dml data list`` prints the registered datasets. Bad usage (unknown option, unknown config key,
wrong type) exits with status 2 and a one-line explanation; a failure during the run exits with status 1.
Multi-GPU: ``torchrun --nproc_per_node=N -m dml.cli train CONFIG``.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dml import __version__

USAGE_ERROR = 2
RUN_ERROR = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dml", description="Deep metric learning: train and evaluate embeddings.")
    parser.add_argument("--version", action="version", version=f"dml {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train a model from a YAML config",
                                description="Train an embedding model from a YAML config file.")
    train.add_argument("config", metavar="CONFIG", help="YAML config file, e.g. configs/smoke_synthetic.yaml")
    train.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                       help="override a config value, e.g. --set optim.lr=0.01 (repeatable; values parsed as YAML)")
    train.add_argument("--resume", action="store_true",
                       help="continue from OUTPUT_DIR/checkpoint.pt instead of starting afresh")
    train.add_argument("--output-dir", metavar="DIR",
                       help="where to write checkpoints and metrics (overrides output_dir)")

    data = commands.add_parser("data", help="dataset utilities", description="Dataset utilities.")
    data.set_defaults(data_parser=data)
    data_commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data_commands.add_parser("list", help="print the registered dataset names")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dml`` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    if args.command == "data":
        return _data(args)
    return _train(args)


def _data(args: argparse.Namespace) -> int:
    import dml.data

    if args.data_command != "list":
        args.data_parser.print_help(sys.stderr)
        return USAGE_ERROR
    for name in dml.data.available():
        print(name)
    return 0


def _train(args: argparse.Namespace) -> int:
    from dml.train import ConfigError, load_config, preflight, train

    overrides = list(args.overrides)
    if args.output_dir is not None:
        overrides.append(f"output_dir={args.output_dir}")
    try:
        config = load_config(args.config, overrides)
        preflight(config)
    except ConfigError as err:
        print(f"dml train: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    try:
        train(config, resume=args.resume)
    except KeyboardInterrupt:
        print("dml train: interrupted; continue with --resume.", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, FileNotFoundError, FloatingPointError) as err:
        print(f"dml train: error: {err}", file=sys.stderr)
        return RUN_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
