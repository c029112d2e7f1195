"""The built book: one HTML page per _toc.yml entry, no broken images, no error output,
Colab links that point at the configured repository.

The book is built once per session WITHOUT executing anything (``execute_notebooks: off``;
the ``build`` fixture in conftest.py, shared with test_browser.py): the pages show the outputs
stored in the notebooks, which nbval checks separately. Runs in
``make html``; needs only a clone and the virtual environment.
"""
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

# The book extras (``pip install -e .[book]``, what the Makefile installs) bring these; a bare
# GPU box running ``pytest -m gpu tests`` may lack them.
BeautifulSoup = pytest.importorskip("bs4").BeautifulSoup
from _book import CONFIG, NOTEBOOKS, PAGES, ROOT, sync_colab  # noqa: E402  (skips without PyYAML)


def _colab_url(page: str) -> str:
    repo = CONFIG["repository"]
    owner_repo = repo["url"].rstrip("/").removesuffix(".git").removeprefix("https://github.com/")
    book = str(repo.get("path_to_book") or "").strip("/")
    path = f"{book}/{page}.ipynb" if book else f"{page}.ipynb"
    ref = sync_colab.release_ref(ROOT)
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{ref}/{path}"


def test_build_has_no_warnings(build):
    result = build[1]
    lines = (result.stdout + result.stderr).splitlines()
    warnings = [line for line in lines if "WARNING:" in line]  # Sphinx's, not a kernel's log
    assert result.returncode == 0 and not warnings, \
        "jupyter-book build -W failed:\n" + "\n".join(warnings or [result.stdout[-3000:], result.stderr[-3000:]])


def _soup(html: Path, page: str) -> BeautifulSoup:
    path = html / f"{page}.html"
    assert path.exists(), f"no HTML page for _toc.yml entry {page!r}"
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


@pytest.mark.parametrize("page", PAGES)
def test_page_exists_with_one_title(html, page):
    article = _soup(html, page).find("article")
    assert article is not None, f"{page}: no <article> in the page"
    titles = article.find_all("h1")
    assert len(titles) == 1, f"{page}: expected one H1 title, found {[t.get_text(strip=True) for t in titles]}"


@pytest.mark.parametrize("page", PAGES)
def test_images_exist(html, page):
    soup, here = _soup(html, page), (html / f"{page}.html").parent
    local = [img["src"] for img in soup.find_all("img") if img.get("src")
             and urlparse(img["src"]).scheme not in ("http", "https", "data")]
    missing = [src for src in local if not (here / unquote(urlparse(src).path)).is_file()]
    assert not missing, f"{page}: images missing on disk: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_no_error_output(html, page):
    soup = _soup(html, page)
    bad = soup.select("div.output.stderr, div.output.traceback, div.output.error")
    assert not bad, f"{page}: error/stderr output: {bad[0].get_text()[:300]!r}"
    assert "Traceback (most recent call last)" not in soup.get_text(), f"{page}: a traceback is shown"


@pytest.mark.parametrize("page", NOTEBOOKS)
def test_colab_links_point_at_the_repository(html, page):
    soup = _soup(html, page)
    badges = [img.find_parent("a") for img in soup.find_all("img", alt="Open In Colab")]
    assert badges and all(a is not None for a in badges), f"{page}: no Open in Colab badge link"
    expected = _colab_url(page)
    assert [a["href"] for a in badges] == [expected], f"{page}: badge links {[a['href'] for a in badges]}"
    colab = [a["href"] for a in soup.find_all("a", href=True) if "colab.research.google.com" in a["href"]]
    assert all(href == expected for href in colab), f"{page}: Colab links {colab} != {expected}"
