"""Write validators and read filters: ThreadDB's semantics, limits, errors, safety."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest

from threadkit.db.scripts import (
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_TIME_LIMIT,
    ReadFilter,
    WriteValidator,
)
from threadkit.errors import (
    InvalidDocument,
    InvalidInput,
    InvalidScript,
    ScriptError,
    ScriptMemoryError,
    ScriptRejected,
    ScriptTimeout,
)

FAST = 0.2  # seconds: the time limit of the runaway-script tests
SMALL = 4 * 1024 * 1024  # bytes: the memory limit of the runaway-allocation tests

# ThreadDB's TestNewCollection/WithWriteValidator body, verbatim.
DOG_VALIDATOR = """
    var type = event.patch.type
    var patch = event.patch.json_patch
    switch (type) {
      case "delete":
        return false
      default:
        if (patch.Name !== "Fido" && patch.Name != "Clyde") {
          return false
        }
        return true
    }
"""

TRICKY = [
    "it's",
    'say "hi"',
    "back\\slash",
    "\\u0041 is not A",
    "</script><script>alert(1)</script>",
    "line\u2028separator\u2029paragraph",
    "nul\x00byte",
    "tab\tnewline\n",
    "emoji \U0001f415 and é",
    "'); return true; //",
    '"); return true; //',
    "lone \ud800 surrogate",
]


def event(
    kind: str = "create", patch: Any = None, instance_id: str = "01hx0000000000000000000000"
) -> dict[str, Any]:
    """An event in ThreadDB's shape, as the collection layer builds it."""
    return {
        "timestamp": 1_700_000_000_000_000_000,
        "_id": "0000018bcfe56800",
        "collection_name": "Dog",
        "patch": {"type": kind, "instance_id": instance_id, "json_patch": patch},
    }


# --------------------------------------------------------------------------- validators


class TestThreadDBValidator:
    """ThreadDB TestNewCollection/WithWriteValidator."""

    def test_fido_create_passes(self) -> None:
        v = WriteValidator(DOG_VALIDATOR)
        v("bafkwriter", event("create", {"_id": "a", "Name": "Fido", "Comments": []}), None)

    def test_save_renaming_to_bob_is_rejected(self) -> None:
        v = WriteValidator(DOG_VALIDATOR)
        before = {"_id": "a", "Name": "Fido", "Comments": []}
        with pytest.raises(ScriptRejected, match="it returned false"):
            v("bafkwriter", event("save", {"Name": "Bob"}), before)

    def test_save_renaming_to_clyde_passes(self) -> None:
        v = WriteValidator(DOG_VALIDATOR)
        before = {"_id": "a", "Name": "Fido", "Comments": []}
        v("bafkwriter", event("save", {"Name": "Clyde"}), before)

    def test_delete_is_rejected(self) -> None:
        v = WriteValidator(DOG_VALIDATOR)
        before = {"_id": "a", "Name": "Clyde", "Comments": []}
        with pytest.raises(ScriptRejected):
            v("bafkwriter", event("delete", None), before)


