"""The built book in a real browser: headless Chromium, driven by Selenium, at 1280 px.

The book is built once per session from the stored outputs (the ``build`` fixture in
conftest.py, shared with test_book.py), served on 127.0.0.1 from a thread, and every page of
_toc.yml is opened once; what each check needs is measured on that visit, and a full-page
screenshot goes to ``_build/screenshots/<page>.png``.

Gating (``make test``): no console errors, MathJax (served from the book's own _static)
typesets without errors, every image loads, every toc entry is in the left navigation, no
horizontal page scroll, at 1280 px and at a phone's 412 px.

Marker ``content`` (gating too): code lines cut off, display equations wider than their box,
figures shown below 60 % of their size; measured with every collapsed box (hide-input cells,
hint and solution dropdowns) opened. ``pytest tests/test_browser.py -m content`` runs only them.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make browser-deps``) and ``selenium``
(the ``book`` extra). Without them the module is skipped, unless TTSBOOK_REQUIRE_BROWSER=1 (set
by ``make test``), which turns the skip into a failure.
"""
import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

from _book import PAGES, ROOT  # skips without PyYAML

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
REQUIRED = os.environ.get("TTSBOOK_REQUIRE_BROWSER") == "1"
WIDTH, HEIGHT = 1280, 900
PHONE = 412              # a common phone's CSS width
MAX_SHOT_HEIGHT = 16000  # Chromium cannot capture taller than ~16k px in one screenshot
LEGIBLE = 0.60           # a figure shown below this fraction of its natural width is too small
SCREENSHOTS = ROOT / "_build" / "screenshots"

# External resources the book links on purpose. The test machine is offline, so they cannot
# load here; they are the ONLY requests allowed to fail, and the tests say so when they do.
EXTERNAL_OK = ("https://colab.research.google.com/assets/colab-badge.svg",)


def _missing() -> str:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e .[book])"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is missing (make browser-deps: apt-get install chromium chromium-driver)"
    return ""


