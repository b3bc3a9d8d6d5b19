"""A tiny W3C WebDriver client for headless Chromium, on the standard library only (urllib + json).

It starts `chromedriver` on a free local port and one Chromium session with a fresh profile; nothing is
fetched from the network (host names do not resolve, so a page that needs a CDN shows it).
"""
from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"   # the W3C key of an element reference
KEYS = {"left": "\ue012", "right": "\ue014", "home": "\ue011", "end": "\ue010"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND"]


def find_chromium() -> tuple[str | None, str | None]:
    "Paths of a Chromium binary and of chromedriver (None where missing)."
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    return browser, shutil.which("chromedriver")


class WebDriverError(RuntimeError):
    pass


class Browser:
    "One headless Chromium session driven over chromedriver's HTTP API; use as a context manager."

    def __init__(self, chromium: str, chromedriver: str, window: tuple[int, int] = (1200, 900), timeout: float = 20,
                 logs: bool = False):
        "`logs`: record the console and every network request the pages make (read them with `log`)."
        self.profile = tempfile.mkdtemp(prefix="cldiff-chromium-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.driver = subprocess.Popen([chromedriver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.session = None
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if self._call("GET", "/status", timeout=2)["ready"]: break
                except (OSError, WebDriverError):
                    pass
                if time.monotonic() > deadline: raise WebDriverError(f"chromedriver did not start within {timeout} s")
                time.sleep(0.1)
            args = CHROMIUM_FLAGS + [f"--user-data-dir={self.profile}", f"--window-size={window[0]},{window[1]}"]
            match = {"browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": args}}
            if logs: match["goog:loggingPrefs"] = {"browser": "ALL", "performance": "ALL"}
            caps = {"capabilities": {"alwaysMatch": match}}
            self.session = self._call("POST", "/session", caps, timeout=timeout)["sessionId"]
        except BaseException:
            self.close(); raise

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = 30):
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r: reply = json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            reply = json.loads(e.read() or b"{}")
            v = reply.get("value", {})
            raise WebDriverError(f"{method} {path}: {v.get('error')}: {v.get('message', '')[:300]}") from None
        return reply.get("value")

    def _s(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str): self._s("POST", "/url", {"url": url})
    def run(self, script: str, *args):
        "Run `script` (a function body: use `arguments[i]` and `return`) in the page."
        return self._s("POST", "/execute/sync", {"script": script, "args": list(args)})
    def find(self, css: str) -> dict: return self._s("POST", "/element", {"using": "css selector", "value": css})
    def click(self, el: dict): self._s("POST", f"/element/{el[ELEMENT]}/click")
    def keys(self, el: dict, text: str): self._s("POST", f"/element/{el[ELEMENT]}/value", {"text": text})
    def prop(self, el: dict, name: str): return self._s("GET", f"/element/{el[ELEMENT]}/property/{name}")
    def text(self, el: dict) -> str: return self._s("GET", f"/element/{el[ELEMENT]}/text")
    def screenshot(self, el: dict | None = None) -> bytes:
        "A PNG of the viewport, or of one element."
        return base64.b64decode(self._s("GET", f"/element/{el[ELEMENT]}/screenshot" if el else "/screenshot"))

    def log(self, kind: str = "browser") -> list[dict]:
        "The entries logged since the last call: 'browser' (the console) or 'performance' (DevTools events; needs `logs=True`)."
        return self._s("POST", "/se/log", {"type": kind})

    def requests(self) -> list[str]:
        "URLs of the network requests the pages made since the last call (from the DevTools log; needs `logs=True`)."
        events = (json.loads(e["message"])["message"] for e in self.log("performance"))
        return [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]

    def wait(self, fn, timeout: float = 5, interval: float = 0.05, what: str = "a condition"):
        "Poll `fn()` until it returns something truthy; return it (raise TimeoutError naming `what`)."
        deadline = time.monotonic() + timeout
        while True:
            v = fn()
            if v: return v
            if time.monotonic() > deadline: raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(interval)

    def close(self):
        if self.session is not None:
            try: self._s("DELETE", "")
            except (OSError, WebDriverError): pass
            self.session = None
        if self.driver.poll() is None:
            self.driver.terminate()
            try: self.driver.wait(5)
            except subprocess.TimeoutExpired: self.driver.kill(); self.driver.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self): return self
    def __exit__(self, *exc): self.close()
