"""Drive the system's headless Chromium over the DevTools protocol on a pipe (no driver, no download).

``--remote-debugging-pipe``: Chromium reads JSON commands from fd 3 and writes replies and
events to fd 4, each message terminated by a NUL byte.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--remote-debugging-pipe")


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One headless browser; :meth:`visit` loads a page and reports what went wrong on it."""

    def __init__(self, user_data_dir: Path, timeout: float = 60.0) -> None:
        binary = chromium_binary()
        if binary is None:
            raise RuntimeError("chromium is not installed (Debian: apt-get install chromium; .ci/run does it)")
        self.timeout = timeout
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # bash moves our pipe ends to fds 3 and 4, where Chromium expects them (via fresh fds, so that
        # ends which already are 3 or 4 are not closed by mistake)
        r, w = to_browser_r, from_browser_w
        script = (f'exec {{a}}<&{r} {{b}}>&{w}; exec {r}<&- {w}>&-; exec 3<&$a 4>&$b; '
                  f'exec {{a}}<&- {{b}}>&-; exec "$0" "$@"')
        self.proc = subprocess.Popen(["bash", "-c", script, binary, *FLAGS, f"--user-data-dir={user_data_dir}",
                                      "about:blank"], pass_fds=(to_browser_r, from_browser_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        try:
            self._send("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        if self.proc.stderr:
            self.proc.stderr.close()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- protocol -----------------------------------------------------------------------------
    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def _send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _wait_event(self, method: str, session: str) -> None:
        deadline = time.monotonic() + self.timeout
        for e in self.events:
            if e.get("method") == method and e.get("sessionId") == session:
                return
        while True:
            e = self._message(deadline)
            self.events.append(e)
            if e.get("method") == method and e.get("sessionId") == session:
                return

    # -- what the tests use ------------------------------------------------------------------------
    def visit(self, url: str, screenshot: Path | None = None) -> dict[str, Any]:
        """Load ``url``; return its console errors, image and table counts (and save a full-page screenshot)."""
        tab = open_tab(self, url)
        check = ("JSON.stringify({images: Array.from(document.images).map(i => ({src: i.getAttribute('src'), "
                 "ok: i.complete && i.naturalWidth > 0})), tables: document.querySelectorAll('table').length, "
                 "rows: document.querySelectorAll('tbody tr').length, scripts: document.scripts.length, "
                 "title: document.title, text: document.body.innerText})")
        page = json.loads(tab.evaluate(check))
        if screenshot is not None:
            tab.screenshot(screenshot)
        page["errors"] = tab.errors()
        page["requests"] = tab.requests()
        tab.close()
        return page

class Tab:
    """One open page of a :class:`Chromium`: evaluate script in it, screenshot it, and see its
    console errors and every network request it made (:meth:`Chromium.open`)."""

    def __init__(self, browser: Chromium, target: str, session: str) -> None:
        self.browser, self.target, self.session = browser, target, session

    def evaluate(self, expression: str, await_promise: bool = False) -> Any:
        """The value of ``expression`` (JSON-serialisable) in the page; a thrown error raises."""
        reply = self.browser._send("Runtime.evaluate", self.session, expression=expression, returnByValue=True,
                                   awaitPromise=await_promise)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression[:80]}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def mouse(self, kind: str, x: float, y: float) -> None:
        """A real mouse event at page coordinates (``mouseMoved``, ``mousePressed``, ``mouseReleased``)."""
        extra = {"button": "left", "clickCount": 1} if kind != "mouseMoved" else {}
        self.browser._send("Input.dispatchMouseEvent", self.session, type=kind, x=x, y=y, **extra)

    def screenshot(self, path: Path) -> None:
        size = self.browser._send("Page.getLayoutMetrics", self.session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 8000), "scale": 1}
        shot = self.browser._send("Page.captureScreenshot", self.session, format="png", clip=clip,
                                  captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def _mine(self) -> list[dict[str, Any]]:
        return [e for e in self.browser.events if e.get("sessionId") == self.session]

    def errors(self) -> list[str]:
        """Uncaught exceptions, console.error/assert calls and error log entries so far."""
        out = []
        for e in self._mine():
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                out.append(str(p.get("exceptionDetails", {}).get("exception", {}).get("description")
                               or p.get("exceptionDetails", {}).get("text")))
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif e.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    def requests(self) -> list[str]:
        """The URL of every request the page made (documents, scripts, images, fonts, fetches)."""
        return [e["params"]["request"]["url"] for e in self._mine() if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        self.browser._send("Target.closeTarget", targetId=self.target)


def open_tab(browser: Chromium, url: str, width: int = 1280, height: int = 1000) -> Tab:
    """Load ``url`` in a new tab of ``browser`` with the network, console and log watched."""
    target = browser._send("Target.createTarget", url="about:blank")["targetId"]
    session = browser._send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    browser.events = []
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser._send(f"{domain}.enable", session)
    browser._send("Emulation.setDeviceMetricsOverride", session, width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
    browser._send("Page.navigate", session, url=url)
    browser._wait_event("Page.loadEventFired", session)
    return Tab(browser, target, session)
