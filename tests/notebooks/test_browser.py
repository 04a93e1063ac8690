"""The notebooks as a person sees them: JupyterLab in headless Chromium, Run All, save, reopen.

JupyterLab serves a copy of notebooks/ on 127.0.0.1; Chromium (the system package, driven
by its chromedriver through selenium) opens each notebook and runs it with Run All. The
assertions are about the page: no cell shows stderr or an error, no widget says
"Error displaying widget", the DAG cell shows an image, the live widgets' views show
their tables and update while the notebook runs (notebook 02's feed and live table show
the notes another process writes), and after saving and reopening (a new kernel, no
widget models) each widget's output is its static HTML, as it last looked.

A second JupyterLab serves the committed notebooks as they are: opened without running
them, they show their outputs and widgets (no "model not found"); a widget saved while
live comes back from the widget state in the notebook's metadata.

Screenshots of every notebook after Run All, after reopening and as committed are saved under
``tests/output/browser/`` for failure reports. Without chromium, chromedriver, selenium or
jupyterlab the tests skip, saying which is missing (``.ci/run`` installs them).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import nbformat.sign
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
OUTPUT = ROOT / "tests" / "output" / "browser"

# What the live widgets of each notebook show at the end (and in the saved notebook).
WIDGET_TEXT = {
    "01-quickstart": "kalium",
    "02-two-peers": "hello from the other process",
    "03-how-the-event-log-works": "first light",
}
# Texts that one widget's live view (not its static copy) must have shown together while
# the notebook ran: in notebook 02 another process writes notes, which its ListenFeed
# ("… events") and its LiveTable ("Notes — N documents") show as they arrive.
LIVE_TEXT = {
    "02-two-peers": [
        ("events", "hello from the other process"),
        ("Notes — ", "documents", "hello from the other process"),
    ]
}

CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,2400",
]


def _missing() -> str | None:
    for module in ("selenium", "jupyterlab"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[test]')"
    if _chromium() is None:
        return "chromium is not installed (apt-get install chromium chromium-driver)"
    if shutil.which("chromedriver") is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Lab:
    """A JupyterLab server on 127.0.0.1 serving ``root``, stopped by :meth:`stop`."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        settings = home / "settings"
        tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
        tracker.parent.mkdir(parents=True)
        # every cell in the DOM, so the page can be read without scrolling
        tracker.write_text(json.dumps({"windowingMode": "none"}))
        news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        news.parent.mkdir(parents=True)
        news.write_text(json.dumps({"fetchNews": "false"}))
        env = {
            **os.environ,
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "IPYTHONDIR": str(home / "ipython"),
            # its own notebook signatures (which notebooks are trusted)
            "JUPYTER_DATA_DIR": str(home / "data"),
        }
        self.log = (home / "lab.log").open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--ip=127.0.0.1",
                f"--port={self.port}",
                "--port-retries=0",
                f"--ServerApp.root_dir={root}",
                f"--IdentityProvider.token={self.token}",
                f"--LabApp.user_settings_dir={settings}",
                f"--LabApp.workspaces_dir={home / 'workspaces'}",
                "--LabApp.expose_app_in_browser=True",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                # CI runs as root; the server only listens on 127.0.0.1 with a token
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            cwd=root,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        "JupyterLab did not start: " + (home / "lab.log").read_text()[-3000:]
                    ) from None
                time.sleep(0.3)

    def stop(self) -> None:
        """Stop the server and its kernels."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


# A notebook showing what the checks must catch: stderr and a widget whose model is gone.
_BAD = nbformat.v4.new_notebook(
    cells=[
        nbformat.v4.new_code_cell("import sys\nprint('something went wrong', file=sys.stderr)"),
        nbformat.v4.new_code_cell(
            "from IPython.display import display\n"
            "display({'application/vnd.jupyter.widget-view+json': "
            "{'model_id': 'gone', 'version_major': 2, 'version_minor': 0}}, raw=True)"
        ),
    ],
    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("lab-root")
    for path in NOTEBOOKS:
        shutil.copy(path, root / path.name)
    nbformat.write(_BAD, root / "zz-bad.ipynb")
    server = Lab(root, tmp_path_factory.mktemp("lab-home"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(_chromium())
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.set_script_timeout(60)
    try:
        driver.get(f"{lab.url}/lab?token={lab.token}")
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, script: str, timeout: float, what: str, *args: Any) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script, *args)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


# The notebook opened last (headless Chromium has no focus, so no "current" widget).
_PANEL = (
    "const w = window.jupyterapp && Array.from(window.jupyterapp.shell.widgets('main'))"
    ".find(x => x.context && x.context.path === window.__tkName);"
)

_KERNEL_IDLE = (
    _PANEL + "return !!(w && w.content && w.sessionContext && w.sessionContext.session"
    " && w.sessionContext.session.kernel"
    " && w.sessionContext.session.kernel.status === 'idle' && w.content.widgets.length > 0);"
)

# Records every text a widget's live view shows (views are replaced when updates stop).
_WATCH = """
window.__tkSeen = [];
const note = () => document.querySelectorAll('.widget-html-content').forEach(n => {
    const text = n.innerText;
    if (text && !window.__tkSeen.includes(text)) window.__tkSeen.push(text);
});
new MutationObserver(note).observe(
    document.body, {subtree: true, childList: true, characterData: true});