class TestValidatorArguments:
    def test_writer_is_undefined_when_none(self) -> None:
        v = WriteValidator("return writer === undefined && typeof writer === 'undefined'")
        v(None, event(), None)
        with pytest.raises(ScriptRejected):
            v("bafkwriter", event(), None)

    def test_writer_is_the_string_given(self) -> None:
        v = WriteValidator("return writer === 'bafkalice'")
        v("bafkalice", event(), None)
        with pytest.raises(ScriptRejected):
            v("bafkbob", event(), None)

    def test_instance_is_null_when_none_and_an_object_otherwise(self) -> None:
        v = WriteValidator("return instance === null || instance.Name === 'Fido'")
        v(None, event(), None)
        v(None, event(), {"_id": "a", "Name": "Fido"})
        with pytest.raises(ScriptRejected):
            v(None, event(), {"_id": "a", "Name": "Rex"})

    def test_event_has_threaddb_shape(self) -> None:
        body = """
            return typeof event.timestamp === 'number' && event._id === '0000018bcfe56800'
                && event.collection_name === 'Dog' && event.patch.type === 'save'
                && event.patch.instance_id === 'x1' && event.patch.json_patch.Age === 3
        """
        WriteValidator(body)(None, event("save", {"Age": 3}, "x1"), {"_id": "x1"})

    def test_validator_cannot_change_callers_dicts(self) -> None:
        ev = event("create", {"Name": "Fido"})
        inst = {"_id": "a", "Name": "Fido"}
        v = WriteValidator("event.patch.json_patch.Name = 'X'; instance.Name = 'Y'; return true")
        v(None, ev, inst)
        assert ev["patch"]["json_patch"] == {"Name": "Fido"}
        assert inst == {"_id": "a", "Name": "Fido"}

    def test_writer_must_be_a_string(self) -> None:
        v = WriteValidator("return true")
        with pytest.raises(InvalidInput, match="writer must be a string"):
            v(b"bafk", event(), None)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "bad",
        [
            {"x": math.nan},
            {"x": math.inf},
            {"x": {1, 2}},
            {"x": object()},
        ],
        ids=["nan", "inf", "set", "object"],
    )
    def test_non_json_input_is_invalid_document(self, bad: dict[str, Any]) -> None:
        v = WriteValidator("return true")
        with pytest.raises(InvalidDocument, match="not JSON"):
            v(None, event("create", bad), None)
        with pytest.raises(InvalidDocument):
            v(None, event(), bad)


class TestOnlyTrueIsAccepted:
    @pytest.mark.parametrize(
        ("body", "shown"),
        [
            ("return false", "false"),
            ("return", "undefined"),
            ("", "undefined"),
            ("return null", "null"),
            ("return 1", "1"),
            ("return 'true'", '"true"'),
            ("return {ok: true}", '{"ok":true}'),
            ("return [true]", "[true]"),
            ("return new Boolean(true)", "true"),
            ("return function () {}", "a function"),
            ("return Symbol('s')", "a symbol"),
            ("return 10n", "10n"),
        ],
    )
    def test_anything_but_true_is_rejected(self, body: str, shown: str) -> None:
        with pytest.raises(ScriptRejected) as info:
            WriteValidator(body)(None, event(), None)
        assert str(info.value) == f"write rejected by the validator: it returned {shown}"

    def test_long_return_value_is_truncated(self) -> None:
        with pytest.raises(ScriptRejected) as info:
            WriteValidator("return 'x'.repeat(100000)")(None, event(), None)
        message = str(info.value)
        assert len(message) < 300
        assert message.endswith("\u2026")

    def test_rejection_is_a_write_rejected(self) -> None:
        from threadkit.errors import WriteRejected

        with pytest.raises(WriteRejected):
            WriteValidator("return false")(None, event(), None)


class TestThrownErrors:
    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            ("throw new Error('boom')", "write validator threw Error: boom"),
            ("throw new TypeError('bad \"x\"')", 'write validator threw TypeError: bad "x"'),
            ("throw 'plain string'", 'write validator threw "plain string"'),
            ("throw {code: 7}", 'write validator threw {"code":7}'),
            ("throw 42", "write validator threw 42"),
            ("throw undefined", "write validator threw undefined"),
            (
                "return notDefined.x",
                "write validator threw ReferenceError: 'notDefined' is not defined",
            ),
            (
                "return event.nothing.deeper",
                "write validator threw TypeError: cannot read property 'deeper' of undefined",
            ),
        ],
    )
    def test_thrown_error_is_script_error_with_js_message(self, body: str, expected: str) -> None:
        with pytest.raises(ScriptError) as info:
            WriteValidator(body)(None, event(), None)
        assert type(info.value) is ScriptError
        assert str(info.value) == expected

    def test_a_string_that_looks_like_an_interrupt_is_not_a_timeout(self) -> None:
        v = WriteValidator("throw 'InternalError: interrupted'")
        with pytest.raises(ScriptError) as info:
            v(None, event(), None)
        assert type(info.value) is ScriptError

    def test_error_whose_message_cannot_be_shown(self) -> None:
        body = "throw {toJSON: function () { throw 1 }, toString: function () { throw 2 }}"
        with pytest.raises(ScriptError, match="an unprintable object"):
            WriteValidator(body)(None, event(), None)

    def test_lone_surrogate_in_error_message_is_replaced(self) -> None:
        with pytest.raises(ScriptError) as info:
            WriteValidator("throw new Error('bad \\ud800 half')")(None, event(), None)
        assert "\ufffd" in str(info.value)

    def test_stack_overflow_is_script_error(self) -> None:
        body = "function down(n) { return down(n + 1) + 1 } return down(0)"
        with pytest.raises(ScriptError, match="stack overflow") as info:
            WriteValidator(body)(None, event(), None)
        assert type(info.value) is ScriptError

    def test_throw_null_reads_as_memory_or_null(self) -> None:
        # QuickJS throws null when it cannot allocate its own out-of-memory error, so the
        # two cannot be told apart; the message says both.
        with pytest.raises(ScriptMemoryError, match="or threw null"):
            WriteValidator("throw null")(None, event(), None)


