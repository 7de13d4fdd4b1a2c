"""The rendered book, read in a real browser.

Builds the book once (the README's command: ``sphinx-build -c docs/book . OUT``) into a
temporary folder, which must give no warning (a link to a missing file or section is one),
serves it on 127.0.0.1 and opens every page in headless Chromium. Each page
must load with no console error, no page error and no request leaving the machine; every
formula must be typeset by MathJax (no TeX error, no raw ``$$``, ```` ```math ```` or
``\\begin{`` text outside code); every image must load; every link inside the book must
point to a file of the book and, with a ``#fragment``, to an element with that id.

Needs the ``book`` extra (``pip install -e ".[book]"``) and Chromium (Debian's ``chromium``
package; ``MINIGEN_CHROMIUM`` names another binary). Without them the test is skipped, except
under CI (``CI=true``), where a skip would hide that the book went untested.

``MINIGEN_BOOK_SCREENSHOTS=docs/images`` also writes the README's two screenshots there
(``book-chapter.png``, ``book-notebook.png``).
"""

import functools
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

pytestmark = pytest.mark.book

ROOT = Path(__file__).resolve().parents[1]
BOOK_MODULES = ["sphinx", "myst_nb", "sphinx_book_theme", "sphinx-mathjax-offline", "playwright"]

# Text that only shows when a formula was not typeset: display-math fences, TeX environments.
RAW_MATH = re.compile(r"\$\$|```|\\begin\{|\\end\{|\\(?:frac|sum|mathbb|mathcal|operatorname)\b")
# Inline math left as text: $...$ with TeX-ish content.
RAW_INLINE = re.compile(r"\$[^$\s][^$\n]{0,200}?[\\^_{}][^$\n]{0,200}?\$")

PAGE_JS = r"""async () => {
    if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
        await window.MathJax.startup.promise;
    }
    const article = document.querySelector("main") || document.body;
    const clone = article.cloneNode(true);
    clone.querySelectorAll("pre, code, script, style, mjx-container, .highlight").forEach(
        (e) => e.remove());
    const maths = [...document.querySelectorAll(".math")];
    return {
        text: clone.textContent,
        math: maths.length,
        typeset: maths.filter((e) => e.querySelector("mjx-container")).length,
        containers: document.querySelectorAll("mjx-container").length,
        errors: [...document.querySelectorAll("mjx-merror")].map(
            (e) => e.getAttribute("data-mjx-error") || e.textContent),
        images: [...document.images].map((img) => ({
            src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0})),
        links: [...document.querySelectorAll("a[href]")].map((a) => a.href),
        ids: [...document.querySelectorAll("[id]")].map((e) => e.id).concat(
            [...document.querySelectorAll("a[name]")].map((e) => e.name)),
    };
}"""


def _unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must test the book, but {reason}")
    pytest.skip(reason)


