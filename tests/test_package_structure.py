"""The house plan of README's "Layout", checked on the imports of the package (as scanpy checks its own).

- the layer contracts of ``[tool.importlinter]`` in pyproject.toml hold (import-linter);
- no module imports another package's private module or name;
- no import circle between modules;
- every ``tl`` function built on a model takes exactly the model's arguments, documented once.
"""

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import sclatent as sl

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "sclatent"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    """Every import between sclatent's modules, those under ``if TYPE_CHECKING:`` left out."""
    return grimp.build_graph("sclatent", exclude_type_checking_imports=True, cache_dir=None)


def test_layer_contracts_hold():
    """import-linter's contracts, in a process of its own (it reconfigures logging, which disables
    the loggers of the process that runs it)."""
    run = "from importlinter.cli import lint_imports as lint; raise SystemExit(lint(no_cache=True))"
    done = subprocess.run([sys.executable, "-c", run], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def private_imports(graph: grimp.ImportGraph) -> list[str]:
    """Imports of a private module or name from outside the package that holds it.

    A private part ``_x`` of ``a.b._x`` belongs to ``a.b``: only ``a.b`` and the modules inside it
    may import ``a.b._x`` or anything below it. A private name ``_y`` imported from module
    ``a.b.c`` belongs to ``a.b`` likewise.
    """
    found = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            parts = imported.split(".")
            owners = [".".join(parts[:i]) for i, part in enumerate(parts) if _is_private(part)]
            for detail in graph.get_import_details(importer=importer, imported=imported):
                line = detail["line_contents"]
                names = _imported_names(line)
                if any(_is_private(name) for name in names):
                    owners.append(imported.rsplit(".", 1)[0])
                for owner in owners:
                    if importer != owner and not importer.startswith(owner + "."):
                        found.append(f"{importer}:{detail['line_number']}: {line}")
    return found


def _imported_names(line: str) -> list[str]:
    try:
        node = ast.parse(line.strip()).body[0]
    except (SyntaxError, IndexError):  # the first line of an import spread over several
        return []
    return [alias.name for alias in node.names] if isinstance(node, ast.ImportFrom) else []


def test_no_module_imports_another_packages_private_names(graph):
    assert private_imports(graph) == []


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    edges = {module: sorted(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_circle(graph):
    assert import_cycles(graph) == []


def test_the_checks_find_what_they_look_for():
    """A private import from another package and a circle are found (the checks can fail)."""
    scratch = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.a._hidden", "pkg.b", "pkg.c"):
        scratch.add_module(module)
    scratch.add_import(importer="pkg.b", imported="pkg.a._hidden", line_number=3, line_contents="x")
    scratch.add_import(importer="pkg.a", imported="pkg.a._hidden", line_number=1, line_contents="x")
    scratch.add_import(importer="pkg.b", imported="pkg.c", line_number=1, line_contents="from . import c")
    scratch.add_import(importer="pkg.c", imported="pkg.b", line_number=1, line_contents="from . import b")
    assert private_imports(scratch) == ["pkg.b:3: x"]
    assert import_cycles(scratch) == [["pkg.b", "pkg.c"]]


@pytest.mark.parametrize(
    ("tool", "model"),
    [
        (sl.tl.scvae, sl.models.SCVAE),
        (sl.tl.groupenc, sl.models.GroupEnc),
        (sl.tl.ae_sampling, sl.models.SamplingAE),
    ],
)
def test_a_model_tool_takes_and_documents_its_models_arguments(tool, model):
    taken = list(inspect.signature(tool).parameters)
    own = list(inspect.signature(model).parameters)
    assert taken == ["adata", *own, "key_added", "copy"]
    documented = [line for line in inspect.getdoc(tool).splitlines() if line and not line.startswith(" ")]
    for name in own:
        assert name in documented, name
        assert inspect.getdoc(model).count(f"\n{name}\n") == 1
    assert "{" not in inspect.getdoc(tool).split("Returns")[0].replace("``", "")  # no placeholder left


#: Tests of the project as a whole rather than of one module.
PROJECT_TESTS = {
    "test_conventions.py",  # scanpy's conventions, every tl function
    "test_documentation.py",  # the Sphinx build
    "test_galaxy.py",
    "test_gpu_check.py",
    "test_nextflow.py",
    "test_package_structure.py",
    "test_properties.py",  # property-based tests across models
    "test_readme.py",
    "test_tutorials.py",
}


def test_test_modules_mirror_the_package():
    """``tests/a/b/test_c.py`` tests ``src/sclatent/[_]a/[_]b/[_]c.py``, where its module lives."""
    tests = ROOT / "tests"
    orphans = []
    for path in sorted(tests.rglob("test_*.py")):
        relative = path.relative_to(tests)
        if len(relative.parts) == 1 and relative.name in PROJECT_TESTS:
            continue
        folder = SOURCE
        for part in relative.parts[:-1]:
            folder = folder / part if (folder / part).is_dir() else folder / f"_{part}"
        stem = relative.stem.removeprefix("test_")
        if not ((folder / f"{stem}.py").exists() or (folder / f"_{stem}.py").exists()):
            orphans.append(str(relative))
    assert orphans == []