class TestCompile:
    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            ("return (", "SyntaxError"),
            ("return true }", "SyntaxError"),
            ("var = 3", "SyntaxError"),
            ("if (true) { return true", "SyntaxError"),
        ],
    )
    def test_syntax_error_is_invalid_script(self, body: str, reason: str) -> None:
        with pytest.raises(InvalidScript, match=f"write validator does not compile: {reason}"):
            WriteValidator(body)

    def test_syntax_error_names_the_line(self) -> None:
        with pytest.raises(InvalidScript, match=r"\(line 3\)"):
            WriteValidator("var a = 1\nvar b = 2\nvar = 3\nreturn true")

    @pytest.mark.parametrize(
        "body",
        [
            "return true } globalThis.pwned = 1; function other() {",
            "return true } function _validate(writer, event, instance) { return true",
            "} while (true) {} function x() {",
        ],
    )
    def test_body_that_closes_the_wrapper_is_refused(self, body: str) -> None:
        with pytest.raises(InvalidScript, match=r"not a function body|does not compile"):
            WriteValidator(body, time_limit=FAST)

    def test_filter_body_that_closes_the_wrapper_is_refused(self) -> None:
        with pytest.raises(InvalidScript, match="closes the _filter function early"):
            ReadFilter("return instance } var leaked = 1; function y() {")

    def test_body_may_end_with_a_line_comment(self) -> None:
        WriteValidator("return true // always")(None, event(), None)

    def test_body_is_kept_verbatim(self) -> None:
        body = "  return true\n"
        v = WriteValidator(body)
        assert v.body == body

    @pytest.mark.parametrize("body", [None, b"return true", 3])
    def test_non_string_body_is_invalid_script(self, body: Any) -> None:
        with pytest.raises(InvalidScript, match="must be a string"):
            WriteValidator(body)

    def test_nul_in_body_is_invalid_script(self) -> None:
        with pytest.raises(InvalidScript, match="NUL"):
            WriteValidator("return true\x00")

    def test_lone_surrogate_in_body_is_invalid_script(self) -> None:
        with pytest.raises(InvalidScript, match="not valid Unicode"):
            WriteValidator("return '\ud800'")

    @pytest.mark.parametrize("limit", [0, -1, math.nan, math.inf, True, "1"])
    def test_bad_time_limit(self, limit: Any) -> None:
        with pytest.raises(InvalidInput, match="time_limit"):
            WriteValidator("return true", time_limit=limit)

    @pytest.mark.parametrize("limit", [0, 1000, 1.5e7, True, "32"])
    def test_bad_memory_limit(self, limit: Any) -> None:
        with pytest.raises(InvalidInput, match="memory_limit"):
            WriteValidator("return true", memory_limit=limit)

    def test_defaults_and_repr(self) -> None:
        v = WriteValidator("return true")
        assert v.time_limit == DEFAULT_TIME_LIMIT == 1.0
        assert v.memory_limit == DEFAULT_MEMORY_LIMIT == 32 * 1024 * 1024
        assert repr(v) == ("WriteValidator('return true', time_limit=1.0, memory_limit=33554432)")
        assert "ReadFilter('return instance'" in repr(ReadFilter("return instance"))


