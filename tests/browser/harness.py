"""Drive a real JupyterLab in Debian's Chromium and report what a learner would see.

The headless notebook tests (nbval, papermill) run the code but never render it: they cannot see
"Loading widget...", a plot that failed in JavaScript, or a slider that no longer moves its figure.
This module starts JupyterLab in a scratch HOME, opens a notebook in Chromium through Playwright,
runs all cells through the Run menu, and inspects the page.

How each check is made (kept here so a failing test can be read against it):
- The notebook's cell models are read through `window.jupyterapp` (LabApp.expose_app_in_browser):
  they say which cells ran, which outputs are errors, and which outputs *should* be widgets or
  plotly figures. Run All itself goes through the Run menu, as a learner would do it.
- Each widget or plotly output is then looked up in the page, scrolled into view, and must have
  rendered: a plotly output needs a `.js-plotly-plot` with an SVG of non-zero size, and the titles
  its layout asks for must be drawn; a widget output must not say "Loading widget..." or "Error
  displaying widget" and must hold a visible element, unless its model was closed (tqdm with
  leave=False); every plotly FigureWidget inside it (counted in the widget model tree) must have
  rendered its plot.
- Typeset math (MathJax's <mjx-container>, KaTeX) anywhere in the notebook is read back as the text
  MathJax took for math; text that looks like prose (a dollar amount followed by words, words run
  together) means two dollars in Markdown or HTML were read as LaTeX delimiters.
- Each control is changed once (a key press on a slider, the next option of a dropdown, a click) and
  a fingerprint of every output except the controls is polled in the page until it has changed and
  then held still, with the kernel idle, for a quiet second; the time to the last change is the
  control's response time.
- Console messages of type error, uncaught page errors, failed requests and any request to a host
  other than 127.0.0.1 (the course must work offline) are collected from the moment the page
  opens; only those matched by CONSOLE_ALLOW (each entry says why) are ignored.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# Debian names the package and the binary `chromium`; UNMASKED_CHROMIUM points elsewhere if needed.
CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-gpu",
    "--disable-dev-shm-usage",  # small /dev/shm in containers
    "--disable-background-networking",  # nothing outside 127.0.0.1 may be reached
    "--disable-extensions",
    "--no-first-run",
    # Offline by construction: no host but 127.0.0.1 resolves, so a figure that needs a CDN fails
    # here exactly as it would for a learner without internet (and the failed request is reported).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]

# Console errors that are known to be harmless. Every entry must say why it is harmless; anything
# else that the page logs as an error fails the test. None is needed today: JupyterLab 4.6,
# ipywidgets 8.1, anywidget 0.11 and plotly 7.1 log no console error for any lecture notebook
# (measured). Add (pattern, reason) pairs here only for a message that is understood and harmless.
CONSOLE_ALLOW: list[tuple[re.Pattern, str]] = []

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"

# Lab settings for the scratch HOME: no toasts or requests to the internet. The course is offline,
# and a news toast could cover the notebook in a screenshot.
LAB_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    # The extension manager queries PyPI when it starts.
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
}


def find_chromium() -> str | None:
    """The Chromium executable to drive, or None when this machine has none."""
    override = os.environ.get("UNMASKED_CHROMIUM")
    if override:  # an explicit choice: no fallback to PATH
        return override if Path(override).is_file() else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Python playwright is not installed (pip install -e '.[browser]')"
    if find_chromium() is None:
        override = os.environ.get("UNMASKED_CHROMIUM")
        where = (
            f"UNMASKED_CHROMIUM={override} is not a file"
            if override
            else "no Chromium found (looked for " + ", ".join(CHROMIUM_NAMES) + " on PATH)"
        )
        return (
            f"{where}; install it with: apt-get install -y --no-install-recommends chromium "
            "fonts-liberation"
        )
    return None


def browser_required() -> bool:
    """CI sets UNMASKED_REQUIRE_BROWSER=1: there a missing browser is a failure, not a skip."""
    value = os.environ.get("UNMASKED_REQUIRE_BROWSER", "").strip().lower()
    return value in ("1", "true", "yes", "on")


def chromium_or_skip(what: str) -> str:
    """The Chromium to drive; without one, skip `what` here, or fail it where CI requires it."""
    import pytest

    reason = browser_unavailable()
    if reason:
        if browser_required():
            pytest.fail(
                f"UNMASKED_REQUIRE_BROWSER=1 but {what} cannot run: {reason}", pytrace=False
            )
        pytest.skip(f"{what} skipped: {reason}")
    return find_chromium()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list:
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:  # psutil missing or the process already gone: the group kill still runs
        return []


class LabServer:
    """A JupyterLab server on 127.0.0.1 in a scratch HOME, in fast mode. Use as a context
    manager."""

    def __init__(self, home: Path, *, startup_timeout: float = 90.0, extra_env: dict | None = None):
        self.home = Path(home)
        self.root = self.home  # the server's root_dir; notebook paths are relative to it
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.home / "jupyterlab.log"
        self.startup_timeout = startup_timeout
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> LabServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _env(self) -> dict:
        env = dict(os.environ)
        home = str(self.home)
        env.update(
            HOME=home,
            UNMASKED_FAST="1",
            JUPYTER_CONFIG_DIR=f"{home}/.jupyter",
            JUPYTER_DATA_DIR=f"{home}/.local/share/jupyter",
            JUPYTER_RUNTIME_DIR=f"{home}/.local/share/jupyter/runtime",
            JUPYTERLAB_SETTINGS_DIR=f"{home}/.jupyter/lab/user-settings",
            JUPYTERLAB_WORKSPACES_DIR=f"{home}/.jupyter/lab/workspaces",
            IPYTHONDIR=f"{home}/.ipython",
            PYTHONUNBUFFERED="1",
        )
        # Test what a learner gets: plotly picks its renderer itself unless the course sets one.
        env.pop("PLOTLY_RENDERER", None)
        env.pop("JUPYTER_TOKEN", None)
        env.update(self.extra_env)
        return env

    def _write_settings(self) -> None:
        settings = self.home / ".jupyter/lab/user-settings"
        for rel, value in LAB_USER_SETTINGS.items():
            path = settings / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self._write_settings()
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            # window.jupyterapp: read cell models in the page
            "--LabApp.expose_app_in_browser=True",
            "--ServerApp.terminals_enabled=False",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.home,
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                self.api("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.25)
        raise TimeoutError(
            f"jupyter lab not ready after {self.startup_timeout:.0f} s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Shut kernels and server down; kill whatever is left. Safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        children = _descendants(
            proc.pid
        )  # kernels run in their own sessions: a group kill misses them
        if proc.poll() is None:
            try:
                self.api("POST", "/api/shutdown", timeout=5)
                proc.wait(timeout=15)
            except Exception:
                pass
        if proc.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for child in children:
            try:
                child.kill()
            except Exception:  # already exited
                pass

    # -- REST --------------------------------------------------------------------------------
    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 10):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def shutdown_kernels(self) -> None:
        for session in self.api("GET", "/api/sessions") or []:
            try:
                self.api("DELETE", f"/api/sessions/{session['id']}")
            except urllib.error.HTTPError:
                pass

    def lab_url(self, path: str, workspace: str) -> str:
        """A URL that opens `path` in a fresh, named workspace (no layout restored from a
        previous page)."""
        return f"{self.url}/lab/workspaces/{workspace}/tree/{path}?reset&token={self.token}"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"


def copy_notebooks(src: Path, dest: Path) -> list[Path]:
    """A clean copy of the notebooks folder (no checkpoints); returns the copied .ipynb files."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return sorted(dest.glob("*.ipynb"))


