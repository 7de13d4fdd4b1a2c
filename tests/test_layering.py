"""Static checks of the layering that docs/architecture.md describes, read from the source
with ``ast`` (nothing imported):

- only minigen/backend.py imports CuPy;
- only host-side modules import NumPy (everything else gets its array module from backend);
- each layer imports only from the layers beneath it, and nothing imports the command line.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "minigen"
ROOT = PACKAGE.parent

# Modules allowed to import NumPy directly, and why. A path ending in "/" allows a package.
NUMPY_ALLOWED = {
    "minigen/backend.py": "it is the array backend: it picks NumPy or CuPy for everyone else",
    "minigen/testing/": "hypothesis strategies build host-side NumPy arrays (hypothesis.extra.numpy)",
    "minigen/data/": "datasets are read and decoded on the host before they become tensors",
    "minigen/io.py": "state dicts are written to and read from .npz files on the host",
    "minigen/viz.py": "matplotlib plots host NumPy arrays",
    "minigen/metrics.py": "Frechet distances and coverage counts are host-side statistics (eigh, histograms)",
    "minigen/families/base.py": "a conditional family's sample labels are host arrays, as a Dataset's",
    "minigen/export.py": "PyTorch tensors and safetensors files are exchanged through host NumPy arrays",
}


def _source_files():
    return sorted(PACKAGE.rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    """True when ``dotted`` (minigen.x.y) names a module or package in the source tree."""
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(source: str, module: str, is_package: bool = False, is_module=_is_module):
    """(imported module, line, at module level?) for every import statement in ``source``.

    ``from P import name`` counts as importing P.name when that is a module, else P. Relative
    imports are resolved against ``module``. Imports inside functions, classes, ``try`` and
    ``if`` blocks are all found; only those in functions are deferred (not run at import time).
    """
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    found = []

    def visit(node, top_level):
        for child in ast.iter_child_nodes(node):
            deferred = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append((alias.name, child.lineno, top_level))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base_parts = package.split(".")
                    base_parts = base_parts[: len(base_parts) - (child.level - 1)]
                    base = ".".join(base_parts + ([child.module] if child.module else []))
                else:
                    base = child.module
                for alias in child.names:
                    candidate = f"{base}.{alias.name}"
                    found.append((candidate if is_module(candidate) else base, child.lineno, top_level))
            visit(child, top_level and not deferred)

    visit(tree, True)
    return found


def _all_imports():
    for path in _source_files():
        module = _module_name(path)
        for name, line, top in imports_of(path.read_text(), module, path.name == "__init__.py"):
            yield path, module, name, line, top


def _startswith_module(name: str, root: str) -> bool:
    return name == root or name.startswith(root + ".")


# --- the scanner itself --------------------------------------------------------------------------


def test_import_scanner_finds_every_form():
    source = """
import numpy as np
import os.path
from minigen import backend
from . import tensor
from .ops import elementwise
from ..x import y
try:
    import cupy
except ImportError:
    pass
def f():
    from minigen.autograd import grad
class C:
    import cupyx.scipy