class TestTimeLimit:
    def test_while_true_validator_is_interrupted_and_the_next_call_works(self) -> None:
        body = "if (event.patch.type === 'delete') { while (true) {} } return true"
        v = WriteValidator(body, time_limit=FAST)
        start = time.monotonic()
        with pytest.raises(ScriptTimeout) as info:
            v(None, event("delete"), {"_id": "a"})
        elapsed = time.monotonic() - start
        assert str(info.value) == "write validator ran longer than 0.2 s and was interrupted"
        assert FAST * 0.9 <= elapsed < FAST + 10.0  # CPU-time limit: slack for a loaded box
        v(None, event("create"), None)  # the next call works
        with pytest.raises(ScriptTimeout):
            v(None, event("delete"), {"_id": "a"})
        v(None, event("save"), {"_id": "a"})

    def test_default_limit_is_one_second(self) -> None:
        v = WriteValidator("while (true) {}")
        start = time.monotonic()
        with pytest.raises(ScriptTimeout, match=r"ran longer than 1\.0 s and was interrupted"):
            v(None, event(), None)
        elapsed = time.monotonic() - start
        assert 0.9 <= elapsed < 15.0

    def test_catch_cannot_swallow_the_interrupt(self) -> None:
        v = WriteValidator("try { while (true) {} } catch (e) {} return true", time_limit=FAST)
        with pytest.raises(ScriptTimeout):
            v(None, event(), None)

    def test_timeout_is_a_script_error(self) -> None:
        with pytest.raises(ScriptError):
            WriteValidator("for (;;) {}", time_limit=FAST)(None, event(), None)

    def test_globals_are_fresh_after_a_timeout(self) -> None:
        body = """
            globalThis.calls = (globalThis.calls || 0) + 1
            if (event.patch.type === 'delete') { while (true) {} }
            return calls === 1
        """
        v = WriteValidator(body, time_limit=FAST)
        with pytest.raises(ScriptTimeout):
            v(None, event("delete"), None)
        v(None, event("create"), None)  # calls restarted at 1 in the rebuilt runtime

    def test_while_true_filter_is_interrupted_and_the_next_call_works(self) -> None:
        f = ReadFilter("if (instance.spin) { while (true) {} } return instance", time_limit=FAST)
        with pytest.raises(ScriptTimeout, match=r"read filter ran longer than 0\.2 s"):
            f(None, {"_id": "a", "spin": True})
        assert f(None, {"_id": "b", "spin": False}) == {"_id": "b", "spin": False}

    def test_runaway_top_level_code_cannot_hang_compilation(self) -> None:
        start = time.monotonic()
        with pytest.raises(InvalidScript):
            WriteValidator("} while (true) {} function x() {", time_limit=FAST)
        assert time.monotonic() - start < FAST + 10.0


class TestMemoryLimit:
    @pytest.mark.parametrize(
        "hog",
        [
            "var a = []; while (true) { a.push({n: a.length}) }",
            "var s = 'x'; while (true) { s = s + s }",
            "return new Array(1e9).fill(0).length",
        ],
        ids=["objects", "string", "array"],
    )
    def test_memory_hog_is_stopped_and_the_next_call_works(self, hog: str) -> None:
        body = f"if (event.patch.type === 'delete') {{ {hog} }} return true"
        v = WriteValidator(body, memory_limit=SMALL, time_limit=5.0)
        with pytest.raises(ScriptMemoryError, match="ran out of memory") as info:
            v(None, event("delete"), None)
        assert "4 MiB" in str(info.value)
        v(None, event("create"), None)

    def test_leak_across_calls_is_cleared_by_the_rebuild(self) -> None:
        body = """
            globalThis.keep = globalThis.keep || []
            keep.push(new Array(50000).fill(keep.length))
            return true
        """
        v = WriteValidator(body, memory_limit=SMALL)
        with pytest.raises(ScriptMemoryError):
            for _ in range(1000):
                v(None, event(), None)
        v(None, event(), None)  # a fresh runtime: keep is empty again

    def test_memory_hog_filter(self) -> None:
        f = ReadFilter(
            "if (instance.hog) { var a = []; while (true) { a.push([a]) } } return instance",
            memory_limit=SMALL,
        )
        with pytest.raises(ScriptMemoryError):
            f(None, {"_id": "a", "hog": True})
        assert f(None, {"_id": "a"}) == {"_id": "a"}

    def test_memory_error_is_a_script_error(self) -> None:
        v = WriteValidator("var s = 'x'; while (true) { s += s } ", memory_limit=SMALL)
        with pytest.raises(ScriptError):
            v(None, event(), None)


