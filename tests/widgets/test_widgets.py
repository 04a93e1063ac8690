"""Live widgets update from their background threads and stop when closed."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterator

import pytest

import threadkit as tk
from threadkit.widgets.feed import ListenFeed
from threadkit.widgets.status import PeerStatus
from threadkit.widgets.table import LiveTable


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def peer() -> Iterator[tk.Peer]:
    with tk.Peer(memory=True) as peer:
        yield peer


def test_listen_feed_shows_local_events_and_stops(peer: tk.Peer) -> None:
    db = peer.new_db("w")
    people = db.new_collection("People")
    feed = ListenFeed(db, throttle=0.01)
    people.create({"name": "Ada <script>"})
    assert wait_for(lambda: "Ada &lt;script&gt;" in feed.widget.value)
    assert feed.count == 1 and "create" in feed.widget.value
    feed.close()
    assert not feed.running
    people.create({"name": "Bob"})
    time.sleep(0.2)
    assert "Bob" not in feed.widget.value


def test_listen_feed_filters_by_collection(peer: tk.Peer) -> None:
    db = peer.new_db("w")
    db.new_collection("A").create({"k": "in-a"})
    db.new_collection("B")
    with ListenFeed(db, collection="B", throttle=0.01) as feed:
        db["A"].create({"k": "second-a"})
        db["B"].create({"k": "in-b"})
        assert wait_for(lambda: "in-b" in feed.widget.value)
        assert "second-a" not in feed.widget.value


def test_live_table_rerenders_on_change(peer: tk.Peer) -> None:
    people = peer.new_db("w").new_collection("People")
    people.create({"name": "Ada", "age": 36})
    with LiveTable(people, query=tk.where("age").gt(30), throttle=0.01) as table:
        assert "Ada" in table.widget.value
        first = table.renders
        people.create({"name": "Grace", "age": 85}, {"name": "Kid", "age": 3})
        assert wait_for(lambda: "Grace" in table.widget.value)
        assert table.renders > first
        assert "Kid" not in table.widget.value


def test_live_table_with_an_expression(peer: tk.Peer) -> None:
    people = peer.new_db("w").new_collection("People")
    people.create({"name": "Ada", "age": 36}, {"name": "Kid", "age": 3})
    with LiveTable(people, query="age > 30") as table:
        assert "Ada" in table.widget.value and "Kid" not in table.widget.value


def test_live_table_shows_errors_instead_of_dying(peer: tk.Peer) -> None:
    people = peer.new_db("w").new_collection("People")
    with LiveTable(people, query="age >", throttle=0.01) as table:
        assert table.error is not None and "InvalidQuery" in table.widget.value
        assert table.running


def test_peer_status_refreshes(peer: tk.Peer) -> None:
    peer.new_db("status-db")
    with PeerStatus(peer, every=0.05) as status:
        assert peer.id in status.widget.value and "status-db" in status.widget.value
        before = status.renders
        assert wait_for(lambda: status.renders > before + 1)


def test_widgets_are_reachable_from_the_package() -> None:
    assert tk.widgets.LiveTable is LiveTable
    assert tk.widgets.ListenFeed is ListenFeed
    assert tk.widgets.PeerStatus is PeerStatus


def test_closing_the_peer_stops_the_threads_and_keeps_the_views() -> None:
    """Run All ends with ``peer.close()``: the widgets stop updating but stay displayed,
    showing their last state and why they stopped."""
    peer = tk.Peer(memory=True)
    db = peer.new_db("w")
    people = db.new_collection("People")
    people.create({"name": "Ada", "age": 36})
    table = LiveTable(people, throttle=0.01)
    feed = ListenFeed(db, throttle=0.01)
    status = PeerStatus(peer, every=0.05)
    people.create({"name": "Grace", "age": 85})
    assert wait_for(lambda: "Grace" in table.widget.value and "Grace" in feed.widget.value)
    peer.close()
    widgets = (table, feed, status)
    assert wait_for(lambda: not any(w.running for w in widgets))
    for w in widgets:
        assert w.widget.comm is not None, f"{type(w).__name__} closed its widget"
        assert "live updates stopped" in w.widget.value
    assert "Grace" in table.widget.value and "Ada" in table.widget.value
    assert "Grace" in feed.widget.value
    assert peer.id in status.widget.value and table.error is None
    assert table.stopped in ("the database was closed", "the peer was closed")
    assert feed.stopped == "the database was closed"
    assert status.stopped == "the peer was closed"
    for w in widgets:
        w.close()
        assert w.widget.comm is None


def test_closing_the_displayed_widget_stops_its_threads(peer: tk.Peer) -> None:
    people = peer.new_db("w").new_collection("People")
    table = LiveTable(people, throttle=0.01)
    reader = table._reader
    table.widget.close()  # as ipywidgets.Widget.close_all() or a frontend would
    assert wait_for(lambda: not table.running and not reader.is_alive())
    assert table.stopped == "the widget was closed"
    table.stop("again")  # idempotent: the first reason stays
    assert table.stopped == "the widget was closed"


def test_the_mime_bundle_carries_a_static_copy_and_is_static_once_stopped(peer: tk.Peer) -> None:
    """Saved notebooks, GitHub and nbviewer show ``text/html``: the widget's last state."""
    people = peer.new_db("w").new_collection("People")
    people.create({"name": "Ada", "age": 36})
    table = LiveTable(people, throttle=0.01)
    bundle = table._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "Ada" in bundle["text/html"] and bundle["text/html"] == table.widget.value
    table.stop("done here")
    bundle = table._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in bundle
    assert "Ada" in bundle["text/html"] and "live updates stopped: done here" in bundle["text/html"]
    table.close()