# ------------------------------------------------------------------------------------------------
# In the page
# ------------------------------------------------------------------------------------------------

# Finds the NotebookPanel for a path (the page may hold other widgets, such as the launcher).
_JS_PANEL = """
(path) => {
  const app = window.jupyterapp;
  if (!app) return null;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.content && w.sessionContext) return w;
  }
  return null;
}
"""

JS_STATE = (
    "(path) => { const find = "
    + _JS_PANEL
    + """;
  const panel = find(path);
  if (!panel) return {open: false};
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  const prompts = cells.map(c => (c.node.querySelector('.jp-InputPrompt') || {}).textContent || '');
  return {
    open: true,
    ready: panel.sessionContext.isReady,
    kernel: kernel ? kernel.status : null,
    nCode: cells.length,
    nExecuted: cells.filter(c => c.model.executionCount !== null).length,
    nQueued: prompts.filter(p => p.includes('*')).length,
    nEmptySource: cells.filter(c => c.model.sharedModel.getSource().trim() === '').length,
  };
}"""
)

# Reads every code cell's outputs from the model and the page. Each output that should be a widget
# or a plotly figure is scrolled into view first, so the browser lays it out (Lab skips off-screen
# cells).
JS_INSPECT = (
    (
        "async (path) => { const find = "
        + _JS_PANEL
        + """;
  const panel = find(path);
  const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const visible = (el) => { const b = el.getBoundingClientRect(); return b.width > 0 && b.height > 0; };
  const plotOk = (p) => !!(p._fullLayout && p.querySelector('svg.main-svg') && visible(p));
  // Titles the layout asks for but the page does not show. plotly.js reads text between two '$'
  // as LaTeX, and without MathJax it draws nothing: "$1.59 ... $1.42" in a title vanishes.
  const missingTitles = (p) => {
    const lay = p.layout || {};  // what the figure asked for (the full layout holds edit placeholders)
    const text = (t) => String((t && typeof t === 'object') ? (t.text || '') : (t || '')).trim();
    const wanted = [['title', text(lay.title), '.g-gtitle']];
    for (const ax of ['xaxis', 'yaxis']) if (lay[ax]) wanted.push([ax, text(lay[ax].title), '.g-' + ax[0] + 'title']);
    const drawn = (sel) => { const g = p.querySelector(sel); return !!g && !!(g.textContent || '').trim() && visible(g); };
    return wanted.filter(([name, t, sel]) => t && !drawn(sel)).map(([name, t]) => name + ': ' + t);
  };
  const cells = [];
  let ci = -1;
  for (const cell of panel.content.widgets) {
    ci += 1;
    if (cell.model.type !== 'code') continue;
    const m = cell.model;
    const rec = {index: ci, executionCount: m.executionCount,
                 source: m.sharedModel.getSource().split('\\n')[0].slice(0, 80), outputs: []};
    const children = cell.outputArea ? cell.outputArea.widgets : [];
    for (let k = 0; k < m.outputs.length; k++) {
      const o = m.outputs.get(k).toJSON();
      const data = o.data || {};
      const out = {type: o.output_type, mimes: Object.keys(data)};
      if (o.output_type === 'error') { out.ename = o.ename; out.evalue = String(o.evalue).slice(0, 300); }
      if (data['text/plain']) out.plain = String(data['text/plain']).slice(0, 80);
      out.isWidget = (WIDGET in data);
      out.isPlotly = (PLOTLY in data) && !out.isWidget;
      // A FigureWidget shows as one, or inside a box: count the FigureWidgets in the widget's repr.
      out.nFigureWidgets = out.isWidget ? (String(data['text/plain'] || '').match(/FigureWidget\\(/g) || []).length : 0;
      out.isFigureWidget = out.nFigureWidgets > 0;
      const node = children[k] ? children[k].node : null;
      if (node && (out.isWidget || out.isPlotly)) {
        node.scrollIntoView({block: 'center'});
        await frame();
        const area = node.querySelector('.jp-OutputArea-output') || node;
        const text = area.textContent || '';
        // The plotly mime renderer makes the output node itself the plot; a FigureWidget nests it.
        const plots = [...(area.matches('.js-plotly-plot') ? [area] : []), ...area.querySelectorAll('.js-plotly-plot')];
        out.dom = {
          found: true,
          text: text.slice(0, 200),
          loading: text.includes('Loading widget'),
          widgetError: text.includes('Error displaying widget') ||
                       !!area.querySelector('.jupyter-widgets-error-widget'),
          nPlots: plots.length,
          nPlotsOk: plots.filter(plotOk).length,
          missingTitles: plots.flatMap(missingTitles),
          visibleChildren: [...area.querySelectorAll('*')].filter(visible).length,
          height: Math.round(area.getBoundingClientRect().height),
          modelAlive: null,
        };
        // Is the widget's model still alive? A closed widget (tqdm with leave=False) rightly leaves an
        // empty output; a live model whose view is empty failed to render. Best effort: this reads the
        // ipywidgets renderer's manager, an internal that may change; null means "could not tell".
        if (out.isWidget) {
          try {
            const renderer = children[k].widgets && children[k].widgets.find(w => w.node === area);
            const manager = await Promise.race([renderer._manager.promise, new Promise(r => setTimeout(r, 2000))]);
            const id = data[WIDGET].model_id;
            if (manager && manager.has_model) out.dom.modelAlive = !!manager.has_model(id);
            // The repr is cut short for big boxes, so also count plotly FigureWidgets in the model tree
            // (plotly's anywidget model syncs _widget_data and _widget_layout).
            if (out.dom.modelAlive) {
              const count = (model, depth) => {
                if (!model || !model.attributes || depth > 20) return 0;
                if ('_widget_data' in model.attributes && '_widget_layout' in model.attributes) return 1;
                const kids = model.get('children');
                return Array.isArray(kids) ? kids.reduce((n, kid) => n + count(kid, depth + 1), 0) : 0;
              };
              const n = count(await manager.get_model(id), 0);
              out.nFigureWidgets = Math.max(out.nFigureWidgets, n);
              out.isFigureWidget = out.nFigureWidgets > 0;
            }
          } catch (e) { out.dom.modelAlive = null; }
        }
      } else if (out.isWidget || out.isPlotly) {
        out.dom = {found: false};
      }
      rec.outputs.push(out);
    }
    cells.push(rec);
  }
  // Typeset math anywhere in the notebook (Markdown, HTML outputs, widgets): MathJax 3 writes an
  // <mjx-container> whose assistive MathML holds the text it read as math; KaTeX keeps the TeX source.
  const math = [];
  ci = -1;
  for (const cell of panel.content.widgets) {
    ci += 1;
    for (const node of cell.node.querySelectorAll('mjx-container, .katex, .MathJax')) {
      if (node.parentElement && node.parentElement.closest('mjx-container, .katex, .MathJax')) continue;
      const mml = node.querySelector('mjx-assistive-mml, math');
      const tex = node.querySelector('annotation[encoding="application/x-tex"]');
      math.push({index: ci, cellType: cell.model.type,
                 source: cell.model.sharedModel.getSource().split('\\n')[0].slice(0, 80),
                 text: ((tex || mml || node).textContent || '').slice(0, 200)});
    }
  }
  const text = panel.content.node.textContent || '';
  return {cells, math, loadingAnywhere: text.includes('Loading widget'),
          scrollHeight: (panel.content.node.querySelector('.jp-WindowedPanel-outer') || panel.content.node).scrollHeight};
}"""
    )
    .replace("WIDGET", json.dumps(WIDGET_MIME))
    .replace("PLOTLY", json.dumps(PLOTLY_MIME))
)


