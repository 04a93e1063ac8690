"""Members and roles: a pure, deterministic fold of membership events (docs/access.md).

No storage and no engine here: :func:`fold` takes a set of events — the database's
genesis, grants, revokes, mode changes, and the claims of document writes and collection
config changes — and returns, for each event in the engine's total order, whether it is
accepted (and why not), and who holds which role after it. The result is a function of
the *set* of events alone: any delivery order gives the same verdicts and roles.

Each event has a **position** ``(log, counter)`` (its record's place in its log), an
**order key** ``(stamp, log, counter)`` (the total order of docs/semantics.md), an
authenticated **author** (from its writer proof; ``via`` names the daemon of an attested
write) and, for membership events, the **heads** its author had seen (per-log counters).

The rules (each with an example in docs/access.md):

1. The genesis (the first in the order) makes its author the **owner**; the owner cannot
   be granted, revoked or demoted. Events before the genesis are rejected.
2. ``grant`` and ``revoke`` and ``mode`` need an admin (or the owner); document writes
   need ``writer`` (or above) or the ``open`` mode; collection configs need ``admin`` or
   the ``open`` mode. An attested event (a daemon *D* writing for client *X*) needs the
   role for both X and D, and is rejected while the database requires **direct** proof
   (a genesis or mode event sets ``direct``). A genesis attested by D makes X the owner
   and D an admin (the daemon hosting X's database; X can revoke it).
3. An author's role for an event comes from that author's accepted role changes: those
   the event had seen (or, for an event without heads, those before it in the order),
   and every reduction (a revoke, or a grant of a lower role) before it in the order
   that had not seen the event (to judge a reduction, only the reductions it had seen).
   Among those changes the causally latest count; when several are concurrent (none had
   seen the other) the **lowest role wins** (a revoke beats a concurrent grant).
4. **Revocation cut.** A reduction of member M names the heads its author had seen; every
   event by M (as author or daemon) beyond those heads is rejected, wherever its stamp
   puts it in the order, unless a later change of M that had seen the reduction restores
   a role for it. So the outcome never depends on stamps M can set: backdating a write
   to before the revoke does not save it, and writes the admin had seen stay accepted.
5. **Reductions against each other.** A reduction by A that a concurrent reduction of A
   cuts is void — unless the two cut each other (directly or around a cycle): then all
   of them stand (**mutual destruction**: two admins revoking each other concurrently
   both lose the role). Only the owner's reductions can never be voided.

Examples
--------
>>> e = [
...     RoleEvent("o", 1, 10, "owner", Kind.GENESIS, open=False),
...     RoleEvent("o", 2, 20, "owner", Kind.GRANT, target="bob", role=Role.WRITER, heads={"o": 1}),
...     RoleEvent("b", 1, 30, "bob", Kind.WRITE),
...     RoleEvent("o", 3, 40, "owner", Kind.REVOKE, target="bob", heads={"o": 2, "b": 1}),
...     RoleEvent("b", 2, 35, "bob", Kind.WRITE),  # stamped before the revoke, unseen by it
... ]
>>> result = fold(e)
>>> [(v.event.log, v.event.counter, v.accepted) for v in result.verdicts]
[('o', 1, True), ('o', 2, True), ('b', 1, True), ('b', 2, False), ('o', 3, True)]
>>> result.members.role("bob")
<Role.NONE: 0>
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from threadkit.errors import MalformedRecord, NotFound

__all__ = [
    "Kind",
    "Members",
    "Role",
    "RoleEvent",
    "RolesFold",
    "Verdict",
    "fold",
]


class Role(enum.IntEnum):
    """Roles in increasing power; ``OWNER`` is held by the creator alone."""

    NONE = 0
    READER = 1
    WRITER = 2
    ADMIN = 3
    OWNER = 4


class Kind(enum.StrEnum):
    """What an event does."""

    GENESIS = "genesis"
    GRANT = "grant"
    REVOKE = "revoke"
    MODE = "mode"
    WRITE = "write"
    CONFIG = "config"


_CHANGES = frozenset({Kind.GRANT, Kind.REVOKE})
_MEMBERSHIP = frozenset({Kind.GRANT, Kind.REVOKE, Kind.MODE})
_GRANTABLE = frozenset({Role.READER, Role.WRITER, Role.ADMIN})


@dataclass(frozen=True)
class RoleEvent:
    """One event as the fold sees it.

    Attributes
    ----------
    log : str
        The id of the log holding the event's record.
    counter : int
        The record's place in its log (1 for the first record).
    stamp : int
        The event's stamp (its writer's hybrid logical clock), as an integer.
    author : str
        The identity the writer proof authenticated (an identity key string).
    kind : Kind
        What the event does.
    target : str, optional
        The member a grant or revoke is about.
    role : Role, optional
        The role a grant gives.
    open : bool, optional
        The mode a genesis or mode event sets (True: anyone with the key writes).
    direct : bool, optional
        Whether a genesis or mode event requires direct proof (True: events attested by
        a daemon are rejected); a mode event without it leaves it as it was.
    heads : Mapping[str, int], optional
        Per log, the highest counter the author had applied when writing; required
        for grants, revokes and mode changes.
    via : str, optional
        The daemon that attested the event for ``author``.
    """

    log: str
    counter: int
    stamp: int
    author: str
    kind: Kind
    target: str | None = None
    role: Role | None = None
    open: bool | None = None
    heads: Mapping[str, int] | None = None
    via: str | None = None
    direct: bool | None = None

    def __post_init__(self) -> None:
        if self.heads is not None:
            object.__setattr__(self, "heads", MappingProxyType(dict(self.heads)))
        _check(self)

    @property
    def position(self) -> tuple[str, int]:
        """``(log, counter)``: where the event's record is."""
        return (self.log, self.counter)

    @property
    def order_key(self) -> tuple[int, str, int]:
        """The total order: stamp, then log id, then counter."""
        return (self.stamp, self.log, self.counter)

    def _identity(self) -> tuple[object, ...]:
        heads = tuple(sorted(self.heads.items())) if self.heads is not None else None
        return (*self.order_key, self.author, self.kind, self.target, self.role, self.open,
                heads, self.via, self.direct)  # fmt: skip

    def __hash__(self) -> int:
        return hash(self._identity())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RoleEvent) and other._identity() == self._identity()