def _chromium():
    for candidate in (os.environ.get("MINIGEN_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """The built book's folder (built once per session of this module)."""
    missing = [name for name in BOOK_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        _unavailable(f"the book extra is not installed ({', '.join(missing)}): pip install -e '.[book]'")
    if _chromium() is None:
        _unavailable("Chromium is not installed (apt-get install chromium, or set MINIGEN_CHROMIUM)")
    out = tmp_path_factory.mktemp("book") / "html"
    warnings = out.parent / "warnings.txt"
    command = [sys.executable, "-m", "sphinx", "-q", "-c", "docs/book", ".", str(out), "-w", str(warnings)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"the book did not build:\n{result.stdout}\n{result.stderr}")
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a browser that drops a connection early (favicon.ico) is no failure


@pytest.fixture(scope="module")
def server(book):
    """The book served over HTTP on 127.0.0.1 (as a reader's browser would get it)."""
    httpd = _QuietServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(book)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _pages(book):
    """Every HTML page of the book but the top index.html, which redirects to the first one
    (the theme's templates under _static/ are not pages)."""
    names = (path.relative_to(book).as_posix() for path in book.rglob("*.html"))
    return sorted(name for name in names if not name.startswith("_static/") and name != "index.html")


def _target_file(book, path):
    file = book / unquote(path).lstrip("/")
    return file / "index.html" if file.is_dir() else file


@pytest.fixture
def page(browser, server):
    """A browser tab that may only reach the book; its errors collect in page.problems."""
    origin = urlsplit(server).netloc
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    problems = []

    def route(route):
        if urlsplit(route.request.url).netloc == origin:
            route.continue_()
        else:
            problems.append(f"request to outside the book: {route.request.url}")
            route.abort()

    context.route("**/*", route)
    tab = context.new_page()
    tab.on("console", lambda msg: msg.type == "error" and problems.append(f"console error: {msg.text}"))
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.problems = problems
    yield tab
    context.close()


def test_every_page_in_chromium(book, server, page):
    pages = _pages(book)
    assert len(pages) > 18, pages  # at least the chapters and the notebooks
    origin = urlsplit(server).netloc
    warnings = (book.parent / "warnings.txt").read_text().splitlines()
    failures = [f"build warning: {line}" for line in warnings if line.strip()]
    ids, links = {}, []
    for name in pages:
        page.problems.clear()
        page.goto(f"{server}/{name}", wait_until="load")
        info = page.evaluate(PAGE_JS)
        problems = list(page.problems)
        ids[name] = set(info["ids"])
        links += [(name, href) for href in info["links"]]
        problems += [f"TeX error: {error}" for error in info["errors"]]
        if info["typeset"] != info["math"]:
            problems.append(f"{info['math'] - info['typeset']} of {info['math']} formulas not typeset")
        if name.startswith(("chapters/", "notebooks/")) and info["containers"] == 0:
            problems.append("no MathJax output on a page with formulas")
        for pattern in (RAW_MATH, RAW_INLINE):
            text = info["text"]
            problems += [
                f"raw math in the text: {' '.join(text[m.start() - 40 : m.end() + 40].split())!r}"
                for m in pattern.finditer(text)
            ]
        problems += [f"image did not load: {image['src']}" for image in info["images"] if not image["ok"]]
        failures += [f"{name}: {problem}" for problem in problems]

    page.goto(f"{server}/index.html")  # the top index.html only redirects to the first page
    page.wait_for_url(f"{server}/docs/book/index.html")

    for name, href in links:
        url, fragment = urldefrag(href)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or parts.netloc != origin:
            continue
        target = _target_file(book, parts.path)
        if not target.is_file():
            failures.append(f"{name}: broken link {href}")
            continue
        target_name = target.relative_to(book).as_posix()
        if fragment and target_name in ids and unquote(fragment) not in ids[target_name]:
            failures.append(f"{name}: link {href} names no element of {target_name}")
        if target.suffix in (".md", ".ipynb", ".py"):
            failures.append(f"{name}: link {href} goes to a raw source file, not to its page")

    assert not failures, f"{len(failures)} problems in {len(pages)} pages:\n" + "\n".join(failures)


# What the README's screenshots show: a chapter's derivation, a notebook's plot.
SCREENSHOTS = {
    "book-chapter.png": (
        "chapters/07-variational-autoencoders.html",
        "#first-derivation-jensen-s-inequality",
    ),
    "book-notebook.png": (
        "notebooks/08-generative-adversarial-networks.html",
        "#mode-collapse-the-ring-and-pacgan-chapter-section-8 img",
    ),
}


def test_screenshots(server, page, tmp_path):
    folder = Path(os.environ.get("MINIGEN_BOOK_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    for filename, (name, selector) in SCREENSHOTS.items():
        page.goto(f"{server}/{name}", wait_until="load")
        page.evaluate(PAGE_JS)  # waits for MathJax
        element = page.locator(selector).first
        element.scroll_into_view_if_needed()
        page.evaluate("(e) => e.scrollIntoView({block: 'start'})", element.element_handle())
        page.evaluate("window.scrollBy(0, -80)")  # below the theme's sticky header
        page.screenshot(path=folder / filename)
        assert (folder / filename).stat().st_size > 10_000
    assert not page.problems, page.problems
