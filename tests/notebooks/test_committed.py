"""The notebooks are committed executed and clean, as ``notebooks/execute.py`` writes them.

GitHub, nbviewer, the documentation site and a freshly opened JupyterLab show the
committed outputs, so they must be those of a whole run, in order, without errors or
stderr, with the widgets' state in the metadata (no "model not found"), and with nothing
of the machine that ran them: no absolute paths, no keys, no memory addresses. Ids,
times and loopback addresses are what the tutorials show and change with every run;
they are allowed. After changing a notebook: ``python notebooks/execute.py``.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
REGENERATE = "python notebooks/execute.py"

# absolute paths of a machine (POSIX homes, temp and work folders; Windows drives)
_PATH = re.compile(
    r"(?<![\w.:/])(?:/(?:tmp|home|root|Users|work|var/folders|private|mnt|opt|srv)/[\w.~-]"
    r"|[A-Za-z]:\\\\?[\w~-])"
)
# a thread key or an identity's private key as text: multibase base32 of 64+ bytes
# (public keys, peer ids, thread ids and CIDs are shorter)
_KEY = re.compile(r"\bb[a-z2-7]{95,}\b")
_MEMORY = re.compile(r" at 0x[0-9a-fA-F]{6,}")


def _texts(output: dict[str, Any]) -> list[str]:
    """Every text an output shows (pictures left out)."""
    if output.get("output_type") == "stream":
        return [output.get("text", "")]
    if output.get("output_type") == "error":
        return ["\n".join(output.get("traceback", []))]
    data = output.get("data", {})
    return [str(v) for k, v in data.items() if not k.startswith("image/")]


def problems(notebook: nbformat.NotebookNode) -> list[str]:
    """What keeps ``notebook`` from being committed: an empty list when it is clean."""
    found: list[str] = []
    try:
        nbformat.validate(notebook)
    except nbformat.ValidationError as exc:
        found.append(f"not a valid notebook: {exc.message}")
    code = [c for c in notebook.cells if c.cell_type == "code"]
    counts = [c.get("execution_count") for c in code]
    if counts != list(range(1, len(code) + 1)):
        found.append(f"not executed top to bottom in one run: execution counts {counts}")
    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    forbidden = [str(ROOT), str(Path.home()), tempfile.gettempdir(), sys.prefix]
    # the saved widgets' state is shown too (JupyterLab, the site): the same rules hold
    for model_id, model in state.items():
        shown = json.dumps(model.get("state", {}))
        for pattern, what in ((_PATH, "a path"), (_KEY, "a key"), (_MEMORY, "an id()")):
            hit = pattern.search(shown)
            if hit:
                found.append(f"widget {model_id}: shows {what} of this run: {hit.group(0)!r}")
    for number, cell in enumerate(code, 1):
        where = f"cell {number} ({cell.source.strip().splitlines()[0][:50]!r})"
        if "execution" in cell.get("metadata", {}):
            found.append(f"{where}: keeps its run's timings in its metadata")
        if "time.sleep" in cell.source:
            found.append(f"{where}: waits with time.sleep (db.sync(timeout=...) waits for peers)")
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "error":
                found.append(f"{where}: shows an error: {output.get('ename')}")
            if kind == "stream" and output.get("name") == "stderr":
                found.append(f"{where}: writes to stderr: {output.get('text', '')[:200]!r}")
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is not None and view.get("model_id") not in state:
                found.append(f"{where}: a widget whose state is not saved (model not found)")
            for text in _texts(output):
                for pattern, what in ((_PATH, "a path"), (_KEY, "a key"), (_MEMORY, "an id()")):
                    hit = pattern.search(text)
                    if hit:
                        found.append(f"{where}: shows {what} of this run: {hit.group(0)!r}")
                for path in forbidden:
                    if path and len(path) > 1 and path in text:
                        found.append(f"{where}: shows a path of this machine: {path!r}")
                if "Traceback" in text or "Error displaying widget" in text:
                    found.append(f"{where}: shows a traceback or a broken widget")
        if "plot_dag(" in cell.source and not any(
            "image/png" in o.get("data", {}) for o in cell.get("outputs", [])
        ):
            found.append(f"{where}: the DAG cell has no picture")
        if "tk.widgets." in cell.source and not any(
            "text/html" in o.get("data", {}) for o in cell.get("outputs", [])
        ):
            found.append(f"{where}: the widget has no static HTML (GitHub shows nothing)")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_is_executed_and_clean(path: Path) -> None:
    found = problems(nbformat.read(path, as_version=4))
    assert not found, f"{path.name} ({REGENERATE} regenerates it):\n" + "\n".join(found)


def test_the_check_sees_what_it_must() -> None:
    """An unexecuted notebook, and one that leaks stderr, paths, keys and a lost widget."""
    fresh = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    assert any("execution counts [None]" in p for p in problems(fresh))
    leaky = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "import time; time.sleep(1)",
                execution_count=1,
                outputs=[
                    nbformat.v4.new_output("stream", name="stderr", text="warning\n"),
                    nbformat.v4.new_output(
                        "execute_result",
                        data={"text/plain": f"'{tempfile.gettempdir()}/tmpabc/repo'"},
                        execution_count=1,
                    ),
                    nbformat.v4.new_output(
                        "display_data",
                        data={
                            "text/plain": "b" + "q" * 103 + " <object at 0x7f3a2b1c9d00>",
                            WIDGET_VIEW: {"model_id": "m1", "version_major": 2, "version_minor": 0},
                        },
                    ),
                ],
            ),
            nbformat.v4.new_code_cell("db.plot_dag()", execution_count=3),
        ],
        metadata={
            "widgets": {
                WIDGET_STATE: {"state": {"m2": {"state": {"value": "<td>/home/someone/repo</td>"}}}}
            }
        },
    )
    found = "\n".join(problems(leaky))
    for expected in (
        "execution counts [1, 3]",
        "time.sleep",
        "writes to stderr",
        "shows a path",
        "shows a key",
        "shows an id()",
        "model not found",
        "the DAG cell has no picture",
        "widget m2: shows a path",
    ):
        assert expected in found, f"{expected!r} not reported:\n{found}"
