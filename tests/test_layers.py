"""The layer rules of DESIGN.md section 4, checked by reading `src/` with `ast`.

Each rule lists every offender it finds. Imports are resolved to absolute module names
(`from .x import y` in `ostinato._core.z` is `ostinato._core.x`, or `ostinato._core.x.y` when
`y` is itself a module). Function-level imports count everywhere; imports inside an
`if TYPE_CHECKING:` block count for the layer rules (a type is still a dependency) but not for
the cycle check (they never run). The last tests prove the checker itself can fail.
"""

from __future__ import annotations

import ast
import functools
import itertools
import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "ostinato"
MAX_LINES = 600
AWS_LIBRARIES = ("boto3", "botocore", "pynamodb")
ADAPTERS_AND_TOOLS = ("ostinato._aws", "ostinato._local", "ostinato._api", "ostinato._cli",
                      *AWS_LIBRARIES, "moto",
                      # Powertools (metrics, tracing, batch) is an adapter's dependency: the
                      # engine reports through the Observer port (_engine/ports.py)
                      "aws_lambda_powertools", "aws_xray_sdk")


# ================================================================================ the checker
@dataclass(frozen=True)
class Import:
    """One imported module: who imports it, where, and whether it runs at import time."""

    importer: str
    target: str
    line: int
    type_checking: bool = False
    in_function: bool = False

    def where(self) -> str:
        notes = [n for n, on in (("in a function", self.in_function),
                                 ("under TYPE_CHECKING", self.type_checking)) if on]
        return f"line {self.line}" + (f", {', '.join(notes)}" if notes else "")

    def describe(self) -> str:
        return f"{self.importer} imports {self.target} ({self.where()})"


def within(name: str, prefix: str) -> bool:
    """`name` is the module or package `prefix`, or inside it."""
    return name == prefix or name.startswith(prefix + ".")


def within_any(name: str, prefixes: Iterable[str]) -> bool:
    return any(within(name, p) for p in prefixes)


def module_name(path: Path, root: Path = SRC) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of `from <level dots><name> import ...` written in `module`."""
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 >= len(base):
        raise ValueError(f"relative import beyond the top-level package in {module}")
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def parse_imports(source: str, module: str, is_package: bool = False,
                  known: Iterable[str] = ()) -> list[Import]:
    """Every import in `source`, module-level or not, with absolute target names.

    `known` are the modules that exist: `from pkg import name` imports `pkg.name` when that
    is one of them, else `pkg` (name is then an attribute).
    """
    known = frozenset(known)
    found: list[Import] = []

    def visit(node: ast.AST, type_checking: bool, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            visit_one(child, type_checking, in_function)

    def visit_one(node: ast.AST, type_checking: bool, in_function: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.body:
                visit_one(stmt, True, in_function)
            for stmt in node.orelse:
                visit_one(stmt, type_checking, in_function)
            return

        def add(target: str) -> None:
            found.append(Import(module, target, node.lineno, type_checking, in_function))

        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(module, is_package, node.level, node.module)
            targets = {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names}
            for target in sorted(targets):
                add(target)
        else:
            nested = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(node, type_checking, in_function or nested)

    visit(ast.parse(source), False, False)
    return found


@functools.cache
def source_tree(root: Path = PACKAGE) -> dict[str, list[Import]]:
    """Module name -> its imports, for every module of the package at `root`."""
    paths = {module_name(p, root.parent): p for p in sorted(root.rglob("*.py"))}
    return {name: parse_imports(path.read_text(), name, path.name == "__init__.py", paths)
            for name, path in paths.items()}


def offending(tree: dict[str, list[Import]], importers: Callable[[str], bool],
              bad: Callable[[str], bool]) -> list[str]:
    """Every import by a module `importers` picks whose target `bad` rejects."""
    return [imp.describe() for module, imports in sorted(tree.items()) if importers(module)
            for imp in imports if bad(imp.target)]


def core_offenders(tree: dict[str, list[Import]]) -> list[str]:
    def impure(target: str) -> bool:
        return not (target.split(".")[0] in sys.stdlib_module_names
                    or within(target, "ostinato._core"))
    return offending(tree, lambda m: within(m, "ostinato._core"), impure)


def import_graph(tree: dict[str, list[Import]]) -> dict[str, dict[str, Import]]:
    """importer -> {imported module of the tree -> the first such import}; TYPE_CHECKING out."""
    graph: dict[str, dict[str, Import]] = {m: {} for m in tree}
    for module, imports in tree.items():
        for imp in imports:
            if not imp.type_checking and imp.target in tree and imp.target != module:
                graph[module].setdefault(imp.target, imp)
    return graph


def strongly_connected(graph: dict[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one node, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(found)


def shortest_cycle(graph: dict[str, Iterable[str]], start: str, inside: set[str]) -> list[str]:
    """The shortest path start -> ... -> start through nodes of `inside` (breadth first)."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph.get(v, ())):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if w in inside and w not in came_from:
                came_from[w] = v
                queue.append(w)
    return []


