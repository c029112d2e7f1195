"""Grids of GPT training runs: what runs make up a sweep, which are done, the collected table.

A sweep is a TOML file (chapter 8's paper-scale grid ships as ``ttsbook/data/sweeps/``
``e3e4_paper.toml``) or ``--grid FIELD=V1,V2`` options over any :class:`RunConfig` field, plus
training seeds. Each grid point is a run in ``RunDir.of(config, root)``, named by its config
hash. One job trains it (resuming from its atomic checkpoint) and scores it on every evaluation
setting, writing a score file beside the weights (:func:`~ttsbook.runs.score.score_file`); a
run with all of its score files is skipped, so re-launching a sweep does only the unfinished
work. :func:`collect` gathers the score files into one tidy table, ``<root>/<name>.csv`` (and
``.json``), the one chapters read. Running the jobs is :mod:`ttsbook.runs.launch`'s.
"""
from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from ..checks import BadValue, check_name
from ..spectra import check_cov_spec
from ..utils import atomic_write
from .options import Option, flag_of
from .config import RUN_OPTIONS, RunConfig
from .run import RunDir
from .score import EvalConfig, score_file

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the cluster extra installs tomli
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

SHIPPED_SWEEPS = Path(str(resources.files("ttsbook") / "data" / "sweeps"))
"""The sweep files that ship with the package, by name (``e3e4_paper``: chapter 8, paper size)."""
SWEEP_KEYS = ("name", "seeds", "base", "grid", "eval")


@dataclass
class Sweep:
    """An expanded grid: its ``runs`` (one config per run id), evaluation settings ``evals``
    and ``axes``, the fields that vary (columns of the results table)."""

    name: str
    runs: list
    evals: list
    axes: tuple


# ---------------------------------------------------------------- the grid
def field_name(o: Option) -> str:
    """A field's name in a sweep: its option without dashes (``init_seed`` is ``model.seed``)."""
    return o.flag.lstrip("-").replace("-", "_")


def field_option(name: str, arg: str = "grid") -> Option:
    """The option of the run-config field ``name``: ``n_points``, ``--n-points`` or
    ``model.pos``."""
    key = name.strip().lstrip("-").replace("-", "_")
    for o in RUN_OPTIONS:
        if key in (field_name(o), o.dest):
            return o
    fields = ", ".join(sorted(field_name(o) for o in RUN_OPTIONS))
    raise BadValue(arg, f"unknown field {name!r}; run-config fields are: {fields}")


KINDS = {str: ((str,), "text"), int: ((int,), "an integer"),
         float: ((int, float), "a number"), bool: ((bool,), "true or false")}


