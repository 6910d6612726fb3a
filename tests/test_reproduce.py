"""experiments/reproduce.py: rows of RESULTS.md and the code commit recorded with each run."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("reproduce", ROOT / "experiments" / "reproduce.py")
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)


def record(seed, score, **more):
    return {
        "method": "grace", "dataset": "cora", "protocol": "planetoid", "metric": "accuracy", "test_mean": score,
        "extra": {}, "train_seconds": 10.0 + seed, "machine": "x86_64 cpu x1", "tag": "", **more,
    }


def test_code_commit_names_this_checkout():
    commit = reproduce.code_commit()
    assert commit == "?" or re.fullmatch(r"[0-9a-f]{8}\+?", commit), commit


def test_table_row_compares_with_the_paper_and_lists_commits():
    rows = [record(0, 0.80, commit="abcdef12"), record(1, 0.82, commit="abcdef12+"), record(2, 0.84)]
    targets = {"grace": {"cora": 81.9}, "rerun": {"grace": {"cora": 80.5}}}
    line = reproduce.table(rows, targets).splitlines()[-1]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:9] == ["grace", "cora", "planetoid", "accuracy", "81.9", "80.5", "82.00 ± 1.63", "3", "+0.10"]
    assert cells[-1] == "abcdef12, abcdef12+, –"


def test_run_tag_reads_the_folder_suffix():
    assert reproduce.run_tag(Path("grace-cora-pot-seed0"), {"method": "grace", "dataset": "cora"}) == "pot"
    assert reproduce.run_tag(Path("grace-cora-seed3"), {"method": "grace", "dataset": "cora"}) == ""


def test_rows_without_a_rerun_show_a_dash():
    line = reproduce.table([record(0, 0.80)], {"grace": {"cora": 81.9}}).splitlines()[-1]
    assert [c.strip() for c in line.strip("|").split("|")][5] == "–"


def test_tagged_rows_compare_with_their_own_targets_and_uncovered_cells_are_listed():
    targets = {"grace": {"cora": 81.9, "citeseer": 71.2}, "grace-random": {"cora": 83.3}, "rerun": {"grace": {"cora": 80.5}}}
    rows = [record(0, 0.84, protocol="grace", tag="random"), record(0, 0.80)]
    lines = reproduce.table(rows, targets).splitlines()[2:]
    by_name = {c[0]: c for c in ([x.strip() for x in line.strip("|").split("|")] for line in lines)}
    assert by_name["grace [random]"][4] == "83.3" and by_name["grace [random]"][8] == "+0.70"
    assert reproduce.missing(rows, targets) == "- `grace`: citeseer (71.2)"
    assert reproduce.missing(rows + [record(0, 0.7, dataset="citeseer")], targets) == "none"