def find_cycles(graph: dict[str, Iterable[str]]) -> list[list[str]]:
    """Import cycles covering every module that is on one: a shortest cycle through each
    module of each strongly connected component not yet on a reported cycle."""
    cycles = []
    for component in strongly_connected(graph):
        covered: set[str] = set()
        for v in component:
            if v not in covered:
                cycle = shortest_cycle(graph, v, set(component))
                covered.update(cycle)
                cycles.append(cycle)
    return cycles


def chain(cycle: list[str], graph: dict[str, dict[str, Import]]) -> str:
    """`a -[line 3]-> b -[line 9, in a function]-> a`."""
    parts = [cycle[0]]
    for a, b in itertools.pairwise(cycle):
        parts.append(f" -[{graph[a][b].where()}]-> {b}")
    return "".join(parts)


def fail_listing(rule: str, offenders: list[str]) -> None:
    if offenders:
        pytest.fail(f"{rule}: {len(offenders)} offender(s)\n  " + "\n  ".join(offenders),
                    pytrace=False)


# ================================================================================ the rules
def test_core_imports_only_the_standard_library_and_itself():
    fail_listing("_core must import only the standard library and ostinato._core",
                 core_offenders(source_tree()))


def test_engine_and_client_stay_off_adapters_aws_and_tools():
    tree = source_tree()
    offenders = offending(tree, lambda m: within(m, "ostinato._engine"), lambda t: within_any(
        t, (*ADAPTERS_AND_TOOLS, "ostinato._client", "ostinato._runtime")))
    offenders += offending(tree, lambda m: within(m, "ostinato._client"), lambda t: within_any(
        t, (*ADAPTERS_AND_TOOLS, "ostinato._runtime")))
    fail_listing("_engine and _client must not import adapters, tools, the runtime or AWS "
                 "libraries (nor _engine the client)", offenders)


def test_api_only_calls_the_client():
    def bad(target: str) -> bool:
        return within_any(target, ("ostinato._aws", "ostinato._runtime", "ostinato._local",
                                   *AWS_LIBRARIES)) or (
            within(target, "ostinato._engine") and not within(target, "ostinato._engine.ports"))
    fail_listing("_api must not import _aws, _runtime, _local, the AWS SDK or _engine "
                 "(other than _engine.ports): it is handed a client",
                 offending(source_tree(), lambda m: within(m, "ostinato._api"), bad))


def test_only_aws_and_local_import_boto3_botocore_pynamodb():
    fail_listing("only _aws and _local may import " + "/".join(AWS_LIBRARIES), offending(
        source_tree(), lambda m: not within_any(m, ("ostinato._aws", "ostinato._local")),
        lambda t: within_any(t, AWS_LIBRARIES)))


def test_only_local_and_testing_import_moto():
    fail_listing("only _local and ostinato.testing may import moto", offending(
        source_tree(), lambda m: not within_any(m, ("ostinato._local", "ostinato.testing")),
        lambda t: within(t, "moto")))


def test_no_import_cycles():
    graph = import_graph(source_tree())
    fail_listing("import cycles between modules of src/ostinato (TYPE_CHECKING imports "
                 "excluded)", [chain(c, graph) for c in find_cycles(graph)])


def test_no_source_file_over_600_lines():
    sizes = {p: len(p.read_text().splitlines()) for p in sorted(SRC.rglob("*.py"))}
    fail_listing(f"files in src/ over {MAX_LINES} lines",
                 [f"{p.relative_to(ROOT)}: {n} lines" for p, n in sizes.items()
                  if n > MAX_LINES])


