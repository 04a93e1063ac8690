"""The documentation site builds with one command, ``mkdocs build``, in strict mode.

The build runs on a copy of ``mkdocs.yml``, ``docs/`` and the notebooks (it keeps a cache
in its working directory): the tutorials come out with their committed outputs (the
notebooks are committed executed, see ``notebooks/execute.py``), the API reference from
the docstrings, and a broken link fails the build.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_MISSING = [
    name
    for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers", "mkdocs_jupyter")
    if importlib.util.find_spec(name) is None
]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(_MISSING), reason=f"not installed: {', '.join(_MISSING)} (pip install -e '.[test]')"
    ),
]


def _copy(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", symlinks=False)  # notebooks, benchmarks
    (tmp_path / "threadkit").symlink_to(ROOT / "threadkit")
    return tmp_path


def _build(root: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "NO_MKDOCS_2_WARNING": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(root / "site")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_site_builds_with_tutorials_and_reference(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    result = _build(root)
    assert result.returncode == 0, result.stdout + result.stderr[-6000:]
    site = root / "site"
    quickstart = (site / "notebooks" / "01-quickstart" / "index.html").read_text()
    assert "Potassium (kalium)" in quickstart  # an output of the executed notebook
    dag = (site / "notebooks" / "03-how-the-event-log-works" / "index.html").read_text()
    assert "data:image/png;base64" in dag  # the DAG picture
    reference = (site / "reference" / "index.html").read_text()
    assert "plot_dag" in reference and "members" in reference and "ListenFeed" in reference
    for page in ("design", "wire-contract", "networking", "benchmarks"):
        assert (site / page / "index.html").is_file(), page


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    # the notebooks are not what this test is about: leave them out of the copy
    shutil.rmtree(root / "docs" / "notebooks")
    config = (root / "mkdocs.yml").read_text()
    config = "\n".join(
        line for line in config.splitlines() if "notebooks/" not in line and "Tutorials" not in line
    )
    (root / "mkdocs.yml").write_text(config)
    page = root / "docs" / "design.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    result = _build(root)
    assert result.returncode != 0
    assert "no-such-page.md" in result.stdout + result.stderr