"""
    modules = {"minigen.backend", "minigen.sub.ops"}
    found = imports_of(source, "minigen.sub.mod", is_module=modules.__contains__)
    assert sorted(found) == sorted(
        [
            ("numpy", 2, True),
            ("os.path", 3, True),
            ("minigen.backend", 4, True),
            ("minigen.sub", 5, True),  # minigen.sub.tensor is not a module in this fake tree
            ("minigen.sub.ops", 6, True),
            ("minigen.x", 7, True),
            ("cupy", 9, True),
            ("minigen.autograd", 13, False),
            ("cupyx.scipy", 15, True),  # a class body runs at import time
        ]
    )


def test_scanner_sees_the_real_package():
    modules = {_module_name(p) for p in _source_files()}
    assert {
        "minigen",
        "minigen.backend",
        "minigen.tensor",
        "minigen.autograd",
        "minigen.ops.shape",
    } <= modules
    backend_imports = {name for path, _, name, _, _ in _all_imports() if path.name == "backend.py"}
    assert "cupy" in backend_imports and "numpy" in backend_imports


# --- CuPy and NumPy -------------------------------------------------------------------------------


def test_only_backend_imports_cupy():
    offenders = [
        f"{_relative(path)}:{line} imports {name}"
        for path, _, name, line, _ in _all_imports()
        if (_startswith_module(name, "cupy") or _startswith_module(name, "cupyx"))
        and _relative(path) != "minigen/backend.py"
    ]
    assert not offenders, "only minigen/backend.py may import CuPy:\n" + "\n".join(offenders)


def _numpy_allowed(relative: str) -> bool:
    return any(relative.startswith(p) if p.endswith("/") else relative == p for p in NUMPY_ALLOWED)


def test_numpy_allow_list_logic():
    assert _numpy_allowed("minigen/testing/__init__.py")
    assert _numpy_allowed("minigen/data/mnist.py")
    assert _numpy_allowed("minigen/io.py")
    assert not _numpy_allowed("minigen/ops/elementwise.py")
    assert not _numpy_allowed("minigen/iox.py")


def test_only_host_side_modules_import_numpy():
    offenders = [
        f"{_relative(path)}:{line} imports {name}"
        for path, _, name, line, _ in _all_imports()
        if _startswith_module(name, "numpy") and not _numpy_allowed(_relative(path))
    ]
    assert not offenders, (
        "NumPy may only be imported by the host-side modules "
        f"{sorted(NUMPY_ALLOWED)}; get the array module from minigen.backend.xp_of instead:\n"
        + "\n".join(offenders)
    )


# --- layering -------------------------------------------------------------------------------------


def _minigen_imports(prefix: str):
    """(importer file, imported minigen module, line, top level) for modules under ``prefix``."""
    for path, module, name, line, top in _all_imports():
        if _startswith_module(module, prefix) and _startswith_module(name, "minigen"):
            yield path, name, line, top


_BENEATH_FUNCTIONAL = (
    "minigen.backend",
    "minigen.tensor",
    "minigen.autograd",
    "minigen.creation",
    "minigen.ops",
)

_BENEATH_MODELS = (*_BENEATH_FUNCTIONAL, "minigen.functional", "minigen.nn", "minigen.optim", "minigen.io")
_MODELS_LAYER = ("minigen.data", "minigen.generative", "minigen.metrics", "minigen.viz")

# What each low layer may import from minigen (docs/architecture.md, "Layers"; the module itself is allowed).
ALLOWED = {
    "minigen.allocator": (),
    "minigen.blas_wait": (),
    "minigen.backend": (),
    "minigen.tensor": ("minigen.backend",),
    "minigen.autograd": ("minigen.tensor", "minigen.backend"),
    "minigen.ops": ("minigen.autograd", "minigen.tensor", "minigen.backend", "minigen.ops"),
    "minigen.functional": _BENEATH_FUNCTIONAL,
    "minigen.nn": (*_BENEATH_FUNCTIONAL, "minigen.functional", "minigen.nn"),
    "minigen.optim": _BENEATH_FUNCTIONAL,
    "minigen.io": _BENEATH_FUNCTIONAL,
    "minigen.export": _BENEATH_MODELS + ("minigen.export",),
    "minigen.data": _BENEATH_MODELS + ("minigen.data",),
    "minigen.generative": _BENEATH_MODELS + ("minigen.generative",),
    "minigen.viz": _BENEATH_MODELS + ("minigen.viz",),
    "minigen.metrics": _BENEATH_MODELS + ("minigen.metrics", "minigen.data", "minigen.generative"),
    "minigen.families": _BENEATH_MODELS + _MODELS_LAYER + ("minigen.families",),
    "minigen.training": _BENEATH_MODELS + _MODELS_LAYER + ("minigen.families", "minigen.training"),
}

# Deferred imports (inside a function) that cross a rule above, each with its reason.
DEFERRED_EXCEPTIONS = {
    ("minigen/tensor.py", "minigen.autograd"): (
        "Tensor.backward() hands over to the engine at call time; docs/architecture.md puts tensor and "
        "autograd in one layer, and autograd builds on Tensor, so the import cannot be at the top"
    ),
}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_from_beneath(layer):
    allowed = ALLOWED[layer]
    offenders = []
    for path, name, line, top in _minigen_imports(layer):
        if any(_startswith_module(name, a) for a in allowed):
            continue
        if not top and (_relative(path), name) in DEFERRED_EXCEPTIONS:
            continue
        offenders.append(f"{_relative(path)}:{line} imports {name}")
    rule = f"{layer} may import only {allowed or 'no other minigen module'}"
    assert not offenders, rule + ":\n" + "\n".join(offenders)


def test_deferred_exceptions_are_still_needed():
    """An exception that no longer matches an import should be removed from the list."""
    present = {(_relative(path), name) for path, _, name, _, top in _all_imports() if not top}
    stale = set(DEFERRED_EXCEPTIONS) - present
    assert not stale, f"remove these from DEFERRED_EXCEPTIONS: {sorted(stale)}"


# The entry point `python -m minigen` runs the command line; it is above cli, not beneath it.
CLI_IMPORTERS = {"minigen/__main__.py"}


def test_nothing_imports_the_command_line():
    offenders = [
        f"{_relative(path)}:{line}"
        for path, _, name, line, _ in _all_imports()
        if _startswith_module(name, "minigen.cli") and _relative(path) not in CLI_IMPORTERS
    ]
    rule = "minigen.cli is the top layer; nothing in minigen may import it"
    assert not offenders, rule + ":\n" + "\n".join(offenders)


def test_no_import_cycles_at_module_level():
    graph = {}
    for _, module, name, _, top in _all_imports():
        if top and _startswith_module(name, "minigen") and name != module:
            graph.setdefault(module, set()).add(name)
    state, cycles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(trail[trail.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "module-level import cycles:\n" + "\n".join(cycles)