def test_every_core_module_imports_without_aws_libraries():
    """Each `_core` module in a fresh interpreter where boto3, botocore and pynamodb are
    unimportable (this runs `ostinato/__init__.py` too, as any import of the core does)."""
    block = "; ".join(f"sys.modules[{lib!r}] = None" for lib in AWS_LIBRARIES)
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    offenders = []
    for module in sorted(m for m in source_tree() if within(m, "ostinato._core")):
        code = f"import importlib, sys; {block}; importlib.import_module({module!r})"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": path}, cwd=ROOT)
        if done.returncode:
            frames = [f"{Path(f).relative_to(SRC) if f.startswith(str(SRC)) else f}:{n}"
                      for f, n in re.findall(r'File "([^"]+)", line (\d+), in <module>',
                                             done.stderr) if not f.startswith("<")]
            error = done.stderr.strip().splitlines()[-1]
            offenders.append(f"{module}: {error}\n      via " + " -> ".join(frames))
    fail_listing("_core modules that cannot be imported without boto3/botocore/pynamodb",
                 offenders)


# ============================================================================ the checker, checked
def test_checker_resolves_relative_imports():
    assert resolve("ostinato._core.context", False, 1, "instance") == "ostinato._core.instance"
    assert resolve("ostinato._core.context", False, 2, "_aws.store") == "ostinato._aws.store"
    assert resolve("ostinato._core", True, 1, "history") == "ostinato._core.history"
    assert resolve("ostinato._core", True, 2, None) == "ostinato"
    with pytest.raises(ValueError):
        resolve("ostinato.testing", False, 2, "x")
    known = {"ostinato._core.history", "ostinato._aws"}
    source = "from . import history, serde\nfrom .. import _aws\nimport json, boto3.session\n"
    targets = [i.target for i in parse_imports(source, "ostinato._core.x", known=known)]
    assert targets == ["ostinato._core", "ostinato._core.history", "ostinato._aws", "json",
                       "boto3.session"]


def test_checker_keeps_type_checking_imports_out_of_the_cycle_graph():
    source = (
        "import typing\n"
        "from typing import TYPE_CHECKING\n"
        "from .b import B\n"
        "if TYPE_CHECKING:\n"
        "    from .c import C\n"
        "if typing.TYPE_CHECKING:\n"
        "    import pynamodb\n"
        "else:\n"
        "    import json\n"
        "def f():\n"
        "    from .d import D\n"
        "class K:\n"
        "    def m(self):\n"
        "        if TYPE_CHECKING:\n"
        "            from .e import E\n"
    )
    imports = parse_imports(source, "p.a", known={"p.b", "p.c", "p.d", "p.e"})
    flags = {i.target: (i.type_checking, i.in_function) for i in imports}
    assert flags == {"typing": (False, False), "p.b": (False, False), "p.c": (True, False),
                     "pynamodb": (True, False), "json": (False, False),
                     "p.d": (False, True), "p.e": (True, True)}
    tree = {"p.a": imports, **{m: [] for m in ("p.b", "p.c", "p.d", "p.e")}}
    tree["p.c"] = [Import("p.c", "p.a", 1)]
    tree["p.d"] = [Import("p.d", "p.a", 4)]
    graph = import_graph(tree)
    assert set(graph["p.a"]) == {"p.b", "p.d"}
    assert find_cycles(graph) == [["p.a", "p.d", "p.a"]]  # not p.a <-> p.c: TYPE_CHECKING
    assert chain(find_cycles(graph)[0], graph) == (
        "p.a -[line 11, in a function]-> p.d -[line 4]-> p.a")


def test_checker_core_rule_sees_type_checking_and_function_imports():
    source = ("import json\nfrom typing import TYPE_CHECKING\nfrom . import history\n"
              "if TYPE_CHECKING:\n    from .._aws.store import Store\n"
              "def f():\n    import pynamodb.models\n")
    imports = parse_imports(source, "ostinato._core.a", known={"ostinato._core.history"})
    assert core_offenders({"ostinato._core.a": imports}) == [
        "ostinato._core.a imports ostinato._aws.store (line 5, under TYPE_CHECKING)",
        "ostinato._core.a imports pynamodb.models (line 7, in a function)"]


def test_checker_finds_every_cycle_of_a_toy_graph():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) == []
    graph = {"a": {"b", "c"}, "b": {"a"}, "c": {"a"}, "d": {"e"}, "e": {"f"}, "f": {"d", "a"},
             "g": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"], ["d", "e", "f"]]
    assert find_cycles(graph) == [["a", "b", "a"], ["c", "a", "c"], ["d", "e", "f", "d"]]