if _missing():
    if REQUIRED:
        raise RuntimeError(f"TTSBOOK_REQUIRE_BROWSER=1 but {_missing()}")
    pytest.skip(_missing(), allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

# Everything one visit measures, in one script (arguments: the legibility threshold).
MEASURE = r"""
const legible = arguments[0];
// open every collapsed box first (hide-input cells, hint and solution dropdowns): a reader
// who opens one must not find its lines cut, and a closed box has no width to measure
document.querySelectorAll('details').forEach((d) => { d.open = true; });
const where = (el) => {  // a short, human name for an element: its cell, or its section
  const cell = el.closest('div.cell');
  const cells = [...document.querySelectorAll('article div.cell')];
  const sec = el.closest('section[id]');
  const tag = cell ? `cell ${cells.indexOf(cell) + 1}/${cells.length}` : 'text';
  return `${tag} in #${sec ? sec.id : '?'}`;
};
const longest = (text) => text.split('\n').reduce((a, b) => (b.length > a.length ? b : a), '').slice(0, 80);
const code = [...document.querySelectorAll(
    'article div.highlight pre, article div.cell_output pre, article div.output pre')]
  .filter((pre) => pre.scrollWidth > pre.clientWidth + 1)
  .map((pre) => ({where: where(pre), px: pre.scrollWidth - pre.clientWidth,
                  output: !pre.closest('div.highlight') || !!pre.closest('.cell_output'),
                  line: longest(pre.textContent)}));
const tex = new Map();
if (window.MathJax && MathJax.startup && MathJax.startup.document) {
  for (const item of MathJax.startup.document.math) tex.set(item.typesetRoot, item.math);
}
const equations = [...document.querySelectorAll('article mjx-container[display="true"]')]
  .map((c) => {
    const math = c.querySelector('mjx-math');
    const box = c.getBoundingClientRect(), inner = math ? math.getBoundingClientRect() : box;
    return {where: where(c), px: Math.round(Math.max(inner.width - c.clientWidth,
                                                     inner.right - box.right, box.left - inner.left)),
            tex: (tex.get(c) || '').trim().replace(/\s+/g, ' ').slice(0, 80)};
  }).filter((e) => e.px > 1);
const images = [...document.querySelectorAll('img')].map((img) => {
  const shown = img.getBoundingClientRect().width;
  return {src: img.getAttribute('src'), url: img.currentSrc || img.src, where: where(img),
          loaded: img.complete && img.naturalWidth > 0, natural: img.naturalWidth,
          shown: Math.round(shown), ratio: img.naturalWidth ? shown / img.naturalWidth : 0,
          reason: img.getAttribute('data-legible'),
          content: !!img.closest('article') && img.getClientRects().length > 0};
});
const nav = [...document.querySelectorAll('nav.bd-docs-nav a[href]')]
  .map((a) => new URL(a.getAttribute('href'), location.href).pathname);
const mjxErrors = [...document.querySelectorAll('mjx-merror, [data-mjx-error]')]
  .map((e) => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 120));
const mathjaxSrc = [...document.scripts].map((s) => s.src).filter((s) => /mathjax/i.test(s));
return {
  code, equations, images, nav, mjxErrors, mathjaxSrc,
  mathSources: document.querySelectorAll('article .math').length,
  typeset: document.querySelectorAll('article mjx-container').length,
  pageScroll: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  height: document.documentElement.scrollHeight,
};
"""

# Resolves when MathJax has typeset the page (or at once on a page without MathJax).
WAIT_MATHJAX = r"""
const done = arguments[arguments.length - 1];
const ready = () => (window.MathJax && MathJax.startup && MathJax.startup.promise)
  ? MathJax.startup.promise.then(() => done('ok'), (e) => done('error: ' + e)) : null;
if (!document.querySelector('script[src*="mathjax" i]')) { done('no mathjax'); return; }
const t0 = Date.now();
(function poll() { if (ready() === null) { if (Date.now() - t0 > 20000) done('timeout'); else setTimeout(poll, 50); } })();
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # one line per request would drown pytest's output
        pass


@pytest.fixture(scope="session")
def server(html):
    handler = functools.partial(_QuietHandler, directory=str(html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def driver():
    options = webdriver.ChromeOptions()
    # explicit browser and driver paths: Selenium skips Selenium Manager, nothing is downloaded
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--window-size={WIDTH},{HEIGHT}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    chrome.set_page_load_timeout(60)
    chrome.set_script_timeout(30)
    yield chrome
    chrome.quit()


@pytest.fixture(scope="session")
def visits(build, server, driver) -> dict:
    """Every page opened once at 1280 px: {page: measurements + console log + screenshot}."""
    assert all((build[0] / f"{page}.html").is_file() for page in PAGES), \
        "the book did not build: see test_book.py::test_build_has_no_warnings"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    found = {}
    for page in PAGES:
        driver.set_window_size(WIDTH, HEIGHT)
        driver.get(f"{server}/{page}.html")
        mathjax = driver.execute_async_script(WAIT_MATHJAX)
        driver.execute_async_script(  # fonts and images settled before anything is measured
            "const done = arguments[0]; document.fonts.ready.then(() => Promise.all("
            "[...document.images].map((i) => i.complete ? 0 : new Promise((r) => "
            "{i.onload = i.onerror = r;})))).then(() => done(0));")
        found[page] = dict(driver.execute_script(MEASURE, LEGIBLE), mathjax=mathjax)
        found[page]["log"] = driver.get_log("browser")
        # full page: the window as tall as the document (capped), then one screenshot
        driver.set_window_size(WIDTH, min(found[page]["height"] + 200, MAX_SHOT_HEIGHT))
        driver.save_screenshot(str(SCREENSHOTS / f"{Path(page).name}.png"))
        found[page]["log"] += driver.get_log("browser")
        # a phone: the theme's narrow layout; code boxes scroll inside, the page must not
        driver.set_window_size(PHONE, HEIGHT)
        found[page]["phoneScroll"] = driver.execute_script(
            "const e = document.documentElement; return e.scrollWidth - e.clientWidth;")
        found[page]["log"] += driver.get_log("browser")
    return found


def _external_ok(url: str) -> bool:
    return any(url.startswith(ok) for ok in EXTERNAL_OK)


# ---------------------------------------------------------------- gating checks


@pytest.mark.parametrize("page", PAGES)
def test_no_console_errors(visits, page):
    """Every SEVERE console entry fails, except a failed load of one of EXTERNAL_OK."""
    severe = [e["message"] for e in visits[page]["log"] if e["level"] == "SEVERE"]
    errors = [m for m in severe if not (m.split(" ")[0] and _external_ok(m.split(" ")[0]))]
    assert not errors, f"{page}: {len(errors)} console error(s):\n" + "\n".join(errors)


@pytest.mark.parametrize("page", PAGES)
def test_mathjax_typesets_from_the_book(visits, server, page):
    seen = visits[page]
    assert seen["mathjax"] in ("ok", "no mathjax"), f"{page}: MathJax did not finish: {seen['mathjax']}"
    remote = [src for src in seen["mathjaxSrc"] if not src.startswith(server)]
    assert not remote, f"{page}: MathJax loaded from outside the book: {remote}"
    assert not seen["mjxErrors"], f"{page}: MathJax errors: {seen['mjxErrors']}"
    if seen["mathSources"]:
        assert seen["mathjaxSrc"], f"{page}: {seen['mathSources']} math elements but no MathJax script"
        assert seen["typeset"], f"{page}: {seen['mathSources']} math elements, none typeset (no mjx-container)"


@pytest.mark.parametrize("page", PAGES)
def test_images_load(visits, page):
    images = visits[page]["images"]
    broken = [f"{i['src']} ({i['where']})" for i in images if not i["loaded"] and not _external_ok(i["url"])]
    assert not broken, f"{page}: {len(broken)} image(s) did not load: {broken}"


@pytest.mark.parametrize("page", PAGES)
def test_toc_entries_in_navigation(visits, server, page):
    nav = {path.removesuffix(".html") for path in visits[page]["nav"]}
    missing = [entry for entry in PAGES if f"/{entry}" not in nav]
    assert not missing, f"{page}: toc entries missing from the left navigation: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_no_horizontal_page_scroll(visits, page):
    px = visits[page]["pageScroll"]
    assert px <= 0, f"{page}: the page scrolls sideways by {px} px at {WIDTH} px width"


@pytest.mark.parametrize("page", PAGES)
def test_readable_on_a_phone(visits, page):
    px = visits[page]["phoneScroll"]
    assert px <= 0, f"{page}: the page scrolls sideways by {px} px at {PHONE} px (a phone)"


# ---------------------------------------------------------------- content checks (issue 12)
# Gating since the chapters were fixed; the marker lets them run alone (`make content`).


@pytest.mark.content
@pytest.mark.parametrize("page", PAGES)
def test_code_lines_not_cut(visits, page):
    cut = visits[page]["code"]
    lines = [f"{c['where']} ({'output' if c['output'] else 'code'}): {c['px']} px too wide, "
             f"longest line {c['line']!r}" for c in cut]
    assert not cut, f"{page}: {len(cut)} code block(s) cut off at {WIDTH} px:\n" + "\n".join(lines)


@pytest.mark.content
@pytest.mark.parametrize("page", PAGES)
def test_display_equations_fit(visits, page):
    wide = visits[page]["equations"]
    lines = [f"{e['where']}: {e['px']} px too wide: {e['tex']!r}" for e in wide]
    assert not wide, f"{page}: {len(wide)} display equation(s) wider than their box:\n" + "\n".join(lines)


@pytest.mark.content
@pytest.mark.parametrize("page", PAGES)
def test_images_legible(visits, page):
    small = [i for i in visits[page]["images"]  # figures in the page, not hidden menu icons
             if i["content"] and i["loaded"] and not i["reason"] and i["ratio"] < LEGIBLE]
    lines = [f"{i['src']} ({i['where']}): shown {i['shown']} px of {i['natural']} px "
             f"({i['ratio']:.0%})" for i in small]
    assert not small, (f"{page}: {len(small)} image(s) shown below {LEGIBLE:.0%} of their width "
                       "(enlarge, or give the <img> a data-legible=\"reason\"):\n" + "\n".join(lines))