def field_value(o: Option, value, arg: str = "grid"):
    """``value`` of field ``o``, read from text with the option's own parser when it is text;
    a value of the wrong type (``train_cov = 5``, ``steps = 1.5``) is a ``BadValue``."""
    kinds, what = KINDS.get(o.parse, (None, o.metavar))
    if kinds and (not isinstance(value, str) or o.parse is str) and (
            not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
        raise BadValue(arg, f"field {field_name(o)}: expected {what}, got {value!r}")
    if not isinstance(value, str) or o.parse is str:
        return value
    if o.parse is bool:
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
    else:
        try:
            return o.parse(value)
        except ValueError:
            pass
    raise BadValue(arg, f"field {field_name(o)}: expected {o.metavar or 'true or false'}, "
                        f"got {value!r}")


def parse_grid(items) -> dict:
    """``["n_points=20,30", "pos=learned"]`` -> ``{option: [20, 30], ...}`` (an axis each)."""
    axes = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise BadValue("grid", f"expected FIELD=V1,V2,..., got {item!r}")
        o = field_option(name)
        # text values start with a letter, so "missing:1,2" stays one value
        values = [v.strip() for v in re.split(",(?=[A-Za-z])" if o.parse is str else ",", text)
                  if v.strip()]
        if not values:
            raise BadValue("grid", f"empty grid: field {field_name(o)} has no values in {item!r}")
        axes[o] = [field_value(o, v) for v in values]
    return axes


def read_sweep(sweep: str | Path) -> tuple[str, dict]:
    """``(name, spec)`` of a sweep file: a path to a ``.toml`` file or a shipped sweep's name."""
    path = Path(sweep)
    if path.suffix != ".toml" and len(path.parts) == 1:
        path = SHIPPED_SWEEPS / f"{sweep}.toml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in SHIPPED_SWEEPS.glob("*.toml")))
        raise BadValue("sweep", f"no sweep file {str(sweep)!r}: give a .toml file or a shipped "
                                f"sweep ({shipped})")
    if tomllib is None:
        raise BadValue("sweep", "reading a sweep file needs Python 3.11+ or tomli "
                                "(pip install 'ttsbook[cluster]'); --grid options need neither")
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise BadValue("sweep", f"{path} is not valid TOML ({err})") from None
    except UnicodeDecodeError:
        raise BadValue("sweep", f"{path} is not UTF-8 text (a TOML file is)") from None
    except OSError as err:
        raise BadValue("sweep", f"{path} cannot be read ({err.strerror or err})") from None
    if unknown := sorted(set(spec) - set(SWEEP_KEYS)):
        raise BadValue("sweep", f"{path}: unknown key(s) {unknown}; "
                                f"allowed: {', '.join(SWEEP_KEYS)}")
    name = spec.get("name", path.stem)
    try:
        return check_name(name, "name"), spec
    except BadValue as err:
        raise BadValue("sweep", f"{path}: {err}") from None


def _points(base: dict, block: dict, arg: str):
    """Every combination of ``block``'s axes over ``base`` (both: option -> value(s))."""
    for o, values in block.items():
        if not values:
            raise BadValue(arg, f"empty grid: field {field_name(o)} has no values")
    for combo in itertools.product(*block.values()):
        yield base | dict(zip(block, combo))


def _config(point: dict, arg: str) -> RunConfig:
    nested = {}
    for o, value in point.items():
        node = nested
        for name in o.path[:-1]:
            node = node.setdefault(name, {})
        node[o.path[-1]] = value
    try:
        return RunConfig(**nested)
    except BadValue as err:
        flag = flag_of(err.arg, RUN_OPTIONS) or err.arg
        raise BadValue(arg, f"field {flag.lstrip('-').replace('-', '_')}: {err}") from None


def _table(spec: dict, key: str, arg: str) -> dict:
    """``spec[key]`` as ``{option: value}``, every field checked and text values parsed."""
    table = spec.get(key, {})
    if not isinstance(table, dict):
        raise BadValue(arg, f"[{key}] must be a table of FIELD = value(s)")
    out = {}
    for name, value in table.items():
        o = field_option(name, arg)
        out[o] = [field_value(o, v, arg) for v in value] \
            if isinstance(value, list) and key == "grid" else field_value(o, value, arg)
    return out


def _blocks(spec: dict, arg: str) -> list[dict]:
    """The ``[[grid]]`` blocks (or one ``[grid]`` table) as ``{option: [values]}``."""
    blocks = spec.get("grid", [{}])
    blocks = [blocks] if isinstance(blocks, dict) else blocks
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise BadValue(arg, "grid must be a [grid] table or [[grid]] tables of FIELD = values")
    if "grid" in spec and not all(blocks):  # an empty block would add the [base] run alone
        raise BadValue(arg, "empty grid: a [grid] or [[grid]] table holds no field")
    return [{o: v if isinstance(v, list) else [v]
             for o, v in _table({"grid": b}, "grid", arg).items()}
            for b in blocks]


def _evals(spec: dict, overrides: dict, arg: str) -> list[EvalConfig]:
    if not isinstance(spec.get("eval", {}), dict):
        raise BadValue(arg, "[eval] must be a table of FIELD = value(s)")
    table = spec.get("eval", {}) | overrides
    fields = [f.name for f in dataclasses.fields(EvalConfig)]
    if unknown := sorted(set(table) - set(fields)):
        raise BadValue(arg, f"unknown eval field(s) {unknown}; "
                            f"eval fields are: {', '.join(fields)}")
    lists = {k: v if isinstance(v, list) else [v] for k, v in table.items()}
    if empty := [k for k, v in lists.items() if not v]:
        raise BadValue(arg, f"empty grid: eval field {empty[0]} has no values")
    return [EvalConfig(**dict(zip(lists, combo))) for combo in itertools.product(*lists.values())]


def expand(spec: dict | None = None, grid=(), seeds=None, evals: dict | None = None,
           name: str = "sweep") -> Sweep:
    """The runs of a sweep: ``spec`` (a parsed sweep file, or ``None``) with the ``--grid``
    axes ``grid`` (texts ``FIELD=V1,V2``) and ``seeds`` replacing the file's axes of the same
    field in every block; ``evals`` overrides the file's ``[eval]`` fields."""
    arg = "sweep" if spec is not None else "grid"
    check_name(name, "name")
    if spec is None and not grid:
        raise BadValue("grid", "empty grid: give a sweep file (a .toml path or a shipped sweep) "
                               "or --grid FIELD=V1,V2")
    if spec is not None and not grid and not (spec.get("base") or spec.get("grid")):
        raise BadValue(arg, "empty sweep: the file defines no runs (give a [base] or [grid] "
                            "table), or add --grid FIELD=V1,V2")
    spec, cli = spec or {}, parse_grid(grid)
    given = set(cli) | ({field_option("seed")} if seeds is not None else set())
    seeds = spec.get("seeds") if seeds is None else seeds
    if seeds is not None:
        cli[field_option("seed")] = list(seeds) if isinstance(seeds, (list, tuple)) else [seeds]
    base, runs = _table(spec, "base", arg), {}
    blocks = [b | cli for b in _blocks(spec, arg)]
    for block in blocks:
        where = "grid" if set(block) & given else arg  # the option to name in an error
        for point in _points(base, block, where):
            config = _config(point, where)
            runs.setdefault(config.run_id(), config)
    if not runs:
        raise BadValue(arg, "empty grid: it holds no runs")
    axes = tuple(dict.fromkeys(field_name(o) for b in blocks for o, v in b.items()
                               if len(v) > 1 or len(blocks) > 1))
    scored = _evals(spec, evals or {}, arg)
    for d in sorted({c.model.n_dims for c in runs.values()}):  # before any training
        for e in scored:
            check_cov_spec(e.test_cov, d, "test_cov")
    return Sweep(name, list(runs.values()), scored, axes)


# ---------------------------------------------------------------- which runs are done
def pending(sweep: Sweep, root: str | Path) -> list[RunConfig]:
    """The runs of ``sweep`` under ``root`` still to train or to score."""
    return [c for c in sweep.runs
            if not all(score_file(RunDir.of(c, root), e).exists() for e in sweep.evals)]


# ---------------------------------------------------------------- results
def _axis_value(config: RunConfig, name: str):
    value = config
    for part in field_option(name).path:
        value = getattr(value, part)
    return ":".join(map(str, value)) if isinstance(value, list) else value


def read_results(path: str | Path) -> pd.DataFrame:
    """A results table (or a score file) as written: ids and names stay text."""
    return pd.read_csv(path, dtype={"run_id": str, "run": str, "predictor": str})


def collect(sweep: Sweep, root: str | Path, write: bool = True) -> pd.DataFrame:
    """Every score of the sweep's runs under ``root``, one tidy frame: :func:`evaluate_runs`'s
    columns, then ``run_id``, ``n_prompts``, ``eval_seed`` and the grid's axes. With ``write``
    it is saved as ``root/<name>.csv`` and ``.json`` (when any run is scored)."""
    files = [(c, score_file(RunDir.of(c, root), e)) for c in sweep.runs for e in sweep.evals]
    frames = [read_results(file).assign(**{a: _axis_value(c, a) for a in sweep.axes
                                           if a not in ("train_cov", "pos", "cot_steps")})
              for c, file in files if file.exists()]
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    if write:
        atomic_write(Path(root) / f"{sweep.name}.csv", lambda p: table.to_csv(p, index=False))
        atomic_write(Path(root) / f"{sweep.name}.json",
                     lambda p: table.to_json(p, orient="records", indent=1, double_precision=15))
    return table


def swept_scores(results, run: str | Path, spec: EvalConfig) -> pd.DataFrame | None:
    """The scores of the finished ``run`` under ``spec`` from a collected results table (a
    path or a frame), in :func:`evaluate_runs`'s columns; ``None`` when the table is absent or
    lacks them (then evaluate the run)."""
    if not isinstance(results, pd.DataFrame):
        if results is None or not Path(results).is_file():
            return None
        results = read_results(results)
    rows = results[(results["run"] == Path(run).name) & (results["test_cov"] == spec.test_cov)
                   & (results["m"] == spec.m) & (results["n_prompts"] == spec.n_prompts)
                   & (results["eval_seed"] == spec.seed) & (results["k"] <= spec.n_steps)]
    if sorted(rows["k"]) != list(range(1, spec.n_steps + 1)):
        return None
    return rows.iloc[:, :list(rows.columns).index("run_id")].reset_index(drop=True)

