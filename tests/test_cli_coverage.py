"""Every public command and option in `ggufrope --help` is exercised through the CLI by some test.

The command tree comes from the typer app itself (ggufrope/cli/app.py), so a new command or
option fails this test until a test runs it. "Exercised" is read from the tests' source: a test
(a top-level function or class in tests/test_*.py) that runs the CLI (run_cli, test_bad_input's
cli(), the crash tests' driver, an argv list with "-m", "ggufrope" started directly, or a helper
of its own file that does) and names the command's words and one of the option's spellings as
string literals. Parametrize decorators count as
part of the test they decorate."""
from __future__ import annotations

import ast
import glob
import os

import typer

from conftest import REPO
from ggufrope.cli.app import _register, app

# what a test calls to run `ggufrope ARGS` as a real process
RUNNERS = {"run_cli", "cli", "driver", "run_released"}


def _commands():
    """(command words, click command) for every public command, groups included."""
    _register()
    root = typer.main.get_command(app)
    out = []

    def walk(cmd, words):
        out.append((words, cmd))
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            if not getattr(sub, "hidden", False):
                walk(sub, words + (name,))
    walk(root, ())
    return out


def _options(cmd) -> list[tuple[str, ...]]:
    """Each public option of cmd as its spellings (--help is click's, not ours)."""
    return [tuple(p.opts + p.secondary_opts) for p in cmd.params
            if p.param_type_name == "option" and not p.hidden and "--help" not in p.opts]


def _strings(node) -> set[str]:
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            out.add(n.value)
            # "--opt=value" and "--opt value" written as one literal
            out.update(w.split("=", 1)[0] for w in n.value.split() if w.startswith("-"))
    return out


def _runs_module_directly(node) -> bool:
    """An argv list holding "-m", "ggufrope" (a test that starts the CLI with subprocess.Popen to
    talk to it while it runs: serve, worker, chat on stdin) runs the CLI as much as run_cli does."""
    for n in ast.walk(node):
        if isinstance(n, ast.List):
            words = [e.value if isinstance(e, ast.Constant) else None for e in n.elts]
            if any(a == "-m" and b == "ggufrope" for a, b in zip(words, words[1:])):
                return True
    return False


def _called_names(node) -> set[str]:
    return {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def _units() -> list[tuple[str, set[str]]]:
    """(test name, string literals) for every test that runs the CLI, directly or through a
    helper defined in its own file (a helper lends its literals to the tests that call it, and
    a test gets the literals of the module-level constants it uses: argv tables, case lists)."""
    units = []
    for path in sorted(glob.glob(os.path.join(REPO, "tests", "test_*.py"))):
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        consts = {t.id: _strings(a.value) for a in tree.body if isinstance(a, ast.Assign)
                  for t in a.targets if isinstance(t, ast.Name)}
        strings, calls = {}, {}
        for name, n in defs.items():
            used = {x.id for x in ast.walk(n) if isinstance(x, ast.Name)}
            strings[name] = _strings(n).union(*(consts[u] for u in used & set(consts)))
            calls[name] = _called_names(n)
        runs = {name for name in defs if calls[name] & RUNNERS or _runs_module_directly(defs[name])}
        changed = True
        while changed:  # helpers of helpers
            changed = False
            for name in defs:
                for callee in calls[name] & runs - {name}:
                    if name not in runs or not strings[callee] <= strings[name]:
                        runs.add(name)
                        strings[name] |= strings[callee]
                        changed = True
        units += [(f"{os.path.basename(path)}::{name}", strings[name]) for name in sorted(runs)
                  if name.startswith(("test_", "Test"))]
    return units


def _covered(words: tuple[str, ...], spellings: tuple[str, ...] | None, units) -> list[str]:
    return [name for name, s in units
            if set(words) <= s and (spellings is None or any(o in s for o in spellings))]


def test_command_tree_is_read():
    cmds = {" ".join(w) for w, _ in _commands()}
    assert {"", "patch", "verify", "build", "build list", "eval", "eval needle", "worker probe"} <= cmds


def test_every_command_runs_in_some_test():
    units = _units()
    missing = [" ".join(w) for w, _ in _commands() if w and not _covered(w, None, units)]
    assert not missing, f"commands no test runs through the CLI: {missing}"


def test_every_option_is_named_by_some_test():
    units = _units()
    missing = []
    for words, cmd in _commands():
        for spellings in _options(cmd):
            if not _covered(words, spellings, units):
                missing.append(f"ggufrope {' '.join(words)} {'/'.join(spellings)}".replace("  ", " "))
    assert not missing, "options no test names in a CLI run:\n  " + "\n  ".join(missing)
