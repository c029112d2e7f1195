"""What the built-book tests share: the repository root, its _config.yml, the pages of _toc.yml.

Imported by test_book.py and test_browser.py (not a test module). Needs PyYAML, which the book
extras bring; a test module importing this without it is skipped, as before.
"""
import importlib.util
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())

_spec = importlib.util.spec_from_file_location("sync_colab", ROOT / "book" / "_scripts" / "sync_colab.py")
sync_colab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync_colab)

# the root page first, then every entry of _toc.yml; notebooks are the pages with Colab badges
PAGES = [yaml.safe_load((ROOT / "_toc.yml").read_text())["root"]] + sync_colab.chapters(ROOT / "_toc.yml")
NOTEBOOKS = [page for page in PAGES if (ROOT / f"{page}.ipynb").exists()]
