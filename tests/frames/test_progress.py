"""Bulk writes report progress through tqdm (rate and ETA), or a callback, or not at all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import threadkit as tk
from threadkit.frames import progress


@pytest.fixture
def db() -> Iterator[tk.Database]:
    with tk.Peer(memory=True) as peer:
        yield peer.new_db("progress")


def test_a_forced_bar_is_tqdms_with_rate_and_eta(
    db: tk.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = tk.datasets.synthetic(30)
    db.from_pandas("People", frame, chunk_size=10, progress=True)
    err = capsys.readouterr().err
    assert "writing: 100%" in err and "30.0/30.0" in err
    assert "rows/s]" in err and "<00:00" in err  # tqdm's rate and remaining time


def test_no_bar_when_none_can_show(db: tk.Database, capsys: pytest.CaptureFixture[str]) -> None:
    frame = tk.datasets.synthetic(30)
    db.from_pandas("Quiet", frame, chunk_size=10, progress=False)
    report = progress.reporter(None, progress.AUTO_ROWS)  # stderr is not a terminal here
    report(progress.AUTO_ROWS)
    report.close()
    assert capsys.readouterr().err == ""


def test_a_bar_counts_rows_to_the_total() -> None:
    report = progress.reporter(True, 50)
    assert isinstance(report, progress._Bar)
    report(20)
    report(50)
    assert report.bar.n == 50 and report.bar.total == 50
    report.close()
