"""The members fold for daemons: attested genesis, configs and membership events, and
databases that require direct proof (docs/access.md, rules 1 and 2)."""

from __future__ import annotations

import random

import pytest
from test_roles import ALICE, BOB, DAEMON, OWNER, accepted, ev, genesis, grant, revoke, write

from threadkit.db.roles import Kind, Role, RoleEvent, fold
from threadkit.errors import MalformedRecord

# the daemon writes in its own log ("daemon") for its clients; the owner is its client
HOSTED = RoleEvent(DAEMON, 1, 1, OWNER, Kind.GENESIS, open=False, heads={}, via=DAEMON)


def hosted(counter: int, stamp: int, kind: Kind, client: str = OWNER, **kw: object) -> RoleEvent:
    """An event the daemon attests for ``client``."""
    heads = kw.pop("heads", {}) if kind is not Kind.WRITE and kind is not Kind.CONFIG else None
    return RoleEvent(DAEMON, counter, stamp, client, kind, heads=heads, via=DAEMON, **kw)  # type: ignore[arg-type]


def test_an_attested_genesis_makes_the_client_owner_and_the_daemon_admin() -> None:
    result = fold([HOSTED])
    assert result.members.owner == OWNER
    assert dict(result.members.roles) == {OWNER: Role.OWNER, DAEMON: Role.ADMIN}


def test_attested_configs_and_grants_need_admin_for_client_and_daemon() -> None:
    events = [
        HOSTED,
        hosted(2, 10, Kind.CONFIG),  # the owner, via the daemon: counts
        hosted(3, 20, Kind.CONFIG, client=ALICE),  # Alice has no role
        hosted(4, 30, Kind.GRANT, target=ALICE, role=Role.WRITER),
        hosted(5, 40, Kind.GRANT, client=ALICE, target=BOB, role=Role.WRITER),
        hosted(6, 50, Kind.WRITE, client=ALICE),
        hosted(7, 60, Kind.CONFIG, client=ALICE),  # a writer, not admin
    ]
    result = fold(events)
    assert [accepted(result, DAEMON, n) for n in range(1, 8)] == [
        True, True, False, True, False, True, False,
    ]  # fmt: skip
    assert "alice is writer, not admin" in result.verdict(DAEMON, 5).reason
    assert "alice is none" in result.verdict(DAEMON, 3).reason


def test_revoking_the_daemon_cuts_what_it_attests_even_for_the_owner() -> None:
    events = [
        HOSTED,
        hosted(2, 10, Kind.WRITE),
        revoke(OWNER, 1, 20, DAEMON, daemon=2),  # the owner, from its own peer
        hosted(3, 30, Kind.WRITE),
        hosted(4, 5, Kind.WRITE),  # backdated
    ]
    result = fold(events)
    assert accepted(result, DAEMON, 2) and accepted(result, OWNER, 1)
    assert not accepted(result, DAEMON, 3) and not accepted(result, DAEMON, 4)


def test_direct_proof_refuses_every_attested_event() -> None:
    events = [
        genesis(),
        grant(OWNER, 2, 10, DAEMON, Role.ADMIN, owner=1),
        grant(OWNER, 3, 20, ALICE, Role.WRITER, owner=2),
        write(DAEMON, 1, 30, author=ALICE, via=DAEMON),
        ev(OWNER, 4, 40, Kind.MODE, direct=True, heads={"owner": 3, "daemon": 1}),
        write(DAEMON, 2, 50, author=ALICE, via=DAEMON),
        write(ALICE, 1, 60),  # Alice's own proof
        hosted(3, 70, Kind.MODE, direct=False, heads={"owner": 4}),  # cannot lift it
        ev(OWNER, 5, 80, Kind.MODE, direct=False, heads={"owner": 4, "daemon": 3}),
        write(DAEMON, 4, 90, author=ALICE, via=DAEMON),
    ]
    result = fold(events)
    assert accepted(result, DAEMON, 1) and accepted(result, ALICE, 1)
    assert not accepted(result, DAEMON, 2) and not accepted(result, DAEMON, 3)
    assert "requires direct proof" in result.verdict(DAEMON, 2).reason
    assert accepted(result, DAEMON, 4)
    assert result.states[4].direct and not result.members.direct
    assert result.members.open is False  # a mode event setting direct leaves open alone
    for seed in range(20):  # one outcome in any delivery order
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        assert [v.accepted for v in fold(shuffled).verdicts] == [
            v.accepted for v in result.verdicts
        ]


def test_a_genesis_may_require_direct_proof_from_the_start() -> None:
    start = ev(OWNER, 1, 1, Kind.GENESIS, open=True, direct=True)
    result = fold([start, write(DAEMON, 1, 10, author=ALICE, via=DAEMON), write(BOB, 1, 20)])
    assert not accepted(result, DAEMON, 1) and accepted(result, BOB, 1)  # open, but direct


def test_malformed_daemon_fields() -> None:
    with pytest.raises(MalformedRecord, match="another identity"):
        RoleEvent(DAEMON, 1, 1, DAEMON, Kind.GENESIS, open=False, via=DAEMON)
    with pytest.raises(MalformedRecord, match="direct"):
        RoleEvent(OWNER, 1, 1, OWNER, Kind.GRANT, target=ALICE, role=Role.READER, heads={},
                  direct=False)  # fmt: skip
