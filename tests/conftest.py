"""The book built ONCE per test session, shared by test_book.py (HTML checks) and
test_browser.py (headless-Chromium checks).

The build executes nothing (``execute_notebooks: off``): the pages show the outputs stored in
the notebooks, which nbval checks separately. Imports are lazy so that a bare machine without
the book extras (e.g. ``pytest -m gpu tests`` on a GPU box) still collects the other tests.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def build(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """Build the book from the stored outputs into a temporary folder: (HTML root, the run)."""
    from _book import CONFIG, ROOT, yaml

    out = tmp_path_factory.mktemp("book")
    config = dict(CONFIG, execute=dict(CONFIG.get("execute", {}), execute_notebooks="off"))
    # local_extensions paths are relative to the config file, which moves to `out`
    sphinx = dict(config.get("sphinx", {}))
    sphinx["local_extensions"] = {name: str(ROOT / path)
                                  for name, path in (sphinx.get("local_extensions") or {}).items()}
    config["sphinx"] = sphinx
    (out / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    jb = Path(sys.executable).with_name("jupyter-book")
    jb = jb if jb.exists() else shutil.which("jupyter-book")
    cmd = [str(jb), "build", str(ROOT), "--config", str(out / "_config.yml"),
           "--path-output", str(out), "-W", "--keep-going"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    return out / "_build" / "html", result


@pytest.fixture(scope="session")
def html(build) -> Path:
    return build[0]