# The ipywidgets controls a learner can change. Each is changed once and the notebook's outputs are
# watched until they stop changing (see NotebookPage.measure_control).
CONTROL_SELECTOR = ".widget-slider, .widget-dropdown, .widget-checkbox, .widget-toggle-buttons"

# Lists the controls in page order: kind, label and the value shown.
JS_CONTROLS = (
    "(path) => { const panel = ("
    + _JS_PANEL
    + """)(path);
  const kindOf = (el) => ['slider', 'dropdown', 'checkbox', 'toggle-buttons'].find(k => el.classList.contains('widget-' + k));
  return [...panel.content.node.querySelectorAll(SELECTOR)].map((el) => {
    const kind = kindOf(el);
    // A checkbox keeps its description beside the box, not in its (empty) .widget-label.
    const label = [...el.querySelectorAll('.widget-label, .widget-label-basic'), el]
      .map(n => (n.textContent || '').replace(/\u200b/g, '').trim()).find(t => t) || '';
    let value = '';
    if (kind === 'slider') value = (el.querySelector('.widget-readout') || {}).textContent || '';
    if (kind === 'dropdown') { const s = el.querySelector('select'); value = s ? s.value : ''; }
    if (kind === 'checkbox') { const c = el.querySelector('input[type=checkbox]'); value = c ? String(c.checked) : ''; }
    if (kind === 'toggle-buttons') value = (el.querySelector('button.mod-active') || {}).textContent || '';
    const handle = el.querySelector('.noUi-handle');
    const atMax = !!handle && handle.getAttribute('aria-valuenow') === handle.getAttribute('aria-valuemax');
    return {kind, label, value: String(value).trim(), atMax};
  });
}"""
).replace("SELECTOR", json.dumps(CONTROL_SELECTOR))

