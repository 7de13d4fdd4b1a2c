"""Sphinx configuration of the minigen book.

The book is the nine chapters, the nine notebooks with their committed outputs (not
re-executed), the README, and a rendered copy of every file of ``minigen/`` (plus any other
Python file a chapter links to), all read from where they live in the repository: the
source directory is the repository root and ``include_patterns`` picks the book's files, so
nothing is copied or moved. Build it from the repository root with

    sphinx-build -c docs/book . docs/book/_build/html

and open ``docs/book/_build/html/index.html``. Math is typeset in the browser by MathJax 3,
served from the book itself (the ``sphinx-mathjax-offline`` package ships it), so the book
reads offline.
"""

import importlib.util
import json
import re
import shutil
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.errors import ConfigError
from sphinx.parsers import Parser

ROOT = Path(__file__).resolve().parents[2]

project = "minigen"
author = "the minigen authors"
copyright = "the minigen authors"
html_title = "minigen: generative models from scratch"

root_doc = "docs/book/index"
extensions = ["myst_nb"]

# ---------------------------------------------------------------- what the book is made of

LINK = re.compile(r"\]\(([^)\s#]+)")


def linked_python_files():
    """Python files outside minigen/ that a chapter, notebook or the README links to."""
    texts = [
        (path, path.read_text(encoding="utf-8")) for path in [*ROOT.glob("chapters/*.md"), ROOT / "README.md"]
    ]
    for path in ROOT.glob("notebooks/*.ipynb"):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        texts += [(path, "".join(cell["source"])) for cell in cells if cell["cell_type"] == "markdown"]
    found = set()
    for source, text in texts:
        for target in LINK.findall(text):
            path = (source.parent / target).resolve()
            if path.suffix == ".py" and path.is_file() and path.is_relative_to(ROOT):
                relative = path.relative_to(ROOT).as_posix()
                if not relative.startswith("minigen/"):
                    found.add(relative)
    return sorted(found)


LINKED_PYTHON_FILES = linked_python_files()  # today tests/conftest.py and two more tests
DOCS_PAGES = sorted(path.relative_to(ROOT).with_suffix("").as_posix() for path in ROOT.glob("docs/*.md"))
include_patterns = [
    "docs/book/*.md",
    "docs/*.md",
    "chapters/*.md",
    "notebooks/*.ipynb",
    "README.md",
    "minigen/**.py",
    *LINKED_PYTHON_FILES,
]
exclude_patterns = [".git", ".venv", "**/__pycache__", "**/.ipynb_checkpoints", "docs/book/_build"]

# ---------------------------------------------------------------- Markdown and notebooks

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_fence_as_directive = ["math"]  # ```math blocks (GitHub's display math) are math
myst_heading_anchors = 3  # GitHub-style #section-slug links
nb_execution_mode = "off"  # the notebooks are shown with their committed outputs
nb_merge_streams = True

# ---------------------------------------------------------------- MathJax, served locally


mathjax_path = "mathjax/tex-chtml.js"  # MathJax 3.2.2, copied under _static/ by copy_mathjax
# An undefined macro is a TeX error (which the browser test finds), not red text in the page.
mathjax3_config = {"tex": {"packages": {"[-]": ["noundefined"]}}}
# What tex-chtml.js loads; the package's other bundles (SVG output, MathML input) are unused.
MATHJAX_PARTS = ["tex-chtml.js", "input", "output/chtml.js", "output/chtml", "ui", "a11y", "sre", "adaptors"]


def mathjax_source():
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "the book serves MathJax from the sphinx-mathjax-offline package, which is missing: "
            "pip install -e '.[book]'"
        )
    return Path(spec.origin).parent / "static" / "mathjax"


MATHJAX_SOURCE = mathjax_source()


def copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        if (MATHJAX_SOURCE / part).is_dir():
            shutil.copytree(MATHJAX_SOURCE / part, target / part, dirs_exist_ok=True)
        else:
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(MATHJAX_SOURCE / part, target / part)


# ---------------------------------------------------------------- HTML