@dataclass(frozen=True)
class Verdict:
    """The fold's judgement of one event: ``accepted``, or rejected with ``reason``."""

    event: RoleEvent
    accepted: bool
    reason: str = ""


@dataclass(frozen=True)
class Members:
    """Who holds which role at one point of the order.

    Attributes
    ----------
    owner : str or None
        The creator (None before the genesis).
    open : bool
        True when anyone with the key may write documents and configs.
    direct : bool
        True when events attested by a daemon are rejected.
    roles : Mapping[str, Role]
        Every identity with a role other than NONE, the owner included.
    """

    owner: str | None = None
    open: bool = False
    direct: bool = False
    roles: Mapping[str, Role] = field(default_factory=lambda: MappingProxyType({}))

    def role(self, identity: str) -> Role:
        """The role ``identity`` holds here (``Role.NONE`` when it holds none)."""
        return self.roles.get(identity, Role.NONE)


@dataclass(frozen=True)
class RolesFold:
    """What :func:`fold` found.

    Attributes
    ----------
    verdicts : list of Verdict
        One per event, in the total order.
    states : list of Members
        The membership after each event (same order as ``verdicts``).
    members : Members
        The membership after all events.
    """

    verdicts: list[Verdict]
    states: list[Members]
    members: Members

    def verdict(self, log: str, counter: int) -> Verdict:
        """The verdict of the event at ``(log, counter)``."""
        for v in self.verdicts:
            if v.event.position == (log, counter):
                return v
        raise NotFound(f"no event at {log}:{counter}")


