"""llama.cpp's web chat page in ggufrope's llama-server build, seen by a real browser: GET / is
the page (200, text/html), headless Chromium (Debian's, driven over the DevTools protocol) shows
the chat, a message typed into it gets the model's answer, and a screenshot of that is saved.
The page is built once per UI source (npm) and reused by later builds; without node/npm a build
has no page and `serve` says so in one line with what to install."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import REAL_HOME, REPO, hang_guard, run_cli

QUESTION = "Write one sentence about the sea."


@pytest.fixture(scope="session")
def chromium() -> str:
    subprocess.run(["sh", os.path.join(REPO, "tests", "ensure_chromium.sh")], check=True, timeout=900)
    return "/usr/bin/chromium"


def _serve(env_extra: dict, *args: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, **env_extra}
    proc = subprocess.Popen([sys.executable, "-m", "ggufrope", "serve", "demo", "--ctx", "2048", "--port", "auto",
                             "--set", "threads=1", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("serving demo at http://127.0.0.1:"), (line, proc.poll(), proc.stderr.read())
    return proc, line.split(" at ", 1)[1].split()[0]


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    return proc.stderr.read()


def test_the_served_url_is_the_chat_page_and_a_message_gets_an_answer(cpu_build, smollm2, chromium, tmp_path):
    from cdp import Browser
    assert cpu_build.checks["ui"]["key"], cpu_build.checks   # the default build embeds the page
    proc, url = _serve({"GGUFROPE_BUILD_BIN_DIR": cpu_build.bin_dir}, "--model", smollm2,
                       "--set", "sampling.temperature=0")
    browser = None
    try:
        # browsers ask for gzip (llama-server serves the embedded assets compressed)
        req = urllib.request.Request(url + "/", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
        browser = Browser(str(tmp_path / "profile"), str(tmp_path / "chromium.log"))
        with hang_guard(300, "the chat page in Chromium"):
            browser.connect()
            browser.call("Page.enable")
            browser.call("Page.navigate", url=url + "/")
            browser.wait_for("!!document.querySelector('textarea') && document.body.innerText.includes('Send')", 120)
            browser.eval("document.querySelector('textarea').focus()")
            browser.type_text(QUESTION)
            browser.press_enter()
            # generation stats (model name, tokens, t/s) follow the answer while it streams; it is
            # done when the page stops changing
            text = browser.wait_for("(() => { const t = document.body.innerText; "
                                    "return /\\n\\d+ tokens\\n[\\d.]+s\\n[\\d.]+ t\\/s/.test(t) ? t : ''; })()", 240)
            while True:
                time.sleep(1.5)
                now = browser.eval("document.body.innerText")
                if now == text:
                    break
                text = now
        m = re.search(re.escape(QUESTION) + r"\n.*?tokens/s\n+(.+?)\n+demo\n\d+ tokens", text, re.S)
        assert m and m.group(1).strip(), text
        shot = tmp_path / "serve-webui.png"
        browser.screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        if os.environ.get("GGUFROPE_SCREENSHOT"):   # how docs/serve-webui.png was made
            shutil.copy(shot, os.environ["GGUFROPE_SCREENSHOT"])
    finally:
        if browser is not None:
            browser.close()
        _stop(proc)


def test_a_second_build_reuses_the_cached_page(cpu_build):
    """The page is built once per UI source: asking for the default build again is a cache hit
    (no npm, no cmake), and the page's cache entry is what the build's stamp names."""
    from ggufrope.build import webui
    from ggufrope.build.ensure import ensure_build
    env = {**{k: v for k, v in os.environ.items() if k != "GGUFROPE_HOME"}, "GGUFROPE_HOME": REAL_HOME}
    again = ensure_build(env=env)
    assert again.cached and again.dir == cpu_build.dir
    key = webui.ui_key(cpu_build.source.path)
    with open(os.path.join(cpu_build.dir, "build.json")) as f:
        assert json.load(f)["ui"] == key
    # cached: state() finds it even on a machine without node/npm (nothing would run npm)
    s = webui.state(cpu_build.source.path, env, which=lambda name: None)
    assert s.dist and os.path.isfile(os.path.join(s.dist, "index.html")) and not s.why


def test_without_node_serve_says_there_is_no_page_and_what_to_install(cpu_build, llama_src, smollm2, tmp_path):
    """A build made without node/npm (its stamp as _build_locked writes it then) is used as it
    is on a machine that still has none: serve works and says in one line what to install."""
    from ggufrope.build import builder, webui
    from ggufrope.build.source import resolve_source
    from ggufrope.build.spec import BuildSpec
    env = dict(os.environ)
    bdir = builder.build_dir(BuildSpec(), resolve_source(llama_src, env), env)
    os.makedirs(bdir)
    with open(os.path.join(cpu_build.dir, "build.json")) as f:
        stamp = json.load(f)
    why = webui.node_problem(lambda name: None, lambda argv: None)
    stamp["ui"] = None
    stamp["checks"]["ui"] = {"key": None, "why": why}
    with open(os.path.join(bdir, "build.json"), "w") as f:
        json.dump(stamp, f)
    bare = tmp_path / "bin"   # a PATH with no node and no npm
    bare.mkdir()
    proc, url = _serve({"PATH": str(bare), "GGUFROPE_CONFIG": str(tmp_path / "config")}, "--model", smollm2)
    err = _stop(proc)
    lines = [ln for ln in err.splitlines() if "web chat page" in ln]
    assert lines == ["note: this llama-server has no web chat page (node not found: install Node.js >= 20 and npm "
                     "(Debian/Ubuntu: apt-get install nodejs npm))"], err
    assert not os.path.isdir(os.path.join(os.environ["GGUFROPE_HOME"], "webui"))   # and npm was not run
    assert run_cli("build", "list", "--json", env_extra={"PATH": str(bare)}, check=True)


def test_a_failed_npm_run_is_remembered_and_force_tries_again(tmp_path):
    """npm failing (offline, a broken lock file) leaves the build without the page, says why with
    the log, and is not retried on every build (build --force tries again)."""
    from ggufrope.build import webui
    src = tmp_path / "llama.cpp"
    (src / "tools" / "ui").mkdir(parents=True)
    (src / "tools" / "ui" / "package-lock.json").write_text("{}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "npm.calls"
    (bin_dir / "node").write_text("#!/bin/sh\necho v20.19.0\n")
    (bin_dir / "npm").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\necho 'npm error network' >&2\nexit 1\n")
    for f in ("node", "npm"):
        os.chmod(bin_dir / f, 0o755)
    which = lambda name: str(bin_dir / name) if name in ("node", "npm") else None  # noqa: E731
    env = {"GGUFROPE_HOME": str(tmp_path / "home")}
    assert webui.wanted(str(src), env, which) == webui.ui_key(str(src))     # npm could build it
    s = webui.ensure(str(src), env, which=which)
    assert s.dist is None and "`npm ci --no-audit --no-fund` failed (exit 1) building the web UI (npm error network)" in s.why and "npm.log" in s.why
    assert calls.read_text().split() == ["ci", "--no-audit", "--no-fund"]
    assert webui.wanted(str(src), env, which) is None     # so a build stamped without the page is current
    assert webui.ensure(str(src), env, which=which).why == s.why and len(calls.read_text().splitlines()) == 1
    webui.ensure(str(src), env, force=True, which=which)
    assert len(calls.read_text().splitlines()) == 2
    assert "node not found" in webui.state(str(src), {"GGUFROPE_HOME": str(tmp_path / "h2")}, lambda n: None).why