# A fingerprint of what the notebook's outputs show, leaving out the controls themselves (a slider's
# readout changes at once): each plotly figure's data and layout, and the text of everything else.
_JS_FINGERPRINT = """(panel) => {
  let h = 2166136261;
  const add = (s) => { for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); } };
  for (const out of panel.content.node.querySelectorAll('.jp-OutputArea-output')) {
    for (const p of out.querySelectorAll('.js-plotly-plot')) add(JSON.stringify([p.data || null, p.layout || null]));
    const walker = document.createTreeWalker(out, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (el && !el.closest(SELECTOR) && !el.closest('.js-plotly-plot')) add(n.data);
    }
  }
  return h >>> 0;
}""".replace("SELECTOR", json.dumps(CONTROL_SELECTOR))

JS_FINGERPRINT = "(path) => (" + _JS_FINGERPRINT + ")((" + _JS_PANEL + ")(path))"

# Waits, in the page, until the outputs differ from `before` and then stay the same for `quiet` ms
# with the kernel idle. Returns ms from the call to the first and to the last change. Gives up when
# nothing changed for `idleMs` with the kernel idle, or at `timeoutMs`.
JS_AWAIT_RESPONSE = (
    "async ([path, before, quiet, idleMs, timeoutMs]) => { const panel = ("
    + _JS_PANEL
    + """)(path);
  const fingerprint = """
    + _JS_FINGERPRINT
    + """;
  const t0 = performance.now();
  let last = before, first = null, lastChange = null, sawBusy = false, idleSince = null;
  // The kernel's status messages on iopub, which also come for a widget's callback (kernel.status
  // does not follow them), and a quick callback can go busy and idle between two polls.
  const kernel0 = panel.sessionContext.session && panel.sessionContext.session.kernel;
  let kstate = 'idle';
  const onStatus = (_, msg) => {
    if (msg.header.msg_type !== 'status') return;
    kstate = msg.content.execution_state;
    if (kstate === 'busy') sawBusy = true;
  };
  if (kernel0) kernel0.iopubMessage.connect(onStatus);
  try { while (true) {
    await new Promise(r => setTimeout(r, 40));
    const now = performance.now();
    const h = fingerprint(panel);
    if (h !== last) { last = h; lastChange = now - t0; if (first === null) first = lastChange; }
    const idle = kstate === 'idle';
    if (!idle) { sawBusy = true; idleSince = null; } else if (idleSince === null) idleSince = now;
    if (lastChange !== null && idle && now - t0 - lastChange >= quiet && now - idleSince >= quiet)
      return {first, last: lastChange, changed: true};
    // Lab may not report busy for a widget's callback: give up `idleMs` after the change either way.
    if (lastChange === null && idle && (sawBusy ? now - idleSince : now - t0) >= idleMs)
      return {first: null, last: null, changed: false, waited: now - t0};
    if (now - t0 > timeoutMs) return {first, last: lastChange, changed: lastChange !== null, timedOut: true, waited: now - t0};
  } } finally { if (kernel0) kernel0.iopubMessage.disconnect(onStatus); }
}"""
)


