"""Notebook reprs have no side effects: showing a peer, database or collection starts nothing."""

from __future__ import annotations

import threadkit as tk


def test_showing_a_database_does_not_start_the_network() -> None:
    with tk.Peer(memory=True) as peer:  # network=None: it would start on first share
        db = peer.new_db("shown")
        notes = db.new_collection("Notes")
        notes.create({"text": "hi"})
        for shown in (peer, db, notes):
            shown._repr_html_()
            assert not peer.online, f"{type(shown).__name__}._repr_html_ started the network"
        assert "not shared yet" in db._repr_html_()
        assert "Notes: 1 documents" in db._repr_html_()
        address = db.info().addrs[0]  # info() shares, so it starts the network
        assert peer.online
        assert address in db._repr_html_()
