"""The package's shape: imports only run down the layers, theory holds closed forms only, one
address per name, the glossary's spellings, the spectra registry, the thread policy."""
import ast
from pathlib import Path

import pytest
import torch

import ttsbook as tb
from ttsbook.spectra import check_covariance
from ttsbook.tasks import make_task
from ttsbook import utils
from ttsbook.runs.options import options
from ttsbook.runs.config import RUN_OPTIONS, RunConfig
from ttsbook.spectra import COV_HELP, SPECTRA

# Lowest first: a module may import only modules of earlier layers (or its own).
LAYERS = [
    {"checks"}, {"utils", "spectra", "params", "voting"}, {"tasks", "theory"}, {"tokens"},
    {"lsa", "gpt", "predictors", "evaluate"}, {"train", "stopping"},
    {"experiments", "plots", "parallel", "llm"}, {"planner"}, {"runs"},
    {"__main__", "__init__"},
]
# The wings: namespaces (ttsbook.theory.gamma), never flattened to ttsbook.X.
WINGS = ("theory", "experiments", "stopping", "parallel", "planner", "runs")
# The runs wing (ttsbook/runs/), lowest first: its modules import only earlier ones.
WING = ["options", "config", "run", "score", "sweep", "pool", "launch", "cli", "__init__"]
# Import edges between the package's top-level modules (``theory/`` and ``runs/`` count as
# one each): 104 before issue 21 (the six run modules then counted apart), 73 after it,
# including the language-model chapter's llm -> checks, utils, voting and voting -> checks.
# A ceiling, so that a new edge is a decision.
MAX_IMPORT_EDGES = 73
PACKAGE = Path(tb.__file__).parent


def _modules() -> dict:
    """Top-level module name -> its files: a subpackage (``theory/``) counts as one module."""
    files = {}
    for path in PACKAGE.rglob("*.py"):
        files.setdefault(path.relative_to(PACKAGE).parts[0].removesuffix(".py"), []).append(path)
    return files


def _imports(paths) -> set:
    """The package's top-level modules that ``paths`` import (relative imports, any depth)."""
    found = set()
    for path in paths:
        parts = path.relative_to(PACKAGE).parent.parts  # () at the top, ("theory",) inside it
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = parts[:len(parts) - node.level + 1]
                if node.module:
                    found.add((base + tuple(node.module.split(".")))[0])
                else:                                   # from . import theory, stopping
                    found |= {base[0]} if base else {a.name for a in node.names}
    return found


def test_imports_only_run_down_the_layers():
    layer = {m: i for i, group in enumerate(LAYERS) for m in group}
    files = _modules()
    assert set(layer) == set(files), "place every module in LAYERS"
    for module, level in layer.items():
        upward = {m for m in _imports(files[module]) if layer[m] >= level and m != module}
        assert not upward or module == "__init__", f"{module} imports {upward} from its layer or above"


def test_the_tutorial_core_never_imports_the_runs_wing():
    """Every module outside ``ttsbook/runs/`` (``__init__`` exports it, ``__main__`` calls it)
    reads and runs without the wing: no import of ``runs`` at any depth, in any form."""
    for module, paths in _modules().items():
        if module in ("runs", "__init__", "__main__"):
            continue
        assert "runs" not in _imports(paths), f"{module} imports the runs wing"
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                assert not any(n.startswith("ttsbook.runs") for n in names), path.name


def test_the_wing_s_modules_import_down_its_layers():
    wing = PACKAGE / "runs"
    assert sorted(WING) == sorted(p.stem for p in wing.glob("*.py"))
    for i, module in enumerate(WING):
        tree = ast.parse((wing / f"{module}.py").read_text())
        inside = {node.module.split(".")[0] for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}
        assert inside <= set(WING[:i]), f"runs/{module} imports {inside - set(WING[:i])}"


def import_edges() -> set:
    """``(importer, imported)`` pairs of the package's top-level modules, self-imports left out."""
    return {(module, other) for module, paths in _modules().items()
            for other in _imports(paths) if other != module}


def test_import_edges_stay_under_their_ceiling():
    edges = import_edges()
    assert len(edges) <= MAX_IMPORT_EDGES, f"{len(edges)} import edges > {MAX_IMPORT_EDGES}"


def test_theory_holds_closed_forms_only():
    """No estimator, sampler or prompt measurement in ``theory/``: it never imports the tasks
    (the prompts), nor anything that draws or holds them."""
    assert not _imports(_modules()["theory"]) & {"tasks", "tokens", "evaluate", "train"}


