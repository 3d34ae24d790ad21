"""Structural checks that keep the layers true: imports run one way, no cycles, short functions.

Every module's imports are read with `ast` (function-level imports too: a deferred import is still
a dependency). Imports under `if TYPE_CHECKING:` are exempt, since they never run.
"""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "ggufrope"
MAX_FUNCTION_LINES = 60

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom node, skipping the bodies of `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _resolve(name: str) -> str | None:
    """The ggufrope module an import of `name` runs: the longest known prefix."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports_of(mod: str) -> dict[str, int]:
    """ggufrope modules imported by `mod`, with the line of the first import of each."""
    path = MODULES[mod]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` imports the submodule when there is one, else a name of pkg
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for t in targets:
            r = _resolve(t)
            if r and r != mod:
                found.setdefault(r, node.lineno)
    return found


GRAPH = {m: _imports_of(m) for m in MODULES}


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each with one cycle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(comps)


def _one_cycle(graph: dict[str, dict[str, int]], comp: set[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component (BFS)."""
    start = min(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w not in comp:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)


def _describe(comp: list[str]) -> str:
    """One cycle through the component, each step with the line of its import, then its other members."""
    cycle = _one_cycle(GRAPH, set(comp))
    steps = [f"{a} (line {GRAPH[a][b]})" for a, b in zip(cycle, cycle[1:])]
    text = " -> ".join(steps + [cycle[-1]])
    rest = sorted(set(comp) - set(cycle))
    return text + (f"\n    (same cycle group: {', '.join(rest)})" if rest else "")


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles in ggufrope/:\n" + "\n".join(_describe(c) for c in cycles)


def test_cycle_finder_sees_a_cycle():
    """The check itself: a made-up graph with a cycle is reported, a tree is not."""
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _one_cycle(graph, {"a", "b", "c"}) == ["a", "b", "c", "a"]
    assert _cycles({"a": {"b": 1}, "b": {}, "c": {"a": 1, "b": 1}}) == []


def test_codec_imports_nothing_above_it():
    allowed = lambda m: m == "ggufrope.errors" or m == "ggufrope.gguf" or m.startswith("ggufrope.gguf.")
    leaks = [f"{MODULES[m].relative_to(PKG.parent)}:{line} imports {dep}"
             for m in MODULES if m == "ggufrope.gguf" or m.startswith("ggufrope.gguf.")
             for dep, line in GRAPH[m].items() if not allowed(dep)]
    assert not leaks, "the GGUF codec reaches above itself:\n" + "\n".join(leaks)


def test_library_does_not_import_the_cli():
    is_cli = lambda m: m == "ggufrope.cli" or m.startswith("ggufrope.cli.")
    leaks = [f"{MODULES[m].relative_to(PKG.parent)}:{line} imports {dep}"
             for m in MODULES if not is_cli(m) and m not in ("ggufrope.__main__",)
             for dep, line in GRAPH[m].items() if is_cli(dep)]
    assert not leaks, "library code imports the CLI:\n" + "\n".join(leaks)


def _long_functions(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    tree = ast.parse("\n".join(lines), str(path))
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        length = node.end_lineno - first + 1
        if length <= MAX_FUNCTION_LINES:
            continue
        # the reason sits on the line before the def (or its decorators), or at the top of the
        # body: after the signature, before the first statement that is not the docstring
        body = node.body
        if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]
        head = lines[max(first - 2, 0): body[0].lineno - 1]
        if any(s.strip().startswith("# long:") for s in head):
            continue
        out.append((f"{path.relative_to(PKG.parent)} {node.name}", f"line {node.lineno}, {length} lines"))
    return out


def test_functions_are_short_or_say_why():
    """Over 60 lines needs a `# long: <reason>` comment on the line before the def (or its first body line)."""
    long = [f"{name} ({where})" for p in sorted(PKG.rglob("*.py")) for name, where in _long_functions(p)]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines without a '# long:' reason:\n" + "\n".join(long)
