"""Script calls of one write, judged outside the database's write lock.

A write (a local commit, received records, a collection event) runs in *rounds*. In a
round the database takes its write lock and an LMDB write transaction and applies the
write as usual, but every validator or filter call is looked up in a :class:`ScriptCalls`
by its exact argument text instead of being run:

- a call seen before replays its report (validators must decide from their arguments
  alone, so the same text gets the same verdict);
- an unseen validator call is noted and taken as passed for the rest of the round; an
  unseen filter call is noted and ends the round (:class:`Deferred`): a write cannot go
  on without the view it returns.

When a round noted calls, its transaction is abandoned (nothing is written), the lock
is released, and :meth:`ScriptCalls.run_missing` runs the noted calls in the worker
processes, one batch per script. The next round replays them. A round that noted
nothing is exactly the write as it would have run with the scripts inside it, and is
the one that commits. Each round that notes calls adds at least one true verdict the
previous round guessed, so rounds end; after a bounded number, the last round runs what
it still misses in place (see ``Database``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from threadkit.db.scripts import ReadFilter, WriteValidator

__all__ = ["Deferred", "ScriptCalls"]

_Key = tuple[int, str, float, int, str]


class Deferred(Exception):
    """A round cannot go on before its noted script calls have run."""


def _key(script: WriteValidator | ReadFilter, text: str) -> _Key:
    return (*script.identity, text)


class ScriptCalls:
    """The reports of one write's script calls, by script and argument text.

    Attributes
    ----------
    defer : bool
        True (the default) to note unseen calls; False to run them at once (the last
        round).
    """

    def __init__(self) -> None:
        self.defer = True
        self._reports: dict[_Key, str] = {}
        self._missing: dict[tuple[int, str, float, int], tuple[Any, dict[str, None]]] = {}

    @property
    def missing(self) -> bool:
        """True when calls were noted that have not run yet."""
        return bool(self._missing)

    def _report(self, script: WriteValidator | ReadFilter, text: str) -> str | None:
        key = _key(script, text)
        report = self._reports.get(key)
        if report is not None:
            return report
        if self.defer:
            entry = self._missing.setdefault(key[:4], (script, {}))
            entry[1][text] = None
            return None
        report = script.run_texts([text])[0]
        self._reports[key] = report
        return report

    def validate(
        self,
        validator: WriteValidator,
        writer: str | None,
        event: dict[str, Any],
        instance: dict[str, Any] | None,
    ) -> None:
        """Judge one write like ``validator(writer, event, instance)`` (see the module)."""
        report = self._report(validator, validator.encode(writer, event, instance))
        if report is not None:
            validator.interpret(report)

    def filter(
        self, read_filter: ReadFilter, reader: str | None, instance: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Filter one instance like ``read_filter(reader, instance)``; Deferred when unseen."""
        report = self._report(read_filter, read_filter.encode(reader, instance))
        if report is None:
            raise Deferred
        return read_filter.interpret(report)

    def run_missing(self) -> None:
        """Run every noted call, one batch per script (call it without any lock held)."""
        missing, self._missing = self._missing, {}
        for head, (script, texts) in missing.items():
            batch = list(texts)
            for text, report in zip(batch, script.run_texts(batch), strict=True):
                self._reports[(*head, text)] = report
