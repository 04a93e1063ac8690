"""The membership fold: every rule of docs/access.md, and order-independence by hypothesis."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadkit.db.roles import Kind, Role, RoleEvent, RolesFold, fold
from threadkit.errors import MalformedRecord

OWNER, ALICE, BOB, CAROL, DAVE, DAEMON = "owner", "alice", "bob", "carol", "dave", "daemon"


def ev(
    log: str,
    counter: int,
    stamp: int,
    kind: Kind,
    author: str | None = None,
    heads: Mapping[str, int] | None = None,
    **kw: Any,
) -> RoleEvent:
    """An event in ``log`` (whose writer is the identity of the same name unless given)."""
    if kind in (Kind.GRANT, Kind.REVOKE, Kind.MODE) and heads is None:
        heads = {}
    return RoleEvent(log, counter, stamp, author or log, kind, heads=heads, **kw)


def genesis(open_: bool = False) -> RoleEvent:
    return ev(OWNER, 1, 1, Kind.GENESIS, open=open_)


def grant(log: str, counter: int, stamp: int, target: str, role: Role, **heads: int) -> RoleEvent:
    return ev(log, counter, stamp, Kind.GRANT, target=target, role=role, heads=heads)


def revoke(log: str, counter: int, stamp: int, target: str, **heads: int) -> RoleEvent:
    return ev(log, counter, stamp, Kind.REVOKE, target=target, heads=heads)


def write(log: str, counter: int, stamp: int, **kw: Any) -> RoleEvent:
    return ev(log, counter, stamp, Kind.WRITE, **kw)


def accepted(result: RolesFold, log: str, counter: int) -> bool:
    return result.verdict(log, counter).accepted


def with_alice_admin() -> list[RoleEvent]:
    """The owner creates the database and makes Alice an admin."""
    return [genesis(), grant(OWNER, 2, 10, ALICE, Role.ADMIN, owner=1)]


# -- the owner, grants and who may make them ---------------------------------------------


def test_genesis_makes_the_owner() -> None:
    result = fold([genesis(), write(BOB, 1, 0), ev(CAROL, 1, 5, Kind.GENESIS, open=True)])
    assert result.members.owner == OWNER
    assert result.members.role(OWNER) is Role.OWNER
    assert "before the database's genesis" in result.verdict(BOB, 1).reason
    assert "already has a genesis" in result.verdict(CAROL, 1).reason
    assert not result.members.open


def test_grants_need_an_admin() -> None:
    result = fold(
        [
            *with_alice_admin(),
            grant(ALICE, 1, 20, BOB, Role.WRITER, owner=2),
            grant(BOB, 1, 30, CAROL, Role.WRITER, owner=2, alice=1),  # a writer granting
            grant(CAROL, 1, 31, CAROL, Role.ADMIN),  # granting oneself
        ]
    )
    assert accepted(result, ALICE, 1)
    assert "not admin" in result.verdict(BOB, 1).reason
    assert not accepted(result, CAROL, 1)
    assert dict(result.members.roles) == {OWNER: Role.OWNER, ALICE: Role.ADMIN, BOB: Role.WRITER}


def test_an_admin_grant_counts_only_once_its_author_had_seen_it() -> None:
    # Alice's grant to Bob claims heads without the owner's grant of admin to her
    events = [*with_alice_admin(), grant(ALICE, 1, 20, BOB, Role.WRITER)]
    assert "not admin" in fold(events).verdict(ALICE, 1).reason


def test_writes_need_writer_and_configs_need_admin() -> None:
    events = [
        *with_alice_admin(),
        grant(OWNER, 3, 11, BOB, Role.WRITER, owner=2),
        grant(OWNER, 4, 12, CAROL, Role.READER, owner=3),
        write(BOB, 1, 20),
        write(CAROL, 1, 21),
        write(DAVE, 1, 22),
        ev(BOB, 2, 23, Kind.CONFIG),
        ev(ALICE, 1, 24, Kind.CONFIG),
        ev(OWNER, 5, 25, Kind.CONFIG),
    ]
    result = fold(events)
    assert accepted(result, BOB, 1)
    assert "reader: may not write" in result.verdict(CAROL, 1).reason
    assert "none: may not write" in result.verdict(DAVE, 1).reason
    assert "may not change collections" in result.verdict(BOB, 2).reason
    assert accepted(result, ALICE, 1) and accepted(result, OWNER, 5)


def test_a_grant_by_someone_no_longer_admin_is_rejected_whatever_its_stamp() -> None:
    base = [*with_alice_admin(), revoke(OWNER, 3, 30, ALICE, owner=2)]
    for stamp in (40, 20, 11, 5):  # after the revoke, before it, before her own grant
        late = grant(ALICE, 1, stamp, BOB, Role.WRITER, owner=2)
        result = fold([*base, late])
        assert not accepted(result, ALICE, 1), stamp
        assert result.members.role(BOB) is Role.NONE
    # one that had seen the revoke is judged on it
    saw = grant(ALICE, 1, 40, BOB, Role.WRITER, owner=3)
    assert "not admin" in fold([*base, saw]).verdict(ALICE, 1).reason


# -- concurrent grant and revoke ----------------------------------------------------------


def test_concurrent_grant_and_revoke_the_revoke_wins() -> None:
    events = [
        *with_alice_admin(),
        grant(OWNER, 3, 11, BOB, Role.WRITER, owner=2),
        grant(ALICE, 1, 20, BOB, Role.ADMIN, owner=3),  # Alice promotes Bob ...
        revoke(OWNER, 4, 21, BOB, owner=3),  # ... while the owner revokes him
    ]
    for stamps in ((20, 21), (21, 20)):
        events[3] = grant(ALICE, 1, stamps[0], BOB, Role.ADMIN, owner=3)
        events[4] = revoke(OWNER, 4, stamps[1], BOB, owner=3)
        result = fold(events)
        assert accepted(result, ALICE, 1) and accepted(result, OWNER, 4)
        assert result.members.role(BOB) is Role.NONE


def test_concurrent_grants_the_lower_role_wins_until_one_sees_the_other() -> None:
    events = [
        *with_alice_admin(),
        grant(ALICE, 1, 20, BOB, Role.ADMIN, owner=2),
        grant(OWNER, 3, 21, BOB, Role.READER, owner=2),
    ]
    assert fold(events).members.role(BOB) is Role.READER
    events.append(grant(OWNER, 4, 22, BOB, Role.ADMIN, owner=3, alice=1))
    assert fold(events).members.role(BOB) is Role.ADMIN


# -- a revoke concurrent with the revoked member's writes ---------------------------------


def test_writes_beyond_the_revoke_cut_are_rejected_whatever_their_stamps() -> None:
    events = [
        *with_alice_admin(),
        grant(OWNER, 3, 11, BOB, Role.WRITER, owner=2),
        write(BOB, 1, 20),
        write(BOB, 2, 21),
        revoke(ALICE, 1, 30, BOB, owner=3, bob=2),  # Alice had seen two of Bob's writes
        write(BOB, 3, 25),  # concurrent, stamped before the revoke
        write(BOB, 4, 26),
        write(BOB, 5, 99),  # stamped after it
    ]
    result = fold(events)
    assert [accepted(result, BOB, c) for c in range(1, 6)] == [True, True, False, False, False]
    assert "revoked by alice" in result.verdict(BOB, 3).reason
    assert result.members.role(BOB) is Role.NONE
    # Bob moving his stamps anywhere (those he may keep: after his grant) changes nothing
    rng = random.Random(7)
    for _ in range(20):
        moved = [
            write(BOB, e.counter, rng.randrange(12 if e.counter <= 2 else 0, 200))
            if e.log == BOB
            else e
            for e in events
        ]
        again = fold(moved)
        assert [accepted(again, BOB, c) for c in range(1, 6)] == [True, True, False, False, False]


def test_writes_the_revoker_had_seen_stay_even_stamped_after_it() -> None:
    events = [
        genesis(),
        grant(OWNER, 2, 10, BOB, Role.WRITER, owner=1),
        write(BOB, 1, 500),  # a stamp far ahead
        revoke(OWNER, 3, 30, BOB, owner=2, bob=1),
    ]
    assert accepted(fold(events), BOB, 1)


def test_a_re_grant_that_saw_the_revoke_restores_later_writes_only() -> None:
    events = [
        genesis(),
        grant(OWNER, 2, 10, BOB, Role.WRITER, owner=1),
        revoke(OWNER, 3, 20, BOB, owner=2),
        write(BOB, 1, 25),  # while revoked; the owner sees it before re-granting
        grant(OWNER, 4, 30, BOB, Role.WRITER, owner=3, bob=1),
        write(BOB, 2, 40),
    ]
    result = fold(events)
    assert not accepted(result, BOB, 1)
    assert accepted(result, BOB, 2)
    assert result.members.role(BOB) is Role.WRITER


def test_a_demotion_cuts_like_a_revoke() -> None:
    events = [
        genesis(),
        grant(OWNER, 2, 10, BOB, Role.WRITER, owner=1),
        write(BOB, 1, 12),
        grant(OWNER, 3, 20, BOB, Role.READER, owner=2, bob=1),
        write(BOB, 2, 15),  # backdated
    ]
    result = fold(events)
    assert accepted(result, BOB, 1) and not accepted(result, BOB, 2)
    assert result.members.role(BOB) is Role.READER


# -- admins against admins ----------------------------------------------------------------


def test_an_admin_revokes_another_admin() -> None:
    events = [
        *with_alice_admin(),
        grant(OWNER, 3, 11, DAVE, Role.ADMIN, owner=2),
        revoke(ALICE, 1, 20, DAVE, owner=3),
        grant(DAVE, 1, 30, CAROL, Role.WRITER, owner=3, alice=1),  # after seeing it
        grant(DAVE, 2, 15, BOB, Role.WRITER, owner=3),  # backdated, claims not to have
    ]
    result = fold(events)
    assert not accepted(result, DAVE, 1) and not accepted(result, DAVE, 2)
    assert dict(result.members.roles) == {OWNER: Role.OWNER, ALICE: Role.ADMIN}


@pytest.mark.parametrize("stamps", [(20, 21), (21, 20), (20, 20)])
def test_mutual_concurrent_revocation_both_lose(stamps: tuple[int, int]) -> None:
    events = [
        *with_alice_admin(),
        grant(OWNER, 3, 11, DAVE, Role.ADMIN, owner=2),
        revoke(ALICE, 1, stamps[0], DAVE, owner=3),
        revoke(DAVE, 1, stamps[1], ALICE, owner=3),
        grant(ALICE, 2, 30, BOB, Role.WRITER, owner=3, alice=1),  # neither may act after
        grant(DAVE, 2, 31, CAROL, Role.WRITER, owner=3, dave=1),
    ]
    result = fold(events)
    assert accepted(result, ALICE, 1) and accepted(result, DAVE, 1)
    assert not accepted(result, ALICE, 2) and not accepted(result, DAVE, 2)
    assert dict(result.members.roles) == {OWNER: Role.OWNER}


def test_a_three_way_revocation_cycle_all_lose() -> None:
    events = [
        genesis(),
        grant(OWNER, 2, 10, ALICE, Role.ADMIN, owner=1),
        grant(OWNER, 3, 11, BOB, Role.ADMIN, owner=2),
        grant(OWNER, 4, 12, CAROL, Role.ADMIN, owner=3),
        revoke(ALICE, 1, 20, BOB, owner=4),
        revoke(BOB, 1, 21, CAROL, owner=4),
        revoke(CAROL, 1, 22, ALICE, owner=4),
    ]
    result = fold(events)
    assert all(accepted(result, who, 1) for who in (ALICE, BOB, CAROL))
    assert dict(result.members.roles) == {OWNER: Role.OWNER}


def test_a_revoke_voided_by_a_concurrent_revoke_of_its_author() -> None:
    # the owner revokes Alice while Alice revokes Dave: Alice's revoke is void
    events = [
        *with_alice_admin(),
        grant(OWNER, 3, 11, DAVE, Role.ADMIN, owner=2),
        revoke(OWNER, 4, 21, ALICE, owner=3),
        revoke(ALICE, 1, 20, DAVE, owner=3),
    ]
    result = fold(events)
    assert "revoked by owner" in result.verdict(ALICE, 1).reason
    assert result.members.role(DAVE) is Role.ADMIN
    assert result.members.role(ALICE) is Role.NONE


def test_the_owner_cannot_be_revoked_and_its_revokes_are_final() -> None:
    events = [
        *with_alice_admin(),
        revoke(ALICE, 1, 20, OWNER, owner=2),
        grant(ALICE, 2, 21, OWNER, Role.READER, owner=2, alice=1),
        revoke(OWNER, 3, 22, ALICE, owner=2),
    ]
    result = fold(events)
    assert "owner's role cannot be changed" in result.verdict(ALICE, 1).reason
    assert not accepted(result, ALICE, 2)
    assert dict(result.members.roles) == {OWNER: Role.OWNER}


# -- open mode, daemons, states -----------------------------------------------------------


def test_open_mode_lets_anyone_write_but_not_change_members() -> None:
    events = [
        genesis(open_=True),
        write(BOB, 1, 10),
        ev(BOB, 2, 11, Kind.CONFIG),
        grant(BOB, 3, 12, BOB, Role.ADMIN, owner=1),
        revoke(OWNER, 2, 20, CAROL, owner=1),  # a ban
        write(CAROL, 1, 15),  # concurrent with the ban: cut
        write(DAVE, 1, 30),
        ev(OWNER, 3, 40, Kind.MODE, open=False, heads={"owner": 2}),
        write(DAVE, 2, 50),
    ]
    result = fold(events)
    assert accepted(result, BOB, 1) and accepted(result, BOB, 2)
    assert not accepted(result, BOB, 3)
    assert not accepted(result, CAROL, 1)
    assert accepted(result, DAVE, 1) and not accepted(result, DAVE, 2)
    assert not result.members.open


def test_an_attested_write_needs_the_client_and_the_daemon_to_be_writers() -> None:
    base = [genesis(), grant(OWNER, 2, 10, DAEMON, Role.WRITER, owner=1)]
    client_write = write(DAEMON, 1, 20, author=BOB, via=DAEMON)
    assert "bob is none" in fold([*base, client_write]).verdict(DAEMON, 1).reason
    with_bob = [*base, grant(OWNER, 3, 11, BOB, Role.WRITER, owner=2), client_write]
    assert accepted(fold(with_bob), DAEMON, 1)
    # revoking the daemon cuts what it attests
    cut = [*with_bob, revoke(OWNER, 4, 30, DAEMON, owner=3)]
    cut[-2] = write(DAEMON, 1, 20, author=BOB, via=DAEMON)
    assert "daemon was revoked" in fold(cut).verdict(DAEMON, 1).reason


def test_states_after_each_event() -> None:
    events = [
        *with_alice_admin(),
        grant(ALICE, 1, 20, BOB, Role.WRITER, owner=2),
        write(BOB, 1, 30),
    ]
    result = fold(events)
    roles = [dict(s.roles) for s in result.states]
    assert roles == [
        {OWNER: Role.OWNER},
        {OWNER: Role.OWNER, ALICE: Role.ADMIN},
        {OWNER: Role.OWNER, ALICE: Role.ADMIN, BOB: Role.WRITER},
        {OWNER: Role.OWNER, ALICE: Role.ADMIN, BOB: Role.WRITER},
    ]


def test_malformed_events_are_refused() -> None:
    with pytest.raises(MalformedRecord, match="names its target"):
        RoleEvent("a", 1, 1, ALICE, Kind.REVOKE, heads={})
    with pytest.raises(MalformedRecord, match="reader, writer or admin"):
        RoleEvent("a", 1, 1, ALICE, Kind.GRANT, target=BOB, role=Role.OWNER, heads={})
    with pytest.raises(MalformedRecord, match="heads"):
        RoleEvent("a", 1, 1, ALICE, Kind.GRANT, target=BOB, role=Role.READER)
    with pytest.raises(MalformedRecord, match="counter"):
        RoleEvent("a", 0, 1, ALICE, Kind.WRITE)
    with pytest.raises(MalformedRecord, match="unknown event kind"):
        RoleEvent("a", 1, 1, ALICE, "promote")  # type: ignore[arg-type]
    with pytest.raises(MalformedRecord, match="another identity"):
        RoleEvent("a", 1, 1, ALICE, Kind.CONFIG, via=ALICE)  # a daemon attests for others
    with pytest.raises(MalformedRecord, match="direct"):
        RoleEvent("a", 1, 1, ALICE, Kind.WRITE, direct=True)
    with pytest.raises(MalformedRecord, match="open or direct"):
        RoleEvent("a", 1, 1, ALICE, Kind.MODE, heads={})
    with pytest.raises(MalformedRecord, match="two different events"):
        fold([write("a", 1, 1), write("a", 1, 2)])
    same = write("a", 1, 1)
    assert len(fold([genesis(), same, write("a", 1, 1)]).verdicts) == 2


# -- any delivery order, any stamps --------------------------------------------------------

MEMBERS = [ALICE, BOB, CAROL, DAVE]


@st.composite
def histories(draw: st.DrawFn) -> list[RoleEvent]:
    """A history made by actors that write with what they have seen and sync at random.

    Stamps follow each actor's clock, except a malicious actor's, drawn at random.
    """
    actors = [OWNER, *MEMBERS]
    seen = {a: {a: 0} for a in actors}  # what each actor has applied, per log
    clock = dict.fromkeys(actors, 0)
    liar = draw(st.sampled_from([None, *MEMBERS]))
    events = [genesis()]
    for counter, member in enumerate(MEMBERS, start=2):  # the owner gives everyone a role
        role = draw(st.sampled_from([Role.READER, Role.WRITER, Role.ADMIN]))
        heads = {OWNER: counter - 1}
        events.append(
            RoleEvent(OWNER, counter, counter, OWNER, Kind.GRANT, member, role, heads=heads)
        )
    seen[OWNER][OWNER] = clock[OWNER] = len(events)
    for member in MEMBERS:
        if draw(st.booleans()):
            seen[member][OWNER], clock[member] = len(events), len(events)
    for _ in range(draw(st.integers(1, 24))):
        actor = draw(st.sampled_from(actors))
        if draw(st.booleans()):  # sync from another actor
            other = draw(st.sampled_from(actors))
            for log, counter in seen[other].items():
                seen[actor][log] = max(seen[actor].get(log, 0), counter)
            clock[actor] = max(clock[actor], clock[other])
            continue
        counter = seen[actor][actor] + 1
        clock[actor] += draw(st.integers(1, 3))
        stamp = draw(st.integers(0, 100)) if actor == liar else clock[actor]
        heads = {log: c for log, c in seen[actor].items() if c}
        kind = draw(st.sampled_from([Kind.GRANT, Kind.REVOKE, Kind.WRITE, Kind.WRITE, Kind.CONFIG]))
        target = draw(st.sampled_from(MEMBERS))
        if kind is Kind.GRANT:
            role = draw(st.sampled_from([Role.READER, Role.WRITER, Role.ADMIN]))
            events.append(
                RoleEvent(actor, counter, stamp, actor, kind, target=target, role=role, heads=heads)
            )
        elif kind is Kind.REVOKE:
            events.append(RoleEvent(actor, counter, stamp, actor, kind, target=target, heads=heads))
        else:
            events.append(RoleEvent(actor, counter, stamp, actor, kind))
        seen[actor][actor] = counter
    return events


def _outcome(result: RolesFold) -> tuple[object, ...]:
    verdicts = tuple((v.event.position, v.accepted, v.reason) for v in result.verdicts)
    states = tuple((s.owner, s.open, tuple(sorted(s.roles.items()))) for s in result.states)
    return verdicts, states, tuple(sorted(result.members.roles.items()))


@settings(max_examples=300, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_any_delivery_order_gives_the_same_roles_and_verdicts(
    events: list[RoleEvent], rng: random.Random
) -> None:
    expected = _outcome(fold(events))
    for _ in range(3):
        shuffled = list(events)
        rng.shuffle(shuffled)
        # a peer may also receive a record twice
        shuffled += rng.sample(shuffled, k=min(2, len(shuffled)))
        assert _outcome(fold(shuffled)) == expected
    final = fold(events).members
    assert final.role(OWNER) is Role.OWNER


@settings(max_examples=200, deadline=None)
@given(histories(), st.data())
def test_a_member_revoked_by_the_owner_cannot_save_writes_by_its_stamps(
    events: list[RoleEvent], data: st.DataObject
) -> None:
    result = fold(events)
    revokes = [
        v.event
        for v in result.verdicts
        if v.accepted and v.event.kind is Kind.REVOKE and v.event.author == OWNER
    ]
    if not revokes:
        return
    cut = revokes[0]
    member = cut.target
    assert member is not None
    if any(
        e.kind is Kind.GRANT and e.target == member and e.order_key > cut.order_key for e in events
    ):
        return  # a later grant may restore the member
    assert cut.heads is not None
    beyond = [e for e in events if e.author == member and e.counter > cut.heads.get(e.log, 0)]
    # the member re-stamps its own events as it likes
    restamped = [
        RoleEvent(e.log, e.counter, data.draw(st.integers(0, 120)), e.author, e.kind, e.target,
                  e.role, e.open, e.heads, e.via)
        if e.author == member
        else e
        for e in events
    ]  # fmt: skip
    again = fold(restamped)
    for e in beyond:
        assert not again.verdict(e.log, e.counter).accepted
