"""A small Chrome DevTools protocol client for the web UI test: headless Chromium (Debian's
/usr/bin/chromium, installed by tests/ensure_chromium.sh) in a fresh profile, one page, driven
over its websocket with websocket-client. Only what the test needs: navigate, evaluate, type,
press Enter, screenshot."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.request

CHROMIUM = "/usr/bin/chromium"
# flags that work on these machines: no sandbox (root), no GPU, nothing fetched in the background
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,860", "--remote-debugging-port=0")


class Browser:
    def __init__(self, profile: str, log: str) -> None:
        self.profile = profile
        self._log = open(log, "w")
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.ws = None
        self._id = 0

    def connect(self, timeout: float = 60) -> None:
        import websocket
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start (exit {self.proc.poll()}); log: {self._log.name}")
            time.sleep(0.2)
        port = open(port_file).read().split()[0]
        while True:
            pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10))
            pages = [p for p in pages if p.get("type") == "page"]
            if pages:
                break
            time.sleep(0.2)
        # websocket-client sends an Origin header Chromium refuses unless told otherwise
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)

    def call(self, method: str, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expr: str):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")

    def wait_for(self, expr: str, timeout: float, poll: float = 0.5):
        """expr's first truthy value (a hang guard, not a speed claim)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = self.eval(expr)
            if v:
                return v
            time.sleep(poll)
        raise TimeoutError(f"page never satisfied {expr!r} in {timeout:.0f}s; page text: "
                           f"{(self.eval('document.body && document.body.innerText') or '')[:800]!r}")

    def type_text(self, text: str) -> None:
        self.call("Input.insertText", text=text)

    def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13,
                      nativeVirtualKeyCode=13, **({"text": "\r"} if kind == "keyDown" else {}))

    def screenshot(self, path: str) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self) -> None:
        try:
            if self.ws is not None:
                self.ws.close()
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, 15)
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, 9)
                    self.proc.wait()
            self._log.close()
