"""The ``gcl-jax`` command line: ``gcl-jax train METHOD DATASET`` and ``gcl-jax data info NAME``.

User mistakes (unknown dataset, missing or corrupt files, bad flags) print one line to stderr and
exit with status 2; only genuine bugs show a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line with exit status 2."""

    def error(self, message):
        raise SystemExit(_fail(f"{self.prog}: {message}"))


def _fail(message: str) -> int:
    print(f"gcl-jax: error: {message}", file=sys.stderr)
    return 2


def _data_info(args) -> int:
    from gcl_jax import data

    dataset = data.load(args.name, root=args.root)
    print(json.dumps(dataset.info()))
    return 0


def _train(args) -> int:
    from gcl_jax import parallel, runner

    explicit = (args.coordinator, args.num_processes, args.process_id)
    if args.distributed or parallel.distributed_settings(*explicit):  # flags, else GCL_JAX_* variables
        parallel.initialize_distributed(*explicit)
    record = runner.run(
        args.method, args.dataset, config_file=args.config, overrides=args.set, seed=args.seed,
        out=args.out, resume=args.resume, root=args.root, devices=args.devices, progress=not args.quiet,
    )
    print(
        f"{record['method']} on {record['dataset']}: test {record['metric']} "
        f"{100 * record['test_mean']:.2f} ± {100 * record['test_std']:.2f} "
        f"({record['protocol']} protocol, {len(record['per_split'])} split(s)); run folder: {args.out or 'runs/'}"
    )
    return 0


def _embed_text(args) -> int:
    import time

    from gcl_jax import text

    started = time.perf_counter()
    try:
        files = text.embed_dataset(args.dataset, root=args.root, batch_size=args.batch_size)
    except ImportError as error:  # the text extra is missing: a user mistake, not a bug
        return _fail(str(error))
    print(f"embedded {args.dataset} in {time.perf_counter() - started:.1f} s: {files['nodes']}, {files['prompts']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gcl-jax", description="Graph contrastive learning in JAX.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    fit = commands.add_parser("train", help="pretrain a method on a dataset, evaluate it, write a run folder")
    fit.add_argument("method", help="method name, e.g. grace")
    fit.add_argument("dataset", help="dataset name, e.g. cora")
    fit.add_argument("--config", default=None, help="TOML file merged over the method's packaged config")
    fit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--out", default=None, help="run folder (default runs/METHOD-DATASET-seedN)")
    fit.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    fit.add_argument("--root", default=None, help="data root holding one folder per dataset")
    fit.add_argument("--devices", type=int, default=None,
                     help="data-parallel over this many devices, counted over all processes (default: 1, or all when distributed)")
    multi = fit.add_argument_group("multi-process (multi-host) training: every process runs the same command")
    multi.add_argument("--coordinator", default=None, metavar="HOST:PORT", help="address of process 0 (env GCL_JAX_COORDINATOR)")
    multi.add_argument("--num-processes", type=int, default=None, metavar="N", help="number of processes (env GCL_JAX_NUM_PROCESSES)")
    multi.add_argument("--process-id", type=int, default=None, metavar="K", help="this process, 0..N-1 (env GCL_JAX_PROCESS_ID)")
    multi.add_argument("--distributed", action="store_true",
                       help="join a managed cluster (TPU pod, SLURM) detected by jax.distributed.initialize()")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.set_defaults(run=_train)
    data_parser = commands.add_parser("data", help="inspect datasets")
    data_commands = data_parser.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    info = data_commands.add_parser("info", help="print a dataset's counts as one JSON object")
    info.add_argument("name", help="dataset name, e.g. cora, amazon-photo, mutag, imdb-binary")
    info.add_argument("--root", default=None, help="data root holding one folder per dataset")
    info.set_defaults(run=_data_info)
    embed = commands.add_parser("embed-text", help="embed a text-attributed graph's texts offline (needs the text extra)")
    embed.add_argument("dataset", help="text-attributed dataset, e.g. citeseer-tag")
    embed.add_argument("--root", default=None, help="data root holding one folder per dataset")
    embed.add_argument("--batch-size", type=int, default=64, help="texts per encoder call")
    embed.set_defaults(run=_embed_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, PermissionError) as error:
        return _fail("; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__)


if __name__ == "__main__":
    sys.exit(main())