"""

_DONE = (
    _PANEL + "const cells = w.content.widgets.filter(c => c.model.type === 'code');"
    " const done = cells.every(c => c.model.executionCount !== null"
    "   && !(c.promptNode && c.promptNode.textContent.includes('*')));"
    " return done && w.sessionContext.session.kernel.status === 'idle';"
)

# What the page shows, cell by cell.
_READ = (
    _PANEL + "return w.content.widgets.filter(c => c.model.type === 'code').map(c => ({"
    " source: c.model.sharedModel.getSource(),"
    " text: c.outputArea ? c.outputArea.node.innerText : '',"
    " images: c.node.querySelectorAll('.jp-OutputArea-output img').length,"
    " stderr: Array.from(c.node.querySelectorAll("
    "   '[data-mime-type=\"application/vnd.jupyter.stderr\"]')).map(n => n.innerText),"
    " widgets: c.node.querySelectorAll('.widget-html-content').length,"
    " tables: c.node.querySelectorAll('.jp-OutputArea-output table').length}));"
)


def _open(driver: Any, lab: Lab, name: str) -> None:
    driver.get(f"{lab.url}/lab/tree/{name}?reset")
    _wait(driver, "return !!window.jupyterapp;", 60, "JupyterLab to load")
    driver.execute_script("window.__tkName = arguments[0];", name)
    _wait(driver, _KERNEL_IDLE, 90, f"{name} to open with an idle kernel")


def _command(driver: Any, command: str) -> None:
    """Run a JupyterLab command (a menu entry) on the notebook, as its menu would."""
    driver.execute_script(
        _PANEL + "window.jupyterapp.shell.activateById(w.id);"
        " return window.jupyterapp.commands.execute(arguments[0]);",
        command,
    )


def _screenshot(driver: Any, name: str) -> Path:
    """The window, and each cell that shows a widget or a picture, as PNGs under OUTPUT."""
    from selenium.webdriver.common.by import By

    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    driver.save_screenshot(str(path))
    for old in OUTPUT.glob(f"{name}-cell*.png"):
        old.unlink()
    cells = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell")
    for number, cell in enumerate(cells, 1):
        shows = cell.find_elements(By.CSS_SELECTOR, ".tk-live, .widget-html-content, img")
        if shows or "Error displaying" in cell.text:
            with contextlib.suppress(Exception):  # a cell re-rendered meanwhile
                cell.screenshot(str(OUTPUT / f"{name}-cell{number:02d}.png"))
    return path


def _check_page(cells: list[dict[str, Any]], page: str, stem: str, shot: Path) -> None:
    where = f"{stem} (screenshot: {shot})"
    assert "Error displaying widget" not in page, f"{where}: a widget did not render"
    assert "Traceback" not in page, f"{where}: a cell shows a traceback"
    for cell in cells:
        assert not cell["stderr"], f"{where}: {cell['source'][:60]!r} wrote {cell['stderr']}"
        if "plot_dag(" in cell["source"]:
            assert cell["images"] >= 1, f"{where}: the DAG cell shows no picture: {cell['text']!r}"
        if "tk.widgets." in cell["source"] or cell["source"].strip() in ("live", "feed"):
            assert cell["tables"] >= 1, f"{where}: the widget cell shows no table: {cell['text']!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_run_all_save_and_reopen(browser: Any, lab: Lab, path: Path) -> None:
    name, stem = path.name, path.stem
    _open(browser, lab, name)
    browser.execute_script(_WATCH)
    _command(browser, "notebook:run-all-cells")
    try:
        _wait(browser, _DONE, 240, f"Run All of {name} to finish")
        # live widgets become their static HTML once the notebook closes its peer
        with contextlib.suppress(AssertionError):
            _wait(browser, "return !document.querySelector('.widget-html-content');", 10, "")
    finally:
        shot = _screenshot(browser, f"{stem}-run-all")
    cells = browser.execute_script(_READ)
    page = browser.execute_script("return document.body.innerText;")
    _check_page(cells, page, stem, shot)
    expected = WIDGET_TEXT.get(stem)
    if expected:
        assert expected in page, f"{stem}: the widgets do not show {expected!r} ({shot})"
    seen = browser.execute_script("return window.__tkSeen;")
    if "tk.widgets." in "".join(c["source"] for c in cells):
        assert seen, f"{stem}: no widget view ever rendered ({shot})"
    for texts in LIVE_TEXT.get(stem, []):
        assert any(all(t in text for t in texts) for text in seen), (
            f"{stem}: no live widget view showed {texts} while the notebook ran: {seen}"
        )

    browser.execute_script(_PANEL + "return w.context.save();")
    _wait(browser, _PANEL + "return !w.context.model.dirty;", 30, f"{name} to be saved")
    saved = nbformat.read(lab.root / name, as_version=4)
    for cell in saved.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "tk.widgets." in cell.source:
                assert "text/html" in data, f"{stem}: a saved widget output has no static HTML"
    browser.execute_script(_PANEL + "return w.sessionContext.shutdown().then(() => w.dispose());")

    _open(browser, lab, name)
    try:
        _wait(
            browser,
            _PANEL + "return w.content.widgets.every(c => c.model.type !== 'code'"
            " || c.model.outputs.length === 0 || c.outputArea.node.innerText.length > 0"
            " || c.node.querySelector('img'));",
            30,
            f"{name}'s saved outputs to show",
        )
        time.sleep(1)  # the widget manager reports missing models once it has restored
    finally:
        shot = _screenshot(browser, f"{stem}-reopened")
    cells = browser.execute_script(_READ)
    page = browser.execute_script("return document.body.innerText;")
    _check_page(cells, page, stem, shot)
    if expected:
        assert expected in page, f"{stem}: the reopened notebook does not show {expected!r}"
    browser.execute_script(_PANEL + "return w.sessionContext.shutdown().then(() => w.dispose());")


def test_the_checks_see_stderr_and_broken_widgets(browser: Any, lab: Lab) -> None:
    """The page checks are not blind: a cell writing to stderr and a widget whose model
    is missing are both reported."""
    _open(browser, lab, "zz-bad.ipynb")
    _command(browser, "notebook:run-all-cells")
    _wait(browser, _DONE, 60, "Run All of zz-bad.ipynb to finish")
    _wait(
        browser,
        "return document.body.innerText.includes('Error displaying widget');",
        20,
        "the missing widget model to be reported",
    )
    shot = _screenshot(browser, "zz-bad-run-all")
    cells = browser.execute_script(_READ)
    page = browser.execute_script("return document.body.innerText;")
    assert [text.strip() for text in cells[0]["stderr"]] == ["something went wrong"]
    with pytest.raises(AssertionError, match="wrote"):
        _check_page(cells, page.replace("Error displaying widget", ""), "zz-bad", shot)
    with pytest.raises(AssertionError, match="did not render"):
        _check_page(cells, page, "zz-bad", shot)
    browser.execute_script(_PANEL + "return w.sessionContext.shutdown().then(() => w.dispose());")


# A notebook saved while its widget was live (its peer still open): the output is the
# widget's view with its static HTML beside it. JupyterLab renders a widget view only in
# a trusted notebook (one its user ran and saved): there it needs the widget's model,
# which a fresh JupyterLab can only have from the notebook's metadata, where
# notebooks/execute.py (nbclient's store_widget_state) puts it. An untrusted notebook
# (cloned, downloaded) shows the static HTML.
_SAVED_LIVE = nbformat.v4.new_notebook(
    cells=[
        nbformat.v4.new_code_cell(
            "import threadkit as tk\n"
            "peer = tk.Peer(memory=True)\n"
            "things = peer.new_db('saved').new_collection('Things')\n"
            "things.create({'name': 'still shown after reopening'})\n"
            "tk.widgets.LiveTable(things)"
        )
    ],
    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
)
_SAVED_TEXT = "still shown after reopening"


def _execute_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("tk_execute", ROOT / "notebooks" / "execute.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fresh_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A new JupyterLab serving the committed notebooks as they are (no kernel ran them)."""
    root = tmp_path_factory.mktemp("fresh-root")
    for path in NOTEBOOKS:
        shutil.copy(path, root / path.name)
    source = root / "zz-saved-live.ipynb"
    nbformat.write(_SAVED_LIVE, source)
    saved = _execute_module().execute(source)
    nbformat.write(saved, source)
    home = tmp_path_factory.mktemp("fresh-home")
    (home / "data").mkdir()
    notary = nbformat.sign.NotebookNotary(data_dir=str(home / "data"))
    notary.sign(saved)
    nbformat.write(saved, root / "zz-saved-live-trusted.ipynb")
    saved.metadata.pop("widgets", None)
    notary.sign(saved)
    nbformat.write(saved, root / "zz-saved-live-trusted-no-state.ipynb")
    server = Lab(root, home)
    try:
        yield server
    finally:
        server.stop()