@dataclass
class NotebookReport:
    """What the page showed after Run All. `problems` is empty when a learner would see no fault."""

    path: str
    times: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    ignored_console: list[str] = field(default_factory=list)
    screenshot: str | None = None

    def summary(self) -> str:
        lines = [f"{self.path}: {self.counts} times={self.times}"]
        lines += [f"  PROBLEM: {p}" for p in self.problems]
        return "\n".join(lines)


# What prose looks like once MathJax has read it as math: the text between two dollars loses its
# spaces, so "$9 is 20 turns that each send 150,000 tokens ... $" shows "9is20turnsthateachsend...".
# Real math in this course ($O(n^2)$, $p_\theta(x_0)$, $\mathrm{softmax}$) matches none of these.
MANGLED_MATH = [
    # "$9 is ...$", "$0.43 to ...$", "$9 per hour and $": an amount, then an English word. A
    # coefficient and its variables ("2d_i", "4Ld n^2", "2a+b") are left alone.
    (
        re.compile(
            r"^\s*\d[\d,.]*:?\s?(?:(?:is|to|per|and|or|the|of|for|at|in|on|row|each|with|from|by)(?![a-z])"
            r"|[a-z]{4,})"
        ),
        "a dollar amount followed by words",
    ),
    (
        re.compile(r"\d{1,3}(?:,\d{3})+\s?[a-z]{3,}"),
        "a number with thousands separators run into words",
    ),
    (re.compile(r"[a-z]{12,}"), "words run together"),
]


# What escapes a dollar in JupyterLab 4 (measured by test_planted_breakage_is_reported): Lab's
# Markdown renderer unescapes \\$ before MathJax reads the cell (jupyterlab/jupyterlab#8645), and an
# HTML entity is decoded before MathJax reads the page, so both are typeset like a bare $.
DOLLAR_ADVICE = (
    "escape each dollar as \\\\$ (two backslashes) in Markdown; in a text/html output wrap "
    "the text in class='mathjax_ignore' or write \\$ (&#36; and one backslash in Markdown do not "
    "protect it; ipywidgets.HTML is not typeset)"
)


def mangled_math(text: str) -> str | None:
    """Why `text`, as rendered by MathJax/KaTeX, looks like prose read as math; None when it
    looks like math."""
    for pattern, why in MANGLED_MATH:
        if pattern.search(text):
            return why
    return None


