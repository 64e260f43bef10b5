"""Grid files of ``medgan sweep``: read, checked and expanded into run specs, before anything runs.

A grid file (YAML) is a cartesian product (``grid:``) or an explicit list (``runs:``), plus optional ``fixed:``
values (see :mod:`~medgan_utils.tools.sweep`). It is untrusted input: YAML aliases are refused (a few lines of
them expand to billions of values), the file and the number of runs are capped (:data:`MAX_GRID_BYTES`,
:data:`MAX_RUNS`; the count is known before anything is expanded), and error messages never print a huge value.
:func:`iter_plan` yields checked specs one at a time, so ``--list`` streams.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from pathlib import Path

from ..core.errors import SettingError
from .runner import check_parameters, notebook_parameters, short_repr

GRID_KEYS = {"grid", "runs", "fixed"}
#: The most runs one sweep takes (a SLURM array is usually capped lower), and the largest grid file read.
MAX_RUNS = 10_000
MAX_GRID_BYTES = 2 ** 20


def _load_yaml(text: str):
    """``yaml.safe_load`` without aliases: ``*name`` refers to an earlier ``&name`` value, and a few lines of
    aliases expand to billions of values (a "billion laughs" bomb); a grid never needs them."""
    import yaml

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise AliasRefused(f"*{event.anchor}", event.start_mark.line + 1)
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=NoAliases)  # noqa: S506 - a SafeLoader subclass


class AliasRefused(Exception):
    def __init__(self, alias: str, line: int):
        super().__init__(alias, line)
        self.alias, self.line = alias, line


def read_grid(grid_path) -> list[dict]:
    """The runs a grid file asks for, in order (cartesian: the last key varies fastest)."""
    import yaml

    grid_path = Path(grid_path)
    fix = "check the file against the example in `medgan sweep --help` (a 'grid:' or a 'runs:' section)"
    try:
        if grid_path.stat().st_size > MAX_GRID_BYTES:
            raise SettingError(f"The grid file {grid_path} is larger than {MAX_GRID_BYTES // 2 ** 20} MB. Fix: a grid "
                               "lists parameter values; split a larger sweep into several grid files.")
        spec = _load_yaml(grid_path.read_text(encoding="utf-8"))
    except OSError as err:
        raise SettingError(f"Cannot read the grid file {grid_path}: {err.strerror or err}. "
                           "Fix: pass the path of an existing YAML file.") from err
    except AliasRefused as err:
        raise SettingError(f"The grid file {grid_path} uses the YAML alias {err.alias[:40]} (line {err.line}); "
                           "aliases are refused, since a few of them can expand to billions of values. Fix: write "
                           "the values out.") from None
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        why = str(getattr(err, "problem", None) or err or type(err).__name__)[:200]
        raise SettingError(f"The grid file {grid_path} is not valid YAML{line}: {why}. Fix: {fix}.") from None
    if not isinstance(spec, dict) or not spec or set(spec) - GRID_KEYS or ("grid" in spec) == ("runs" in spec):
        raise SettingError(f"The grid file {grid_path} must hold exactly one of 'grid:' (name: list of values) "
                           f"or 'runs:' (a list of parameter sets), plus an optional 'fixed:'. Fix: {fix}.")
    fixed = spec.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise SettingError(f"'fixed:' in {grid_path} must map names to values. Fix: {fix}.")
    if "grid" in spec:
        runs = _cartesian(spec["grid"], grid_path, fix)
    else:
        runs = spec["runs"]
        if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
            raise SettingError(f"'runs:' in {grid_path} must be a list of name: value mappings. Fix: {fix}.")
        _check_count(len(runs), grid_path)
    if not runs:
        raise SettingError(f"The grid in {grid_path} is empty: it gives no run. Fix: list at least one value.")
    return [{**fixed, **r} for r in runs]


def _cartesian(grid, grid_path: Path, fix: str) -> list[dict]:
    if not isinstance(grid, dict) or not grid:
        raise SettingError(f"'grid:' in {grid_path} must map each parameter to a list of values. Fix: {fix}.")
    for key, values in grid.items():
        if not isinstance(values, list):
            raise SettingError(f"grid value of {key} in {grid_path} must be a list (e.g. {key}: "
                               f"[{short_repr(values, 30)}]), got {short_repr(values)}. Fix: put the values in "
                               "square brackets.")
        if not values:
            raise SettingError(f"grid value of {key} in {grid_path} is an empty list, so the grid gives no run. "
                               "Fix: list at least one value, or remove the key.")
    _check_count(math.prod(len(v) for v in grid.values()), grid_path)  # before anything is expanded
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _check_count(n: int, grid_path: Path) -> None:
    if n > MAX_RUNS:
        raise SettingError(f"The grid in {grid_path} gives {n:,} runs, more than the {MAX_RUNS:,} one sweep takes. "
                           "Fix: split it into several grid files, or list fewer values.")


def run_id(params: dict) -> str:
    """A readable, stable folder name for one parameter set (the same set always gets the same name)."""
    text = json.dumps(params, sort_keys=True, default=str)
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    parts = (re.sub(r"[^A-Za-z0-9.+-]+", "", f"{k}-{v}") for k, v in sorted(params.items()))
    slug = "_".join(parts)[:60]
    return f"{slug}_{digest}" if slug else digest


def iter_plan(notebook, grid_path, fast: bool = False):
    """Checked run specs ``{index, id, params}``, one at a time (``--list`` prints each as soon as it is checked).
    Devices are checked by name only here: the machine that plans may not be the one that runs."""
    notebook = Path(notebook)
    known = notebook_parameters(notebook)
    seen = {}
    for i, params in enumerate(read_grid(grid_path)):
        if fast:
            params = {**params, "FAST": True}
        try:
            checked = check_parameters(notebook, params, known=known, devices=False)
        except SettingError as err:
            raise SettingError(f"Run {i} of {grid_path} ({short_repr(params, 120)}): {err}") from None
        rid = run_id(checked)
        if rid in seen:
            raise SettingError(f"Runs {seen[rid]} and {i} of {grid_path} have the same parameters "
                               f"{short_repr(checked, 120)}. Fix: remove the duplicate.")
        seen[rid] = i
        yield {"index": i, "id": rid, "params": checked}


def plan_sweep(notebook, grid_path, fast: bool = False) -> list[dict]:
    """Every checked run spec; every error is raised before anything runs."""
    return list(iter_plan(notebook, grid_path, fast=fast))
