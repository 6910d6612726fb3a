"""Run configurations: TOML files merged over method defaults, plus ``--set key=value`` overrides.

A configuration is a flat-ish dict; dotted keys in ``--set`` reach into tables
(``--set model.hidden=256``). Values are parsed as TOML literals (``3``, ``0.5``, ``true``,
``"gcn"``, ``[512, 256]``); anything that does not parse is taken as a plain string.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_DIR = Path(__file__).parent / "configs"


def read(path: str | Path) -> dict[str, Any]:
    """Parse a TOML config file; a syntax error names the file and line."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: {error}") from None


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: tables merge, everything else in ``override`` replaces ``base``."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_value(text: str) -> Any:
    """A TOML literal (number, bool, string, array), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(config: Mapping[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings; a key must already exist in ``config`` (catches typos)."""
    out = copy.deepcopy(dict(config))
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {assignment!r}: expected key=value")
        *parents, leaf = key.strip().split(".")
        table = out
        for part in parents:
            if not isinstance(table.get(part), dict):
                raise ValueError(f"--set {key}: no table {part!r} in the config")
            table = table[part]
        if leaf not in table:
            known = ", ".join(sorted(table))
            raise ValueError(f"--set {key}: unknown key {leaf!r} (known: {known})")
        table[leaf] = parse_value(text.strip())
    return out


def packaged(method: str, dataset: str) -> Path | None:
    """The shipped config for ``(method, dataset)``, if there is one."""
    path = CONFIG_DIR / method / f"{dataset}.toml"
    return path if path.exists() else None


def to_toml(config: Mapping[str, Any]) -> str:
    """Serialize a config (scalars, lists, nested tables) back to TOML, for the run folder."""

    def literal(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, str):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(literal(v) for v in value) + "]"
        raise TypeError(f"cannot write {type(value).__name__} to TOML")

    def table(prefix: str, values: Mapping[str, Any]) -> list[str]:
        lines = [f"{k} = {literal(v)}" for k, v in values.items() if not isinstance(v, Mapping)]
        for k, v in values.items():
            if isinstance(v, Mapping):
                name = f"{prefix}.{k}" if prefix else k
                lines += ["", f"[{name}]", *table(name, v)]
        return lines

    return "\n".join(table("", config)).strip() + "\n"
