"""book/_scripts/sync_colab.py: every chapter's Colab badge and setup cell follow _config.yml."""
import importlib.util
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")  # a book extra; see tests/test_book.py

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("sync_colab", ROOT / "book" / "_scripts" / "sync_colab.py")
sync_colab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync_colab)

CHAPTERS = sync_colab.chapters(ROOT / "_toc.yml")
# The notebook chapters; plain MyST pages (the reference part) have no badge or setup cell.
NOTEBOOKS = [name for name in CHAPTERS if not (ROOT / f"{name}.md").exists()]


def test_toc_lists_the_chapters():
    assert CHAPTERS[0] == "book/tts_basics" and len(NOTEBOOKS) == 13
    assert sync_colab.out_of_sync(ROOT, only=CHAPTERS) == []  # .md pages are not reported
    assert "book/intro" not in CHAPTERS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_chapter_in_sync(name):
    path = ROOT / f"{name}.ipynb"
    if not path.exists():
        pytest.skip(f"{name}.ipynb not written yet (tests/test_book.py fails on missing pages)")
    url, ref, book_dir = sync_colab.repository(ROOT / "_config.yml")
    changed = sync_colab.sync_file(path, ROOT, url, ref, book_dir, write=False)
    assert not changed, f"{name} is out of sync: run python book/_scripts/sync_colab.py"


def _placeholder_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("<!-- colab -->"),
                nbformat.v4.new_code_cell("# colab setup"),
                nbformat.v4.new_markdown_cell("# A chapter\n\nSome prose."),
                nbformat.v4.new_code_cell("print(1)", execution_count=7,
                                          outputs=[nbformat.v4.new_output("stream", text="1\n")])]
    nbformat.write(nb, path)


@pytest.fixture
def book(tmp_path):
    """A tiny book: a copy of _config.yml and a toc with one placeholder chapter."""
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "ttsbook"\nversion = "1.2.3"\n')
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/ch\n")
    (tmp_path / "book").mkdir()
    _placeholder_notebook(tmp_path / "book" / "ch.ipynb")
    return tmp_path


def test_rewrite_replaces_placeholders_and_keeps_outputs(book):
    assert sync_colab.main(["--root", str(book), "--check"]) == 1
    assert sync_colab.main(["--root", str(book)]) == 0
    nb = nbformat.read(book / "book" / "ch.ipynb", as_version=4)
    title, setup = nb.cells[0], nb.cells[1]
    assert title.source.startswith("# A chapter\n\n[![Open In Colab]")
    assert "https://colab.research.google.com/github/ttsbook/ttsbook/blob/v1.2.3/book/ch.ipynb" in title.source
    assert 'RELEASE = "git+https://github.com/ttsbook/ttsbook@v1.2.3"' in setup.source
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code"]
    assert nb.cells[2].execution_count == 7 and nb.cells[2].outputs[0].text == "1\n"
    text = (book / "book" / "ch.ipynb").read_text()
    assert text.startswith('{\n "cells": [\n  {\n') and text.endswith("}\n")  # indent 1, as Jupyter
    assert sync_colab.main(["--root", str(book), "--check"]) == 0
    assert sync_colab.main(["--root", str(book)]) == 0 and (book / "book" / "ch.ipynb").read_text() == text


def test_changing_the_url_or_version_changes_the_links(book):
    sync_colab.main(["--root", str(book)])
    config = book / "_config.yml"
    config.write_text(config.read_text().replace("https://github.com/ttsbook/ttsbook", "https://github.com/me/fork"))
    project = book / "pyproject.toml"
    project.write_text(project.read_text().replace("1.2.3", "2.0.0"))
    assert sync_colab.out_of_sync(book) == ["book/ch"]
    assert sync_colab.out_of_sync(book, write=True) == ["book/ch"]
    nb = nbformat.read(book / "book" / "ch.ipynb", as_version=4)
    assert "colab.research.google.com/github/me/fork/blob/v2.0.0/book/ch.ipynb" in nb.cells[0].source
    assert "ttsbook/ttsbook" not in nb.cells[0].source
    assert '"git+https://github.com/me/fork@v2.0.0"' in nb.cells[1].source
    assert sync_colab.out_of_sync(book) == []


def test_only_named_chapters(book):
    assert sync_colab.out_of_sync(book, only=["book/ch.ipynb"]) == ["book/ch"]
    with pytest.raises(ValueError, match="not chapters"):
        sync_colab.out_of_sync(book, only=["book/nope"])


def test_missing_chapter_and_bad_url_are_reported(book):
    (book / "book" / "ch.ipynb").unlink()
    assert sync_colab.out_of_sync(book) == ["book/ch (missing)"]
    (book / "_config.yml").write_text("repository:\n  url: https://gitlab.com/a/b\n")
    with pytest.raises(ValueError, match="repository.url"):
        sync_colab.out_of_sync(book)


def test_setup_cell_is_inserted_when_absent():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("x = 1")]
    sync_colab.sync_notebook(nb, "BADGE", "SETUP")
    assert [c.source for c in nb.cells] == ["# T\n\nBADGE", "SETUP", "x = 1"]


def test_setup_cell_pins_the_release_and_never_touches_torch():
    setup = sync_colab.setup_source("https://github.com/o/r", "v0.9.0")
    install = [line for line in setup.splitlines() if "pip install" in line]
    assert len(install) == 1 and "--no-deps" in install[0]            # torch, numpy, pandas kept
    assert not any(name in install[0] for name in ("torch", "numpy", "pandas", "-U", "--upgrade"))
    assert 'RELEASE = "git+https://github.com/o/r@v0.9.0"' in setup    # a tag, never a branch
    assert max(map(len, setup.splitlines())) <= 77                     # fits the code box


def test_release_is_the_package_version():
    import ttsbook
    assert sync_colab.release_ref(ROOT) == f"v{ttsbook.__version__}"