class TestJSONSafety:
    """Values cross as JSON decoded by the engine, never spliced into source."""

    @pytest.mark.parametrize("text", TRICKY)
    def test_validator_sees_tricky_strings_exactly(self, text: str) -> None:
        v = WriteValidator(
            "return event.patch.json_patch.s === instance.s && writer === instance.w"
        )
        v(text, event("save", {"s": text}), {"_id": "a", "s": text, "w": text})
        with pytest.raises(ScriptRejected):
            v(text, event("save", {"s": text + "!"}), {"_id": "a", "s": text, "w": text})

    @pytest.mark.parametrize("text", TRICKY)
    def test_splice_attempts_do_not_pass_a_strict_validator(self, text: str) -> None:
        v = WriteValidator("return instance.Name === 'safe'")
        with pytest.raises(ScriptRejected):
            v(None, event(), {"_id": "a", "Name": text})

    def test_filter_round_trips_tricky_documents(self) -> None:
        doc = {
            "_id": "a",
            "strings": TRICKY,
            "nested": {t: t for t in TRICKY},
            "numbers": [0, -1, 2**53, 1.5, -0.25, 1e300],
            "flags": [True, False, None],
        }
        assert ReadFilter("return instance")("reader", doc) == doc

    def test_filter_sees_tricky_reader(self) -> None:
        f = ReadFilter("instance.r = reader; return instance")
        for text in TRICKY:
            assert f(text, {"_id": "a"}) == {"_id": "a", "r": text}


# --------------------------------------------------------------------------- filters


class TestReadFilter:
    def test_threaddb_filter_rewrites_name(self) -> None:
        f = ReadFilter('\n\t\t\t\tinstance.Name = "Clyde"\n\t\t\t\treturn instance\n\t\t\t')
        doc = {"_id": "a", "Name": "Fido", "Comments": []}
        assert f("bafkreader", doc) == {"_id": "a", "Name": "Clyde", "Comments": []}
        assert doc["Name"] == "Fido"  # the caller's dict is untouched

    @pytest.mark.parametrize("body", ["return null", "return undefined", "return", ""])
    def test_null_or_undefined_hides(self, body: str) -> None:
        assert ReadFilter(body)(None, {"_id": "a"}) is None

    def test_reader_is_undefined_when_none(self) -> None:
        f = ReadFilter("return reader === undefined ? instance : null")
        assert f(None, {"_id": "a"}) == {"_id": "a"}
        assert f("bafkreader", {"_id": "a"}) is None

    def test_filter_may_build_a_new_object(self) -> None:
        f = ReadFilter("return {_id: instance._id, public: true}")
        assert f(None, {"_id": "a", "secret": 1}) == {"_id": "a", "public": True}

    @pytest.mark.parametrize(
        ("body", "shown"),
        [
            ("return 5", "5"),
            ("return 'text'", '"text"'),
            ("return true", "true"),
            ("return [instance]", '[{"_id":"a"}]'),
            ("return {toJSON: function () { return 3 }}", "3"),
            ("return new Date(0)", '"1970-01-01T00:00:00.000Z"'),
        ],
    )
    def test_non_object_return_is_script_error(self, body: str, shown: str) -> None:
        with pytest.raises(ScriptError) as info:
            ReadFilter(body)(None, {"_id": "a"})
        assert str(info.value) == (
            f"read filter must return an object, null or undefined; it returned {shown}"
        )

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            ("var o = {}; o.self = o; return o", "circular"),
            ("return {big: 1n}", "bigint"),
        ],
    )
    def test_object_that_is_not_json_is_script_error(self, body: str, reason: str) -> None:
        with pytest.raises(ScriptError, match=f"cannot be written as JSON: .*{reason}"):
            ReadFilter(body)(None, {"_id": "a"})

    def test_thrown_error_is_script_error(self) -> None:
        with pytest.raises(ScriptError, match="read filter threw Error: no"):
            ReadFilter("throw new Error('no')")(None, {"_id": "a"})

    def test_syntax_error_is_invalid_script(self) -> None:
        with pytest.raises(InvalidScript, match="read filter does not compile: SyntaxError"):
            ReadFilter("return {")

    @pytest.mark.parametrize("bad", [None, [1], "doc", 5])
    def test_instance_must_be_an_object(self, bad: Any) -> None:
        with pytest.raises(InvalidDocument, match="JSON object"):
            ReadFilter("return instance")(None, bad)

    def test_reader_must_be_a_string(self) -> None:
        with pytest.raises(InvalidInput, match="reader must be a string"):
            ReadFilter("return instance")(7, {"_id": "a"})  # type: ignore[arg-type]

    def test_deeply_nested_instance_is_refused_or_handled(self) -> None:
        doc: dict[str, Any] = {}
        for _ in range(5000):
            doc = {"c": doc}
        with pytest.raises(InvalidDocument, match="nested too deeply"):
            ReadFilter("return instance")(None, {"_id": "a", "d": doc})
        shallow: dict[str, Any] = {}
        for _ in range(300):
            shallow = {"c": shallow}
        assert ReadFilter("return instance")(None, {"_id": "a", "d": shallow}) == {
            "_id": "a",
            "d": shallow,
        }

    def test_non_json_instance_is_invalid_document(self) -> None:
        with pytest.raises(InvalidDocument, match="not JSON"):
            ReadFilter("return instance")(None, {"_id": "a", "x": math.nan})