def fold(events: Iterable[RoleEvent]) -> RolesFold:
    """Judge every event and fold the membership, in the total order.

    Parameters
    ----------
    events : iterable of RoleEvent
        The events, in any order; an event given twice counts once.

    Returns
    -------
    RolesFold

    Raises
    ------
    MalformedRecord
        An event's fields do not fit its kind, or two different events claim one position.
    """
    unique: dict[tuple[str, int], RoleEvent] = {}
    for event in events:
        if not isinstance(event, RoleEvent):
            raise MalformedRecord(f"expected an RoleEvent, got {type(event).__name__}")
        held = unique.setdefault(event.position, event)
        if held != event:
            raise MalformedRecord(f"two different events claim position {event.position}")
    order = sorted(unique.values(), key=lambda e: e.order_key)
    doomed: dict[tuple[str, int], str] = {}
    for _ in range(len(order) + 1):
        judged = _Pass(order, doomed)
        more = _cuts(judged)
        if more.keys() <= doomed.keys():
            break
        for pos, reason in more.items():
            doomed.setdefault(pos, reason)
    return judged.result()


def _covers(change: RoleEvent, event: RoleEvent) -> bool:
    """True when ``event``'s position is within the heads ``change``'s author had seen."""
    if change.log == event.log:
        return event.counter < change.counter
    return change.heads is not None and change.heads.get(event.log, 0) >= event.counter


def _saw(later: RoleEvent, earlier: RoleEvent) -> bool:
    """True when ``later``'s author had seen ``earlier`` (and it is earlier in the order)."""
    if earlier.order_key >= later.order_key:
        return False
    if later.log == earlier.log:
        return earlier.counter < later.counter
    return later.heads is not None and later.heads.get(earlier.log, 0) >= earlier.counter


@dataclass(frozen=True)
class _Change:
    """An accepted grant or revoke, with the role it leaves its target."""

    event: RoleEvent
    role: Role
    reduction: bool


