"""Reproduce published numbers: run (method, dataset) cells over seeds and write RESULTS.md.

    python experiments/reproduce.py --cells grace:cora grace:citeseer --seeds 0 1 2 3 4
    python experiments/reproduce.py --cells grace:cora --set eval.protocol=grace --tag grace-protocol
    python experiments/reproduce.py --cells grace:cora --set model.some_option=1 --tag variant   # own row

Each run is a normal ``gcl-jax train`` run (packaged config for the cell) whose folder lands in
``experiments/runs/<method>-<dataset>-seed<k>/``; finished runs are reused, so the script can be
stopped and restarted. RESULTS.md is rebuilt from every ``results.json`` under that folder,
against the paper numbers in ``targets.toml``; nothing in it is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from gcl_jax import config as config_lib
from gcl_jax import runner
from gcl_jax.data.safeio import atomic_write_text

HERE = Path(__file__).parent
RUNS = HERE / "runs"


def code_commit() -> str:
    """The commit of the gcl_jax code that runs, ``+`` when its files differ from it, or ``?``
    outside a git checkout: recorded with each run so a row can be traced to the code behind it."""
    root = Path(runner.__file__).resolve().parents[1]
    git = lambda *args: subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    head = git("rev-parse", "--short=8", "HEAD")
    if head.returncode != 0:
        return "?"
    dirty = git("status", "--porcelain", "--", "gcl_jax").stdout.strip()
    return head.stdout.strip() + ("+" if dirty else "")


def run_cell(method: str, dataset: str, seed: int, overrides: list[str], tag: str = "") -> dict:
    """One seed of one cell; reuses a finished run folder. Adds ``commit`` (:func:`code_commit`)."""
    out = RUNS / f"{method}-{dataset}{'-' + tag if tag else ''}-seed{seed}"
    if (out / "results.json").exists():
        return json.loads((out / "results.json").read_text())
    commit = code_commit()
    record = {**runner.run(method, dataset, seed=seed, out=out, overrides=overrides, progress=False, resume=out.exists()), "commit": commit}
    atomic_write_text(out / "results.json", json.dumps(record, indent=2) + "\n")
    return record


#: Per-split series that repeat the main metric (selection scores, fold scores): not shown again.
REPEATS = {"val_accuracy", "fold_accuracy"}


def run_tag(folder: Path, record: dict) -> str:
    """The ``--tag`` a run folder was made with (``grace-cora-pot-seed0`` -> ``pot``), or ``""``."""
    middle = folder.name.removeprefix(f"{record['method']}-{record['dataset']}").rsplit("-seed", 1)[0]
    return middle.removeprefix("-")


def extras(rs: list[dict], limit: int = 8) -> str:
    """Means over seeds of the protocol's further metrics (NMI, ARI, AUC, ...), or ``–``. Past
    ``limit`` of them, only those of the main metric's setting (``auc_20`` for ``macro_f1_20``) and
    those without a setting are shown; results.json has the rest."""
    names = sorted({k for r in rs for k, v in r.get("extra", {}).items() if v and k not in REPEATS})
    more = len(names) > limit
    if more:
        suffix = "_" + rs[0]["metric"].rsplit("_", 1)[-1]
        names = [k for k in names if k.endswith(suffix) or not any(c.isdigit() for c in k)]
    means = [f"{k} {100 * np.mean([np.mean(r['extra'][k]) for r in rs if r['extra'].get(k)]):.2f}" for k in names]
    return ", ".join(means) + (", … (results.json)" if more else "") or "–"


def commits(rs: list[dict]) -> str:
    """The code commits a row's runs were made with (runs from before commits were recorded: ``–``)."""
    return ", ".join(sorted({r.get("commit", "–") for r in rs}))


def target_key(method: str, tag: str) -> str:
    """The ``targets.toml`` table a row is compared with: ``grace`` + ``--tag random`` -> ``grace-random``."""
    return f"{method}-{tag}" if tag else method