def analyse(inspection: dict) -> tuple[dict, list[str]]:
    """Counts and problems from JS_INSPECT's result; pure, so it is testable without a browser."""
    problems: list[str] = []
    counts = dict(
        code_cells=0,
        executed=0,
        errors=0,
        widgets_expected=0,
        widgets_rendered=0,
        widgets_closed=0,
        plots_expected=0,
        plots_rendered=0,
    )
    for cell in inspection["cells"]:
        counts["code_cells"] += 1
        where = f"cell {cell['index']} ({cell['source']!r})"
        if cell["executionCount"] is None:
            if cell["source"].strip():
                problems.append(f"{where} did not run")
        else:
            counts["executed"] += 1
        for out in cell["outputs"]:
            if out["type"] == "error":
                counts["errors"] += 1
                problems.append(f"{where} raised {out.get('ename')}: {out.get('evalue')}")
            if not (out.get("isWidget") or out.get("isPlotly")):
                continue
            dom = out.get("dom") or {"found": False}
            kind = (
                "FigureWidget"
                if out.get("isFigureWidget")
                else "widget"
                if out.get("isWidget")
                else "plotly figure"
            )
            n_plots = out.get("nFigureWidgets", 0) if out.get("isWidget") else 1
            counts["plots_expected"] += n_plots
            if out.get("isWidget"):
                counts["widgets_expected"] += 1
            if not dom.get("found"):
                problems.append(f"{where}: {kind} output has no element in the page")
                continue
            if dom["loading"]:
                problems.append(f"{where}: {kind} still says 'Loading widget...'")
                continue
            if dom["widgetError"]:
                problems.append(f"{where}: {kind} failed: {dom['text'][:120]!r}")
                continue
            if n_plots:
                if dom["nPlotsOk"] < n_plots:
                    problems.append(
                        f"{where}: {kind} rendered {dom['nPlotsOk']} of {n_plots} plots "
                        f"({dom['nPlots']} plot "
                        f"elements, height {dom['height']} px, text {dom['text'][:80]!r})"
                    )
                    continue
                for title in dom.get("missingTitles", []):
                    hint = (
                        " (plotly.js reads text between two '$' as LaTeX; write &#36; for a dollar)"
                        if title.count("$") >= 2
                        else ""
                    )
                    problems.append(f"{where}: {kind} does not show its {title!r}{hint}")
                counts["plots_rendered"] += n_plots
                if out.get("isWidget"):
                    counts["widgets_rendered"] += 1
            elif dom["visibleChildren"] == 0:
                if dom["text"].strip():
                    problems.append(f"{where}: widget shows only text {dom['text'][:80]!r}")
                elif dom.get("modelAlive"):
                    problems.append(f"{where}: widget's model is alive but its view shows nothing")
                else:
                    # A closed widget (tqdm with leave=False, widget.close()) leaves an empty
                    # output.
                    counts["widgets_closed"] += 1
            else:
                counts["widgets_rendered"] += 1
    counts["math_typeset"] = len(inspection.get("math", []))
    for item in inspection.get("math", []):
        reason = mangled_math(item["text"])
        if reason:
            where = f"{item['cellType']} cell {item['index']} ({item['source']!r})"
            problems.append(
                f"{where}: MathJax typeset prose as math ({reason}): {item['text'][:80]!r}; "
                f"{DOLLAR_ADVICE}"
            )
    if inspection.get("loadingAnywhere") and not any("Loading widget" in p for p in problems):
        problems.append("'Loading widget...' appears in the notebook")
    return counts, problems


def split_console(messages: list[str]) -> tuple[list[str], list[str]]:
    """(errors that fail the test, errors ignored by CONSOLE_ALLOW with the reason)."""
    bad, ignored = [], []
    for msg in messages:
        reason = next((why for pattern, why in CONSOLE_ALLOW if pattern.search(msg)), None)
        (ignored if reason else bad).append(
            msg if reason is None else f"{msg}  [allowed: {reason}]"
        )
    return bad, ignored