class _Pass:
    """One fold over the order, with the ``doomed`` events (cut by revocations) rejected."""

    def __init__(self, order: list[RoleEvent], doomed: Mapping[tuple[str, int], str]) -> None:
        self.owner: str | None = None
        self.open = False
        self.direct = False
        self.changes: dict[str, list[_Change]] = {}
        self.verdicts: list[Verdict] = []
        self.states: list[Members] = []
        state = Members()
        for event in order:
            reason = doomed.get(event.position) or self._judge(event)
            self.verdicts.append(Verdict(event, not reason, reason))
            if not reason and event.kind is not Kind.WRITE and event.kind is not Kind.CONFIG:
                state = self._members()
            self.states.append(state)
        self.final = state

    def result(self) -> RolesFold:
        return RolesFold(self.verdicts, self.states, self.final)

    def role_for(self, identity: str, event: RoleEvent | None, *, reduction: bool = False) -> Role:
        """``identity``'s role as ``event`` is judged (None: everything accepted so far)."""
        if identity == self.owner:
            return Role.OWNER
        counted = []
        for change in self.changes.get(identity, ()):
            if event is None:
                seen = True
            elif change.reduction and not reduction:
                # a reduction earlier in the order applies, unless it had seen this event
                seen = not _covers(change.event, event)
            elif event.heads is None and not change.reduction:
                seen = True  # an event without heads: every grant earlier in the order
            else:
                seen = _saw(event, change.event)
            if seen:
                counted.append(change)
        latest = [
            c for c in counted if not any(_saw(d.event, c.event) for d in counted if d is not c)
        ]
        return min((c.role for c in latest), default=Role.NONE)

    def _judge(self, event: RoleEvent) -> str:
        if event.kind is Kind.GENESIS:
            if self.owner is not None:
                return "the database already has a genesis earlier in the order"
            self.owner, self.open = event.author, bool(event.open)
            self.direct = bool(event.direct)
            if event.via is not None:  # the daemon hosting the owner's database
                host = _Change(event, Role.ADMIN, reduction=False)
                self.changes.setdefault(event.via, []).append(host)
            return ""
        if self.owner is None:
            return "before the database's genesis"
        if event.via is not None and self.direct:
            return f"this database requires direct proof: attested by the daemon {event.via}"
        if event.kind is Kind.WRITE:
            return self._may(event, Role.WRITER, "write documents")
        if event.kind is Kind.CONFIG:
            return self._may(event, Role.ADMIN, "change collections")
        target_role = Role.NONE
        if event.kind in _CHANGES:
            assert event.target is not None
            if event.target == self.owner:
                return "the owner's role cannot be changed"
            target_role = self.role_for(event.target, event)
        new_role = event.role if event.kind is Kind.GRANT else Role.NONE
        reduction = event.kind in _CHANGES and (
            event.kind is Kind.REVOKE or (new_role or Role.NONE) < target_role
        )
        for who in (event.author, event.via):
            if who is None:
                continue
            role = self.role_for(who, event, reduction=reduction)
            if role < Role.ADMIN:
                return f"{who} is {role.name.lower()}, not admin: may not {event.kind}"
        if event.kind is Kind.MODE:
            if event.open is not None:
                self.open = event.open
            if event.direct is not None:
                self.direct = event.direct
        else:
            assert event.target is not None and new_role is not None
            self.changes.setdefault(event.target, []).append(_Change(event, new_role, reduction))
        return ""

    def _may(self, event: RoleEvent, needed: Role, what: str) -> str:
        for who in (event.author, event.via):
            if who is None:
                continue
            role = self.role_for(who, event)
            if role < needed and not (self.open and not self._banned(who, event)):
                return f"{who} is {role.name.lower()}: may not {what}"
        return ""

    def _banned(self, identity: str, event: RoleEvent) -> bool:
        """In open mode, an identity whose latest role change is a revoke may not write."""
        return any(
            c.reduction and c.role is Role.NONE for c in self.changes.get(identity, ())
        ) and (self.role_for(identity, event) is Role.NONE)

    def _members(self) -> Members:
        roles = {who: self.role_for(who, None) for who in self.changes}
        if self.owner is not None:
            roles[self.owner] = Role.OWNER
        kept = {who: role for who, role in sorted(roles.items()) if role is not Role.NONE}
        return Members(self.owner, self.open, self.direct, MappingProxyType(kept))


def _cuts(judged: _Pass) -> dict[tuple[str, int], str]:
    """Events that accepted reductions cut (rule 4), with void reductions (rule 5)."""
    reductions = [c for changes in judged.changes.values() for c in changes if c.reduction]
    accepted = [v.event for v in judged.verdicts if v.accepted and v.event.kind is not Kind.GENESIS]
    by_member: dict[str, list[RoleEvent]] = {}
    for event in accepted:
        for who in {event.author, event.via} - {None}:
            assert who is not None
            by_member.setdefault(who, []).append(event)

    def restored(reduction: RoleEvent, event: RoleEvent, member: str) -> bool:
        for change in judged.changes.get(member, ()):
            if _saw(change.event, reduction) and (
                _saw(event, change.event)
                or (event.heads is None and change.event.order_key < event.order_key)
            ):
                return True
        return False

    def cut(reduction: RoleEvent, event: RoleEvent) -> bool:
        member = reduction.target
        assert member is not None
        return (
            event is not reduction
            and member in (event.author, event.via)
            and not _covers(reduction, event)
            and not restored(reduction, event, member)
        )

    nodes = [c.event for c in reductions]
    edges = {r: [s for s in nodes if cut(r, s)] for r in nodes}
    standing = _grounded(nodes, edges)
    out: dict[tuple[str, int], str] = {}
    for r in nodes:
        if r not in standing:
            continue
        assert r.target is not None
        for event in by_member.get(r.target, ()):
            # reductions that stand beside r were in a cycle with it: mutual destruction
            if event not in standing and cut(r, event):
                out.setdefault(
                    event.position,
                    f"{r.target} was revoked by {r.author} at {r.log}:{r.counter}, "
                    "which had not seen this event",
                )
    return out