def _open_fresh(driver: Any, lab: Lab, name: str, shot: str) -> tuple[list[dict[str, Any]], str]:
    """Open ``name`` without running it, wait for its saved outputs, screenshot, read."""
    driver.get(f"{lab.url}/lab?token={lab.token}")
    _open(driver, lab, name)
    try:
        _wait(
            driver,
            _PANEL + "return w.content.widgets.every(c => c.model.type !== 'code'"
            " || c.model.outputs.length === 0 || c.outputArea.node.innerText.length > 0"
            " || c.node.querySelector('img'));",
            30,
            f"{name}'s saved outputs to show",
        )
        time.sleep(1)  # the widget manager reports missing models once it has restored
    finally:
        _screenshot(driver, shot)
    return driver.execute_script(_READ), driver.execute_script("return document.body.innerText;")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_opens_with_its_outputs(
    browser: Any, fresh_lab: Lab, path: Path
) -> None:
    """As someone who clones the repository and opens a notebook sees it, before running it."""
    cells, page = _open_fresh(browser, fresh_lab, path.name, f"{path.stem}-committed")
    _check_page(cells, page, path.stem, OUTPUT / f"{path.stem}-committed.png")
    assert "model not found" not in page
    assert any(c["text"].strip() or c["images"] for c in cells), (
        f"{path.stem}: the committed notebook shows no outputs"
    )
    expected = WIDGET_TEXT.get(path.stem)
    if expected:
        assert expected in page, f"{path.stem}: the saved widgets do not show {expected!r}"
    browser.execute_script(_PANEL + "return w.sessionContext.shutdown().then(() => w.dispose());")