def test_no_name_has_two_addresses():
    """A wing's names live only in its namespace: none is also flattened to ``ttsbook.X``."""
    import types
    flat = {n: getattr(tb, n) for n in dir(tb) if not n.startswith("_")
            and not isinstance(getattr(tb, n), types.ModuleType)}
    twice = {n for n, obj in flat.items()
             if getattr(obj, "__module__", "").split(".")[1:2] in [[w] for w in WINGS]}
    assert not twice, f"also at a wing's address: {sorted(twice)}"
    assert all(isinstance(getattr(tb, w), types.ModuleType) for w in WINGS)


# Each formula once (issue 21): the one place that writes it, and how often the package's
# source may spell it (a definition counts; a second copy would raise the count).
ONE_HOME = {
    "- b) @ V.T": ("predictors.py", 1),                        # the pseudo-Newton chain
    "(1 + n / (1 + ": ("theory/population.py", 1),              # the scaling law
    "non-negative numbers summing to 1": ("spectra.py", 1),     # the mixture check
    "bootstrap_mean_ci(": ("evaluate.py", 2),                   # bootstrap rows: summarize
    "_spectral_quadrature(": ("theory/finite.py", 2),           # the Marchenko–Pastur law
    "def residual_stop(": ("stopping.py", 1),
    "def steps_to_reach(": ("experiments.py", 1),               # the first k reaching ε
    "eigvalsh(X.transpose(1, 2) @ X": ("experiments.py", 1),    # the divergent-prompt sampler
}
# ... and no chapter hand-rolls one of them again.
NOT_IN_CHAPTERS = ("eigvalsh(X.transpose(1, 2) @ X", "next((k for k", ".nonzero()[0]) + 1",
                   "< target]", "residual_stop(test_prompts")


def test_each_formula_is_written_once():
    found = {pattern: [] for pattern in ONE_HOME}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        for pattern in ONE_HOME:
            found[pattern] += [path.relative_to(PACKAGE).as_posix()] * text.count(pattern)
    for pattern, (home, count) in ONE_HOME.items():
        assert found[pattern] == [home] * count, f"{pattern!r} written in {found[pattern]}"
    import json
    for nb in sorted((PACKAGE.parent / "book").glob("*.ipynb")):
        code = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"]
                       if c["cell_type"] == "code")
        again = [p for p in NOT_IN_CHAPTERS if p in code]
        assert not again, f"{nb.name} hand-rolls {again}: call the package's one copy"


# The README glossary, one spelling per row: a public parameter never uses another one.
GLOSSARY = {
    "d": "n_dims", "cov_test": "test_cov", "cov_target": "test_cov", "target_cov": "test_cov",
    "cov_train": "train_cov", "k_max": "n_steps", "K_max": "n_steps", "budgets": "n_steps",
    "K": "n_steps", "lr": "eta", "c": "eta", "step_size": "eta", "n_test": "m", "m_test": "m",
}
# ``step`` is the batch index (tasks, training); ``n_points`` the length of a prompt of either
# kind (tasks, the models' forward pass). Elsewhere training context is ``n``, test length ``m``.
ONLY_IN = {"step": {"tasks", "train"}, "n_points": {"tasks", "lsa", "gpt"}}


def _public_signatures():
    """``(module, function, parameter)`` for every public function and method of the core
    and the wings."""
    for module, paths in _modules().items():
        if module == "__main__":
            continue
        for path in paths:
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and (not node.name.startswith("_")
                                                          or node.name == "__init__"):
                    a = node.args
                    for arg in a.posonlyargs + a.args + a.kwonlyargs:
                        yield module, node.name, arg.arg


def test_public_parameters_use_the_glossary_spelling():
    wrong = [f"{m}.{f}({p}): say {GLOSSARY[p]}" for m, f, p in _public_signatures()
             if p in GLOSSARY]
    wrong += [f"{m}.{f}({p}): not here" for m, f, p in _public_signatures()
              if p in ONLY_IN and m not in ONLY_IN[p]]
    assert not wrong, wrong
    import inspect
    assert list(inspect.signature(tb.evaluate).parameters)[2] == "m"
    assert list(inspect.signature(tb.train).parameters)[2] == "n"


def test_every_function_is_short():
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno < 50, f"{path.name}:{node.name} is over 50 lines"


def test_package_lines_are_at_most_100_characters():
    long = [f"{path.relative_to(PACKAGE.parent)}:{i} ({len(line)})"
            for path in sorted(PACKAGE.rglob("*.py"))
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if len(line) > 100]
    assert not long, "lines over 100 characters: " + ", ".join(long)