def test_live_table_is_the_dataframe_repr_in_a_scroll_box(peer: tk.Peer) -> None:
    people = peer.new_db("w").new_collection("People")
    people.create({"name": "Ada", "age": 36})
    with LiveTable(people) as table:
        html = table.widget.value
        assert "tk-scroll" in html and "jp-RenderedHTMLCommon" in html and "<style>" in html
        assert people.to_pandas()._repr_html_().split("<table")[1][:40] in html
        assert "<thead>" in html and 'class="dataframe"' in html


def test_listen_feed_rows_say_who_when_and_what(peer: tk.Peer) -> None:
    db = peer.new_db("w")
    people = db.new_collection("People")
    with ListenFeed(db, throttle=0.01) as feed:
        [ada] = people.create({"name": "Ada", "tags": ["x", 1]})
        assert wait_for(lambda: "Ada" in feed.widget.value)
        html = feed.widget.value
        mod = people.find_by_id(ada)["_mod"]
        assert str(mod) not in html and "'_mod'" not in html and "{'" not in html
        assert "<b>name</b>: Ada" in html and "<b>tags</b>: [&quot;x&quot;, 1]" in html
        stamp = datetime.datetime.fromtimestamp(mod / 1e9).strftime("%H:%M:%S.%f")[:-3]
        assert f">{stamp}</td>" in html
        assert ">you</td>" in html and "tk-scroll" in html
        assert "<th style='text-align:left'>by" in html


def test_listen_feed_names_another_members_log() -> None:
    with tk.Peer(memory=True, network=True) as a, tk.Peer(memory=True, network=True) as b:
        db_a = a.new_db("w")
        db_a.new_collection("Notes")
        info = db_a.info()
        db_b = b.new_db_from_addr(info.addrs[0], info.key)
        with ListenFeed(db_b, throttle=0.01) as feed:
            db_a["Notes"].create({"text": "from a"})
            assert wait_for(lambda: "from a" in feed.widget.value, timeout=30)
            short = f"{db_a.log_id[:6]}…{db_a.log_id[-4:]}"
            assert f">{short}</td>" in feed.widget.value and ">you</td>" not in feed.widget.value
