"""The CLI's registration: `ggufrope CMD` imports only the module of CMD (start-up), and the table
that says where each command lives matches what the modules define."""
from __future__ import annotations

import importlib
import subprocess
import sys

from ggufrope.cli import app as cli_app
from conftest import REPO, run_cli


def test_where_table_matches_the_modules():
    defined = {}
    for module in cli_app.COMMANDS:
        mod = importlib.import_module(f"ggufrope.cli.{module}")
        for c in mod.commands.registered_commands:
            defined[c.name or c.callback.__name__.replace("_", "-")] = module
    assert defined == cli_app.WHERE


def _loaded_cli_modules(*argv: str) -> set[str]:
    code = ("import sys; from ggufrope.cli import app\n"
            f"sys.argv = ['ggufrope', *{list(argv)!r}]\n"
            "try:\n    app.main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('ggufrope.cli.') and m.endswith(('_cmd', '_cmds'))),"
            " file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    return set(eval(r.stderr.strip().splitlines()[-1]))


def test_a_command_imports_only_its_module(tmp_path):
    assert _loaded_cli_modules("plan", "--help") == {"ggufrope.cli.plan_cmd"}
    assert _loaded_cli_modules("presets", "list") == {"ggufrope.cli.presets_cmd"}
    everything = {f"ggufrope.cli.{m}" for m in cli_app.COMMANDS} | {f"ggufrope.cli.{m}" for _, m, _ in cli_app.GROUPS}
    assert _loaded_cli_modules("--help") == everything


def test_a_typo_gets_one_suggestion_from_all_commands():
    r = run_cli("rnu")
    assert r.returncode == 2
    assert r.stderr.strip() == "ggufrope: error: python -m ggufrope: No such command 'rnu'. Did you mean 'run'?"
    r = run_cli("--debug", "inspekt", "x")
    assert r.returncode == 2 and "Did you mean 'inspect'?" in r.stderr