html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_css_files = ["book.css"]
html_extra_path = ["_extra"]  # index.html at the top, which opens the book's first page
html_show_sourcelink = False
html_copy_source = False
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "use_download_button": False,
}
html_context = {"default_mode": "light"}  # unset, the theme logs an error on a first visit
pygments_style = "sphinx"

# ---------------------------------------------------------------- rendered source files


class PythonSourceParser(Parser):
    """Render a .py file of the repository as a page: its path as title, then the code.

    A chapter's link ``../minigen/ops/conv.py`` then is an ordinary link between two pages of
    the book. A package's ``__init__.py`` page also lists the package's modules, and a link to
    the package's folder (``../minigen/nn/``) goes to that page.
    """

    supported = ("minigen-python-source",)

    def parse(self, inputstring, document):
        env = document.settings.env
        path = Path(document["source"]).resolve()
        name = path.relative_to(ROOT).as_posix()
        section = nodes.section(ids=[nodes.make_id(name)], names=[nodes.fully_normalize_name(name)])
        section += nodes.title(name, "", nodes.literal(name, name))
        if path.name == "__init__.py":
            section += self.package_contents(path, env)
        block = nodes.literal_block(inputstring, inputstring, language="python", linenos=True)
        block.source, block.line = document["source"], 1
        section += block
        document += section

    @staticmethod
    def package_contents(path, env):
        entries = nodes.bullet_list()
        for child in sorted(path.parent.iterdir()):
            module = child / "__init__.py" if child.is_dir() else child
            if module.suffix != ".py" or module == path or not module.is_file():
                continue
            docname = env.path2doc(str(module))
            if docname is None:
                continue
            label = child.name + ("/" if child.is_dir() else "")
            ref = addnodes.pending_xref(
                "",
                refdomain="std",
                reftype="doc",
                reftarget="/" + docname,
                refdoc=env.docname,
                refexplicit=True,
            )
            ref += nodes.literal(label, label)
            entries += nodes.list_item("", nodes.paragraph("", "", ref))
        if not entries.children:
            return []
        return [nodes.paragraph(text="In this package:"), entries]


def link_folders_to_packages(app, doctree):
    """A Markdown link to a package's folder points to the page of its __init__.py."""
    env = app.env
    for node in doctree.findall(addnodes.pending_xref):
        if node.get("reftype") != "myst" or node.get("refdomain") is not None:
            continue
        target = node["reftarget"]
        folder, _, fragment = target.partition("#")
        if not folder.endswith("/"):
            continue
        _, absolute = env.relfn2path(folder + "__init__.py", node.get("refdoc", env.docname))
        docname = env.path2doc(absolute) if Path(absolute).is_file() else None
        if docname is not None:
            node["refdomain"], node["reftarget"] = "doc", docname
            node["reftargetid"] = fragment or None


def add_toctree_entries(app, docname, content):
    """Pages that may come and go: the Markdown files in docs/ (after the README, on the front
    page) and the Python files the chapters link to (on the Source code page, after minigen/)."""
    if docname == "docs/book/index":
        readme = "README: set-up, tour and results </README>\n"
        content[0] = content[0].replace(readme, readme + "".join(f"/{name}\n" for name in DOCS_PAGES))
    elif docname == "docs/book/source":
        entries = "".join(f"/{Path(name).with_suffix('').as_posix()}\n" for name in LINKED_PYTHON_FILES)
        content[0] = content[0].replace("/minigen/**\n", "/minigen/**\n" + entries)


def check_source_folder(app):
    if Path(app.srcdir).resolve() != ROOT:
        raise ConfigError(
            "the book's source folder is the repository root: sphinx-build -c docs/book . OUTDIR"
        )


def setup(app):
    app.connect("builder-inited", check_source_folder)
    app.add_source_suffix(".py", "minigen-python-source")
    app.add_source_parser(PythonSourceParser)
    app.connect("doctree-read", link_folders_to_packages)
    app.connect("source-read", add_toctree_entries)
    app.connect("build-finished", copy_mathjax)