# --------------------------------------------------------------------------- threads


class TestThreads:
    def test_one_validator_shared_by_many_threads(self) -> None:
        v = WriteValidator("return event.patch.json_patch.n % 2 === 0")
        errors: list[BaseException] = []
        outcomes: list[tuple[int, bool]] = []
        lock = threading.Lock()

        def work(offset: int) -> None:
            try:
                for n in range(offset, offset + 150):
                    try:
                        v("w", event("save", {"n": n}), None)
                        ok = True
                    except ScriptRejected:
                        ok = False
                    with lock:
                        outcomes.append((n, ok))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i * 1000,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(outcomes) == 600
        assert all(ok == (n % 2 == 0) for n, ok in outcomes)

    def test_timeout_in_one_thread_does_not_break_others(self) -> None:
        v = WriteValidator(
            "if (event.patch.type === 'delete') { while (true) {} } return true", time_limit=FAST
        )
        results: list[str] = []

        def spin() -> None:
            try:
                v(None, event("delete"), None)
            except ScriptTimeout:
                results.append("timeout")

        def calm() -> None:
            for _ in range(20):
                v(None, event("create"), None)
            results.append("calm")

        threads = [threading.Thread(target=spin), threading.Thread(target=calm)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ["calm", "timeout"]

    def test_compiled_in_one_thread_called_in_another(self) -> None:
        made: list[ReadFilter] = []
        thread = threading.Thread(target=lambda: made.append(ReadFilter("return instance")))
        thread.start()
        thread.join()
        body = "function d(n) { return n === 0 ? 0 : 1 + d(n - 1) } instance.d = d(200); "
        f = ReadFilter(body + "return instance")
        assert made[0](None, {"_id": "a"}) == {"_id": "a"}
        out: list[Any] = []
        thread = threading.Thread(target=lambda: out.append(f(None, {"_id": "b"})))
        thread.start()
        thread.join()
        assert out == [{"_id": "b", "d": 200}]


def test_per_call_overhead_is_small() -> None:
    """A loose guard: a small document costs well under a millisecond per call."""
    v = WriteValidator(DOG_VALIDATOR)
    f = ReadFilter("instance.Name = 'Clyde'; return instance")
    ev = event("create", {"_id": "a", "Name": "Fido", "Comments": []})
    doc = {"_id": "a", "Name": "Fido", "Age": 3, "Comments": []}
    n = 500
    start = time.perf_counter()
    for _ in range(n):
        v("bafkwriter", ev, None)
    validator_us = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for _ in range(n):
        f("bafkreader", doc)
    filter_us = (time.perf_counter() - start) / n * 1e6
    assert validator_us < 1000
    assert filter_us < 1000