def test_a_widget_saved_live_comes_back_from_the_saved_state(browser: Any, fresh_lab: Lab) -> None:
    """A notebook saved while its widget was live shows the widget's last state: untrusted,
    as its static HTML; trusted, as the widget itself, from the state in the metadata —
    without that state JupyterLab would say "model not found"."""
    cells, page = _open_fresh(browser, fresh_lab, "zz-saved-live.ipynb", "zz-saved-live")
    assert "Error displaying widget" not in page and "model not found" not in page
    assert cells[0]["tables"] == 1 and _SAVED_TEXT in cells[0]["text"]
    browser.execute_script(_PANEL + "return w.sessionContext.shutdown().then(() => w.dispose());")

    name = "zz-saved-live-trusted.ipynb"
    cells, page = _open_fresh(browser, fresh_lab, name, "zz-saved-live-trusted")
    assert "Error displaying widget" not in page and "model not found" not in page
    assert cells[0]["widgets"] == 1, "the saved widget did not render as a widget"
    assert _SAVED_TEXT in cells[0]["text"]
    browser.execute_script(_PANEL + "return w.sessionContext.shutdown().then(() => w.dispose());")

    name = "zz-saved-live-trusted-no-state.ipynb"
    _open_fresh(browser, fresh_lab, name, "zz-saved-live-trusted-no-state")
    _wait(
        browser,
        "return document.body.innerText.includes('Error displaying widget');",
        20,
        "the widget without saved state to be reported missing",
    )
    browser.execute_script(_PANEL + "return w.sessionContext.shutdown().then(() => w.dispose());")