def missing(records: list[dict], targets: dict) -> str:
    """The target cells that no run folder covers yet, one line per ``targets.toml`` table."""
    have = {(target_key(r["method"], r["tag"]), r["dataset"]) for r in records}
    lines = []
    for key, cells in sorted(targets.items()):
        if key == "rerun":
            continue
        todo = [f"{dataset} ({paper})" for dataset, paper in cells.items() if (key, dataset) not in have]
        if todo:
            lines.append(f"- `{key}`: " + ", ".join(todo))
    return "\n".join(lines) or "none"


def table(records: list[dict], targets: dict) -> str:
    """The RESULTS.md table: one row per (method, tag, dataset, protocol) with every seed found.

    A tagged row (``--tag pot``) is shown as ``method [tag]`` and compared with ``targets[method-tag]``
    (:func:`target_key`). ``targets["rerun"][key]`` holds what others measured re-running the same
    method (e.g. DGL's examples), shown next to the paper's.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["method"], r["tag"], r["dataset"], r["protocol"]), []).append(r)
    lines = [
        "| method | dataset | protocol | metric | paper | others' re-run | ours (mean ± std) | seeds | diff | other metrics (mean) | train s / run | machine | code |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (method, tag, dataset, protocol), rs in sorted(groups.items()):
        scores = 100 * np.array([r["test_mean"] for r in rs])
        key = target_key(method, tag)
        paper = targets.get(key, {}).get(dataset)
        rerun = targets.get("rerun", {}).get(key, {}).get(dataset, "–")
        diff = f"{scores.mean() - paper:+.2f}" if paper is not None else "–"
        name = f"{method} [{tag}]" if tag else method
        lines.append(
            f"| {name} | {dataset} | {protocol} | {rs[0]['metric']} | {paper if paper is not None else '–'} | {rerun} | "
            f"{scores.mean():.2f} ± {scores.std():.2f} | {len(rs)} | {diff} | {extras(rs)} | "
            f"{np.mean([r['train_seconds'] for r in rs]):.0f} | {rs[0]['machine']} | {commits(rs)} |"
        )
    return "\n".join(lines)


def write_results() -> Path:
    records = []
    for path in sorted(RUNS.glob("*/results.json")):
        record = json.loads(path.read_text())
        records.append({**record, "tag": run_tag(path.parent, record)})
    targets = config_lib.read(HERE / "targets.toml")
    body = [
        "# Results: paper vs gcl-jax",
        "",
        "Generated by `python experiments/reproduce.py` from the run folders under `experiments/runs/`",
        "(each a `gcl-jax train METHOD DATASET --seed K` run with the packaged config). Accuracy in %,",
        "std over seeds (population std). Paper numbers, others' re-runs and their sources:",
        "`experiments/targets.toml`.",
        "`code`: the gcl_jax commit each run was made with (`+`: with uncommitted changes; `–`: recorded",
        "before commits were). `train s / run`: the training clock of the run's metrics.jsonl, carried",
        "across resumes (runs before 5096b5c: the training call's wall time in the last process).",
        "Tag `fixed`: a fixed number of epochs where the packaged config now uses the official early",
        "stopping (`patience`).",
        "",
        table(records, targets),
        "",
        "## Target cells not run yet",
        "",
        "Published numbers in `experiments/targets.toml` that no run folder covers yet (paper number in",
        "parentheses): on this 2-core CPU most take hours per seed (GRACE on Amazon-Photo: 2,000 epochs",
        "at about 3.5 s each; BGRL: 10,000 at 0.7 s), so they wait for an accelerator or a longer slot.",
        "",
        missing(records, targets),
        "",
    ]
    path = HERE / "RESULTS.md"
    path.write_text("\n".join(body))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="*", default=[], help="METHOD:DATASET pairs to run")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--set", action="append", default=[], help="config override for every run")
    parser.add_argument("--tag", default="", help="suffix for the run folders (e.g. when --set changes the protocol)")
    args = parser.parse_args(argv)
    for cell in args.cells:
        method, _, dataset = cell.partition(":")
        for seed in args.seeds:
            started = time.perf_counter()
            record = run_cell(method, dataset, seed, args.set, args.tag)
            print(f"{method} {dataset} seed {seed}: {100 * record['test_mean']:.2f} ({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"wrote {write_results()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