def _grounded(nodes: list[RoleEvent], edges: Mapping[RoleEvent, list[RoleEvent]]) -> set[RoleEvent]:
    """The reductions that stand: sources of the cut graph first, cycles standing together."""
    undecided = set(nodes)
    standing: set[RoleEvent] = set()
    while undecided:
        components = _components(undecided, edges)
        where = {n: i for i, comp in enumerate(components) for n in comp}
        cut_from_outside = {
            where[t] for s in undecided for t in edges[s] if t in undecided and where[s] != where[t]
        }
        for i, comp in enumerate(components):
            if i not in cut_from_outside:
                standing |= comp
                undecided -= comp
        undecided -= {t for s in standing for t in edges[s]}
    return standing


def _components(
    nodes: set[RoleEvent], edges: Mapping[RoleEvent, list[RoleEvent]]
) -> list[set[RoleEvent]]:
    """Strongly connected components of the cut graph restricted to ``nodes`` (Tarjan)."""
    index: dict[RoleEvent, int] = {}
    low: dict[RoleEvent, int] = {}
    stack: list[RoleEvent] = []
    on_stack: set[RoleEvent] = set()
    out: list[set[RoleEvent]] = []

    def visit(node: RoleEvent) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in nodes:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            comp = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                comp.add(top)
                if top is node:
                    break
            out.append(comp)

    for node in sorted(nodes, key=lambda e: e.order_key):
        if node not in index:
            visit(node)
    return out


def _check(event: RoleEvent) -> None:
    """Refuse an event whose fields do not fit its kind."""
    try:
        kind = Kind(event.kind)
    except ValueError:
        raise MalformedRecord(f"unknown event kind {event.kind!r}") from None
    object.__setattr__(event, "kind", kind)
    if not isinstance(event.log, str) or not event.log:
        raise MalformedRecord("event log must be a non-empty string")
    for name in ("counter", "stamp"):
        value = getattr(event, name)
        if type(value) is not int or value < (1 if name == "counter" else 0):
            raise MalformedRecord(f"event {name} must be a positive int, got {value!r}")
    if not isinstance(event.author, str) or not event.author:
        raise MalformedRecord("event author must be a non-empty identity string")
    if kind in _CHANGES and (not isinstance(event.target, str) or not event.target):
        raise MalformedRecord(f"a {kind} names its target")
    if kind is Kind.GRANT and event.role not in _GRANTABLE:
        raise MalformedRecord(f"a grant gives reader, writer or admin, not {event.role!r}")
    if kind is not Kind.GRANT and event.role is not None:
        raise MalformedRecord(f"a {kind} gives no role")
    if kind is Kind.GENESIS and type(event.open) is not bool:
        raise MalformedRecord(f"a {kind} says whether the database is open (a bool)")
    if kind is Kind.MODE and (
        (event.open is not None and type(event.open) is not bool)
        or (event.open is None and type(event.direct) is not bool)
    ):
        raise MalformedRecord("a mode event sets open or direct (bools)")
    if event.direct is not None and (
        kind not in (Kind.GENESIS, Kind.MODE) or type(event.direct) is not bool
    ):
        raise MalformedRecord("only a genesis or mode event sets direct (a bool)")
    if kind in _MEMBERSHIP and event.heads is None:
        raise MalformedRecord(f"a {kind} names the heads its author had seen")
    if event.heads is not None:
        for log, counter in event.heads.items():
            if not isinstance(log, str) or type(counter) is not int or counter < 0:
                raise MalformedRecord(f"heads map log ids to counters, got {log!r}: {counter!r}")
    if event.via is not None and event.via == event.author:
        raise MalformedRecord("a daemon attests events for another identity, not its own")