def test_a_spectrum_is_one_registry_entry():
    for name, spectrum in SPECTRA.items():
        assert f"'{name}" in COV_HELP and spectrum.help in COV_HELP
    for spec in ("isotropic", "power:0.5", "power_raw:2", "missing:1:0.5"):
        cov = tb.parse_cov(spec, 3)
        assert cov.shape == (3, 3) and check_covariance(cov) is not None
    with pytest.raises(ValueError, match=r"'missing:7' for d = 3"):
        make_task("isotropic+missing:7", 3)


def test_every_config_field_is_an_option():
    flags = {o.flag for o in RUN_OPTIONS}
    assert {"--steps", "--optimizer", "--n-layer", "--init-seed", "--seed", "--pos", "--n-points"} <= flags
    assert len(flags) == len(RUN_OPTIONS) == len(options(tb.GPTConfig)) + len(options(tb.TrainConfig)) + 6
    assert all(o.help and "``" not in o.help for o in RUN_OPTIONS)
    assert RunConfig().record()["model"] == {"pos": "none"}


@pytest.mark.parametrize("env, set_before, threads, size, expected", [
    ({}, None, None, "small", 1),                        # small model, nothing chosen: one thread
    ({}, None, None, "large", 2),                        # a large model keeps torch's threads
    ({"OMP_NUM_THREADS": "2"}, None, None, "small", 2),  # the user's environment wins,
    ({}, 3, None, "small", 3),                           # so does an earlier torch.set_num_threads
    ({}, None, 2, "small", 2),                           # and an explicit threads argument
])
def test_thread_policy(monkeypatch, env, set_before, threads, size, expected):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    state = {"threads": set_before or 2}                 # torch's default here: 2
    monkeypatch.setattr(utils, "_TORCH_THREADS", 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: state["threads"])
    monkeypatch.setattr(torch, "set_num_threads", lambda n: state.update(threads=n))
    model = torch.nn.Linear(10, 10 if size == "small" else utils.SMALL_MODEL // 10)
    with utils.thread_policy(model, torch.device("cpu"), threads):
        inside = state["threads"]
    assert inside == expected and state["threads"] == (set_before or 2)  # restored afterwards


# Public names no chapter needs but a reader's own script does (catching an error, building a
# GPT config, writing a predictor, training a CoT model by hand).
FOR_SCRIPTS = {"BadValue", "GPTConfig", "Prompts", "cot_loss", "preset"}


def test_public_api_is_what_the_book_or_a_script_needs():
    """Every public name is used by a chapter or page, or is one of ``FOR_SCRIPTS``: nothing
    is exported just because it exists (helpers stay importable from their modules)."""
    import json
    import re
    import types
    book = PACKAGE.parent / "book"
    text = "".join(p.read_text() for p in book.glob("*.md"))
    for nb in book.glob("*.ipynb"):
        text += "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
    public = {n for n in dir(tb) if not n.startswith("_")
              and not isinstance(getattr(tb, n), types.ModuleType)}
    unused = {n for n in public - FOR_SCRIPTS
              if not re.search(rf"(ttsbook|tb)\.{n}\b|from ttsbook import[^\n]*\b{n}\b", text)}
    assert not unused, f"exported but used by no chapter: {sorted(unused)}"
    assert FOR_SCRIPTS <= public


def test_every_name_a_chapter_calls_is_exported():
    """``ttsbook.X`` in a chapter's code (or ``from ttsbook import X``) exists in the package."""
    import json
    from importlib.util import find_spec
    import re
    missing = set()
    for nb in (PACKAGE.parent / "book").glob("*.ipynb"):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            code = "".join(cell["source"])
            names = set(re.findall(r"\bttsbook\.([A-Za-z_]\w*)", code))
            missing |= {f"{nb.stem}: ttsbook.runs.{n}"
                        for n in re.findall(r"\bttsbook\.runs\.([A-Za-z_]\w*)", code)
                        if not hasattr(tb.runs, n)}
            for group in re.findall(r"^from ttsbook import \(?([^)\n]*)", code, re.M):
                names |= {n.strip().split(" as ")[0] for n in group.split(",") if n.strip()}
            missing |= {f"{nb.stem}: ttsbook.{n}" for n in names
                        if not hasattr(tb, n) and find_spec(f"ttsbook.{n}") is None}
    assert not missing, sorted(missing)