class NotebookPage:
    """One notebook open in its own browser context: open, run all, inspect, interact."""

    def __init__(self, browser, server: LabServer, path: str, *, viewport=(1280, 900)):
        self.server = server
        self.path = path
        self.console: list[str] = []
        self.context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        self.page = self.context.new_page()
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda exc: self.console.append(f"pageerror: {exc}"))
        self.page.on("request", self._on_request)
        self.page.on("requestfailed", self._on_request_failed)

    def _on_request(self, request) -> None:
        host = urllib.parse.urlsplit(request.url).hostname or ""
        if request.url.startswith(("http:", "https:", "ws:", "wss:")) and host != "127.0.0.1":
            self.console.append(
                f"request outside 127.0.0.1 (the course must work offline): {request.url}"
            )

    def _on_request_failed(self, request) -> None:
        failure = request.failure or ""
        # Lab aborts its own long-poll and websocket requests when a page closes or a kernel
        # restarts.
        if "ERR_ABORTED" not in failure:
            self.console.append(f"request failed: {request.url} ({failure})")

    def _on_console(self, msg) -> None:
        if msg.type == "error":
            loc = msg.location or {}
            self.console.append(
                f"console.error: {msg.text} (at {loc.get('url', '?')}:{loc.get('lineNumber', '?')})"
            )

    def close(self) -> None:
        try:
            self.context.close()
        except Exception:  # the browser may already be gone when a test failed hard
            pass

    # -- steps ---------------------------------------------------------------------------------
    def state(self) -> dict:
        return self.page.evaluate(JS_STATE, self.path)

    def wait_for(self, predicate, timeout: float, what: str, poll: float = 0.25) -> dict:
        deadline = time.monotonic() + timeout
        state = {}
        while time.monotonic() < deadline:
            state = self.state()
            if predicate(state):
                return state
            self.page.wait_for_timeout(poll * 1000)
        raise TimeoutError(
            f"{self.path}: {what} not reached in {timeout:.0f} s; last state {state}"
        )

    def open(self, timeout: float = 120) -> None:
        workspace = "t" + secrets.token_hex(4)
        self.page.goto(self.server.lab_url(self.path, workspace), wait_until="domcontentloaded")
        self.wait_for(
            lambda s: s.get("open") and s["ready"] and s["kernel"] == "idle",
            timeout,
            "kernel idle after open",
        )
        self.page.evaluate(
            "() => window.jupyterapp.shell.collapseLeft()"
        )  # the file browser: room for the notebook

    def run_all(self, timeout: float) -> None:
        """Run > Run All Cells, as a learner would, then wait until the kernel is idle and
        nothing is queued."""
        page = self.page
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        seen_busy = {"v": False}
        stable = {"n": 0}

        def done(s: dict) -> bool:
            if s["nQueued"] or s["kernel"] != "idle":
                seen_busy["v"] = True
                stable["n"] = 0
                return False
            if not (seen_busy["v"] or s["nExecuted"] or s["nCode"] == s["nEmptySource"]):
                return False
            stable["n"] += 1
            return stable["n"] >= 4  # idle for four polls in a row (1 s): no late queued cell

        self.wait_for(done, timeout, "Run All finished")

    def inspect(self) -> dict:
        return self.page.evaluate(JS_INSPECT, self.path)

    def fit_viewport(self, max_height: int = 12000) -> None:
        """Make the viewport as tall as the notebook, so one screenshot shows all of it."""
        height = self.page.evaluate(
            "(path) => { const p = (" + _JS_PANEL + ")(path);"
            " const s = p.content.node.querySelector('.jp-WindowedPanel-outer') || p.content.node;"
            " return s.scrollHeight + (window.innerHeight - s.clientHeight); }",
            self.path,
        )
        width = self.page.viewport_size["width"]
        self.page.set_viewport_size(
            {"width": width, "height": int(min(max(height + 40, 600), max_height))}
        )
        self.page.wait_for_timeout(1500)  # plotly relayouts on resize

    def screenshot(self, dest: Path) -> str:
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.page.evaluate(
            "(path) => { const p = (" + _JS_PANEL + ")(path);"
            " const s = p.content.node.querySelector('.jp-WindowedPanel-outer'); if (s) "
            "s.scrollTop = 0; }",
            self.path,
        )
        self.page.wait_for_timeout(300)
        self.page.screenshot(path=str(dest))
        return str(dest)

    def run_and_check(self, timeout: float, screenshot: Path | None = None) -> NotebookReport:
        report = NotebookReport(self.path)
        t0 = time.monotonic()
        try:
            self.open()
            t1 = time.monotonic()
            self.run_all(timeout)
            t2 = time.monotonic()
        except Exception:
            if screenshot is not None:  # what the page showed when it got stuck
                try:
                    self.page.screenshot(path=str(screenshot))
                except Exception:
                    pass
            raise
        self.fit_viewport()
        inspection = self.inspect()
        report.counts, report.problems = analyse(inspection)
        if screenshot is not None:
            report.screenshot = self.screenshot(screenshot)
        self.page.wait_for_timeout(500)  # late console errors from rendering
        bad, ignored = split_console(self.console)
        report.console_errors, report.ignored_console = bad, ignored
        report.problems += [f"browser console: {m}" for m in bad]
        report.times = {
            "open_s": round(t1 - t0, 1),
            "run_all_s": round(t2 - t1, 1),
            "total_s": round(time.monotonic() - t0, 1),
        }
        return report

    def kernel_eval(self, code: str, timeout: float = 30) -> str:
        """Run `code` in the notebook's kernel (not shown in the notebook); return what it
        printed."""
        return self.page.evaluate(
            "async ([path, code, ms]) => { const p = (" + _JS_PANEL + ")(path);"
            " const future = p.sessionContext.session.kernel.requestExecute({code, store_history: "
            "false});"
            " let text = '';"
            " future.onIOPub = (msg) => { const c = msg.content;"
            "   if (msg.header.msg_type === 'stream') text += c.text;"
            "   if (msg.header.msg_type === 'error') text += c.ename + ': ' + c.evalue; };"
            " await Promise.race([future.done, new Promise(r => setTimeout(r, ms))]);"
            " return text; }",
            [self.path, code, int(timeout * 1000)],
        )

    def kernel_figures(self) -> str:
        """Fingerprints of the FigureWidgets in the kernel's globals: did a callback update the
        Python side?"""
        return self.kernel_eval(
            "import hashlib as _h, json as _j\n"
            "from plotly.basewidget import BaseFigureWidget as _B\n"
            "print(_j.dumps({_n: "
            "_h.sha1(repr(_v.to_plotly_json()['data']).encode()).hexdigest()[:10]"
            " for _n, _v in list(globals().items()) if isinstance(_v, _B)}))"
        ).strip()

    # -- interactions ------------------------------------------------------------------------
    def controls(self) -> list[dict]:
        """The ipywidgets controls in the notebook, in page order: kind, label, value, atMax."""
        return self.page.evaluate(JS_CONTROLS, self.path)

    def change_control(self, index: int, control: dict) -> None:
        """Change one control by one step, as a learner would: a key press, a pick, a click."""
        el = self.page.locator(CONTROL_SELECTOR).nth(index)
        el.scroll_into_view_if_needed()
        kind = control["kind"]
        if kind == "slider":
            handle = el.locator(".noUi-handle").first
            handle.focus()
            handle.press("ArrowLeft" if control["atMax"] else "ArrowRight")
        elif kind == "dropdown":
            select = el.locator("select").first
            n = select.locator("option").count()
            current = select.evaluate("s => s.selectedIndex")
            select.select_option(index=(current + 1) % n)
        elif kind == "checkbox":
            el.locator("input[type=checkbox]").first.click()
        elif kind == "toggle-buttons":
            el.locator("button:not(.mod-active)").first.click()
        else:
            raise ValueError(f"unknown control kind {kind!r}")

    def measure_control(
        self,
        index: int,
        control: dict,
        *,
        quiet: float = 1.0,
        idle: float = 8.0,
        timeout: float = 30.0,
    ) -> dict:
        """Change control `index` and time the outputs' response.

        Returns the control's label and kind, its value before and after, `first_s` (the first
        visible change), `response_s` (the last change before the outputs settled: the figure fully
        redrawn) and `changed` (False when the callback ran and nothing visible changed).
        """
        before = self.page.evaluate(JS_FINGERPRINT, self.path)
        self.change_control(index, control)
        result = self.page.evaluate(
            JS_AWAIT_RESPONSE,
            [self.path, before, int(quiet * 1000), int(idle * 1000), int(timeout * 1000)],
        )
        after = self.controls()
        value_after = after[index]["value"] if index < len(after) else None

        def sec(ms):
            return None if ms is None else round(ms / 1000, 2)

        return {
            "label": control["label"],
            "kind": control["kind"],
            "before": control["value"],
            "after": value_after,
            "first_s": sec(result.get("first")),
            "response_s": sec(result.get("last")),
            "changed": bool(result.get("changed")),
            "timed_out": bool(result.get("timedOut")),
        }

    def animation_step(self, plot_index: int) -> dict:
        """The step a plotly animation shows: the slider's active index and its current-value
        label."""
        return self.page.evaluate(
            """(i) => { const p = document.querySelectorAll('.js-plotly-plot')[i];
                 const s = (p._fullLayout.sliders || [])[0];
                 // plotly.js draws the current value as the slider group's own text; tick labels sit deeper.
                 const label = p.querySelector('g.slider-group > text.slider-label');
                 return {active: s ? s.active : null, label: label ? label.textContent : null}; }""",
            plot_index,
        )

    def figure_screenshot(self, plot_index: int, dest: Path) -> str:
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.page.locator(".js-plotly-plot").nth(plot_index).screenshot(path=str(dest))
        return str(dest)

    def play_buttons(self) -> list[int]:
        """Indices of plotly figures that carry an animation play button."""
        return self.page.evaluate(
            """() => [...document.querySelectorAll('.js-plotly-plot')].map((p, i) =>
                 [...p.querySelectorAll('.updatemenu-button')].some(b => /play|▶/i.test(b.textContent)) ? i : -1
               ).filter(i => i >= 0)"""
        )

    def press_play(self, plot_index: int) -> None:
        plot = self.page.locator(".js-plotly-plot").nth(plot_index)
        plot.scroll_into_view_if_needed()
        button = (
            plot.locator(".updatemenu-button").filter(has_text=re.compile(r"play|▶", re.I)).first
        )
        button.click()
