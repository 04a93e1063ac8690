"""Collection schemas: preparation, validation, index paths, schema paths."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

from threadkit.db.schema import (
    DEFAULT_SCHEMA,
    MAX_SCHEMA_PATHS,
    SchemaValidator,
    check_index_path,
    index_path_type,
    prepare_schema,
    schema_paths,
)
from threadkit.errors import InvalidIndex, InvalidSchema, SchemaViolation, WriteRejected

D4 = "http://json-schema.org/draft-04/schema#"
D7 = "http://json-schema.org/draft-07/schema#"
D2020 = "https://json-schema.org/draft/2020-12/schema"


def go_schema(root: str, definitions: dict[str, Any]) -> dict[str, Any]:
    """A schema shaped like go-threads' util.SchemaFromInstance(&T{}, false)."""
    return {"$schema": D4, "$ref": f"#/definitions/{root}", "definitions": definitions}


def ref(name: str) -> dict[str, Any]:
    return {"$schema": D4, "$ref": f"#/definitions/{name}"}


COMMENT = {
    "required": ["Body"],
    "properties": {"Body": {"type": "string"}},
    "additionalProperties": False,
    "type": "object",
}
TOYS = {
    "required": ["Favorite", "Names"],
    "properties": {
        "Favorite": {"type": "string"},
        "Names": {"items": {"type": "string"}, "type": "array"},
    },
    "additionalProperties": False,
    "type": "object",
}
PERSON2 = go_schema(
    "Person2",
    {
        "Comment": COMMENT,
        "Person2": {
            "required": ["_id", "Name", "Age", "Toys", "Comments"],
            "properties": {
                "_id": {"type": "string"},
                "Name": {"type": "string"},
                "Age": {"type": "integer"},
                "Toys": ref("Toys"),
                "Comments": {"items": ref("Comment"), "type": "array"},
            },
            "additionalProperties": False,
            "type": "object",
        },
        "Toys": TOYS,
    },
)
GOOD_PERSON = {
    "_id": "01hx",
    "Name": "Foo",
    "Age": 42,
    "Toys": {"Favorite": "Ball", "Names": ["Ball", "Frisbee"]},
    "Comments": [{"Body": "hi"}],
}
BOOK: dict[str, Any] = {
    "type": "object",
    "properties": {
        "_id": {"type": "string"},
        "Title": {"type": "string"},
        "Banned": {"type": "boolean"},
        "Meta": {
            "type": "object",
            "properties": {"TotalReads": {"type": "integer"}, "Rating": {"type": "number"}},
        },
    },
}


# --------------------------------------------------------------------------- prepare


class TestPrepareSchema:
    def test_none_gives_the_default(self) -> None:
        schema = prepare_schema(None)
        assert schema == {
            "type": "object",
            "properties": {"_id": {"type": "string"}},
            "required": ["_id"],
        }
        schema["properties"]["x"] = {}
        assert "x" not in DEFAULT_SCHEMA["properties"]  # a fresh copy every time

    def test_schema_with_string_id_is_unchanged(self) -> None:
        assert prepare_schema(BOOK) == BOOK
        assert prepare_schema(PERSON2) == PERSON2

    def test_missing_id_is_added_without_mutating_the_input(self) -> None:
        schema = {"type": "object", "properties": {"Name": {"type": "string"}}}
        before = copy.deepcopy(schema)
        prepared = prepare_schema(schema)
        assert schema == before
        assert prepared["properties"] == {"Name": {"type": "string"}, "_id": {"type": "string"}}
        assert "required" not in prepared

    def test_empty_schema_gets_an_id(self) -> None:
        # ThreadDB TestEmptySchema: go-threads refuses {} (ErrInvalidCollectionSchema);
        # threadkit adds the string _id instead (docs/design.md §6): {} means "any object".
        prepared = prepare_schema({})
        assert prepared == {"properties": {"_id": {"type": "string"}}}
        validator = SchemaValidator({})
        validator.validate({"_id": "a", "anything": [1, {"x": None}]})
        with pytest.raises(SchemaViolation, match=r"at \$\['_id'\]: 5 is not of type 'string'"):
            validator.validate({"_id": 5})

    def test_go_struct_without_id_gets_it_in_the_root_definition(self) -> None:
        # ThreadDB TestNewCollection/Fail/WithoutInstanceID: refused there, repaired here.
        failing = go_schema(
            "FailingType",
            {
                "FailingType": {
                    "required": ["IDontHaveAnIDField"],
                    "properties": {"IDontHaveAnIDField": {"type": "integer"}},
                    "additionalProperties": False,
                    "type": "object",
                }
            },
        )
        prepared = prepare_schema(failing)
        props = prepared["definitions"]["FailingType"]["properties"]
        assert props["_id"] == {"type": "string"}
        assert "properties" not in prepared  # not beside the $ref, where draft 4 ignores it
        SchemaValidator(prepared).validate({"_id": "a", "IDontHaveAnIDField": 1})

    def test_prepare_is_idempotent(self) -> None:
        once = prepare_schema({"properties": {"a": {}}})
        assert prepare_schema(once) == once

    def test_id_through_a_ref_is_accepted(self) -> None:
        schema = {
            "properties": {"_id": {"$ref": "#/definitions/id"}},
            "definitions": {"id": {"type": "string", "minLength": 1}},
        }
        assert prepare_schema(schema) == schema

    @pytest.mark.parametrize(
        ("id_schema", "shown"),
        [
            ({"type": "integer"}, "integer"),
            ({"type": "object"}, "object"),
            ({}, "any type"),
            ({"type": ["string", "null"]}, "string or null"),
            ({"type": ["string", "integer"]}, "string|integer"),
            (True, "any type"),
        ],
    )
    def test_id_that_is_not_a_string_is_invalid(self, id_schema: Any, shown: str) -> None:
        with pytest.raises(InvalidSchema, match=f"_id must be of type string, not {shown}"):
            prepare_schema({"properties": {"_id": id_schema}})

    def test_id_not_string_inside_go_definition(self) -> None:
        schema = go_schema(
            "T", {"T": {"type": "object", "properties": {"_id": {"type": "integer"}}}}
        )
        with pytest.raises(InvalidSchema, match="_id must be of type string"):
            prepare_schema(schema)

    @pytest.mark.parametrize("root_type", ["array", "string", ["array", "null"]])
    def test_root_must_allow_objects(self, root_type: Any) -> None:
        with pytest.raises(InvalidSchema, match="root must describe an object"):
            prepare_schema({"type": root_type})

    def test_root_may_allow_objects_and_more(self) -> None:
        prepare_schema({"type": ["object", "null"]})

    @pytest.mark.parametrize("bad", [[], "schema", 5, True, b"{}"])
    def test_non_object_schema_is_invalid(self, bad: Any) -> None:
        with pytest.raises(InvalidSchema, match="must be a JSON object"):
            prepare_schema(bad)

    def test_non_json_schema_is_invalid(self) -> None:
        with pytest.raises(InvalidSchema, match="not JSON"):
            prepare_schema({"properties": {"a": {"maximum": float("nan")}}})
        with pytest.raises(InvalidSchema, match="not JSON"):
            prepare_schema({"properties": {"a": {"enum": [object()]}}})

    @pytest.mark.parametrize(
        ("schema", "where"),
        [
            ({"type": 5}, r"\$\.type"),
            ({"type": "object", "properties": {"a": {"minimum": "x"}}}, r"\$\.properties\.a"),
            ({"required": "Name"}, r"\$\.required"),
            ({"properties": {"a": {"pattern": "("}}}, "is not a 'regex'"),
            ({"$schema": D4, "exclusiveMinimum": 5}, "exclusiveMinimum"),
        ],
    )
    def test_invalid_json_schema_names_the_part(self, schema: dict[str, Any], where: str) -> None:
        with pytest.raises(InvalidSchema, match=f"not a valid JSON Schema at .*{where}|{where}"):
            prepare_schema(schema)

    def test_dialect_decides_validity(self) -> None:
        # exclusiveMinimum is a boolean in draft 4 and a number from draft 6 on.
        prepare_schema({"$schema": D7, "exclusiveMinimum": 5})
        with pytest.raises(InvalidSchema):
            prepare_schema({"$schema": D4, "exclusiveMinimum": 5})

    @pytest.mark.parametrize("uri", ["http://example.com/schema", "draft-07", 7])
    def test_unknown_dialect_is_invalid(self, uri: Any) -> None:
        with pytest.raises(InvalidSchema, match=r"\$schema"):
            prepare_schema({"$schema": uri})

    @pytest.mark.parametrize(
        "uri",
        [
            D4,
            "http://json-schema.org/draft-04/schema",
            "https://json-schema.org/draft-06/schema#",
            D7,
            "https://json-schema.org/draft/2019-09/schema",
            D2020,
        ],
    )
    def test_known_dialects(self, uri: str) -> None:
        prepare_schema({"$schema": uri, "type": "object"})

    @pytest.mark.parametrize(
        "target",
        [
            "http://example.com/other.json",
            "https://169.254.169.254/latest/meta-data",
            "file:///etc/passwd",
            "other.json#/definitions/a",
            "#anchor",
        ],
    )
    def test_non_local_ref_is_refused(self, target: str) -> None:
        schema = {"properties": {"a": {"$ref": target}}}
        with pytest.raises(InvalidSchema, match="not a local JSON pointer"):
            prepare_schema(schema)

    def test_dangling_ref_is_refused(self) -> None:
        with pytest.raises(InvalidSchema, match="does not resolve"):
            prepare_schema({"properties": {"a": {"$ref": "#/definitions/missing"}}})

    def test_ref_to_a_non_schema_is_refused(self) -> None:
        schema = {"properties": {"a": {"$ref": "#/required"}}, "required": ["a"]}
        with pytest.raises(InvalidSchema, match="does not point at a schema"):
            prepare_schema(schema)

    @pytest.mark.parametrize(
        "schema",
        [
            {"$ref": "#"},
            {"allOf": [{"$ref": "#"}]},
            {"properties": {"a": {"$ref": "#/properties/a"}}},
            {
                "properties": {"a": {"$ref": "#/definitions/x"}},
                "definitions": {
                    "x": {"anyOf": [{"$ref": "#/definitions/y"}]},
                    "y": {"not": {"$ref": "#/definitions/x"}},
                },
            },
        ],
    )
    def test_ref_loop_that_never_ends_is_refused(self, schema: dict[str, Any]) -> None:
        with pytest.raises(InvalidSchema, match=r"\$ref loop"):
            prepare_schema(schema)

    def test_recursive_schema_through_a_property_is_fine(self) -> None:
        node = {
            "$ref": "#/definitions/node",
            "definitions": {
                "node": {
                    "type": "object",
                    "properties": {
                        "kids": {"type": "array", "items": {"$ref": "#/definitions/node"}},
                        "next": {"$ref": "#/definitions/node"},
                    },
                }
            },
        }
        validator = SchemaValidator(node)
        assert validator.is_valid({"_id": "a", "next": {"next": {"kids": [{}]}}})
        with pytest.raises(SchemaViolation, match=r"\$\.next\.kids\[0\]"):
            validator.validate({"_id": "a", "next": {"kids": [5]}})

    def test_nested_id_is_refused(self) -> None:
        schema = {"properties": {"a": {"$id": "http://example.com/a", "type": "string"}}}
        with pytest.raises(InvalidSchema, match=r"nested \$id"):
            prepare_schema(schema)

    def test_root_id_is_fine(self) -> None:
        schema = {
            "$id": "https://example.com/person.schema.json",
            "properties": {"a": {"$ref": "#/definitions/a"}},
            "definitions": {"a": {"type": "string"}},
        }
        validator = SchemaValidator(schema)
        validator.validate({"_id": "x", "a": "y"})
        assert not validator.is_valid({"_id": "x", "a": 1})

    def test_property_named_like_keywords_is_data(self) -> None:
        schema = {"properties": {"$ref": {"type": "string"}, "id": {"type": "integer"}}}
        validator = SchemaValidator({"$schema": D4, **schema})
        validator.validate({"_id": "x", "$ref": "http://nowhere", "id": 3})


# --------------------------------------------------------------------------- validate


class TestSchemaValidator:
    def test_threaddb_person_schema(self) -> None:
        validator = SchemaValidator(PERSON2)
        assert validator.compiled
        validator.validate(GOOD_PERSON)
        assert validator.is_valid(GOOD_PERSON)

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"Age": "42"}, r"at \$\.Age: '42' is not of type 'integer'"),
            ({"Age": 4.5}, r"at \$\.Age: 4\.5 is not of type 'integer'"),
            ({"Comments": [{"Body": 1}]}, r"at \$\.Comments\[0\]\.Body: 1 is not of type 'string'"),
            ({"Toys": {"Favorite": 5, "Names": []}}, r"at \$\.Toys\.Favorite: 5 is not of type"),
            ({"extra": True}, r"at \$: Additional properties are not allowed \('extra'"),
            ({"Name": None}, r"at \$\.Name: None is not of type 'string'"),
        ],
    )
    def test_violation_names_path_and_reason(self, change: dict[str, Any], message: str) -> None:
        validator = SchemaValidator(PERSON2)
        doc = {**GOOD_PERSON, **change}
        assert not validator.is_valid(doc)
        with pytest.raises(SchemaViolation, match=f"^document does not match the schema {message}"):
            validator.validate(doc)

    def test_missing_required_field(self) -> None:
        # ThreadDB TestInvalidActions: a PersonFake (no Age) is refused.
        doc = {k: v for k, v in GOOD_PERSON.items() if k != "Age"}
        with pytest.raises(SchemaViolation, match=r"at \$: 'Age' is a required property"):
            SchemaValidator(PERSON2).validate(doc)

    @pytest.mark.parametrize("doc", [[], "x", 5, None])
    def test_non_object_document(self, doc: Any) -> None:
        with pytest.raises(SchemaViolation, match="is not of type 'object'"):
            SchemaValidator(None).validate(doc)

    def test_default_schema_requires_id(self) -> None:
        validator = SchemaValidator(None)
        validator.validate({"_id": "a", "x": 1})
        with pytest.raises(SchemaViolation, match="'_id' is a required property"):
            validator.validate({"x": 1})

    def test_violation_is_a_write_rejected(self) -> None:
        with pytest.raises(WriteRejected):
            SchemaValidator(BOOK).validate({"_id": "a", "Title": 1})

    def test_long_message_is_clipped(self) -> None:
        validator = SchemaValidator({"properties": {"a": {"type": "string"}}})
        with pytest.raises(SchemaViolation) as info:
            validator.validate({"_id": "x", "a": list(range(10000))})
        assert len(str(info.value)) < 400

    def test_validation_does_not_change_the_document(self) -> None:
        schema = {"properties": {"n": {"type": "integer", "default": 7}}}
        doc = {"_id": "a"}
        SchemaValidator(schema).validate(doc)
        assert doc == {"_id": "a"}

    def test_format_is_an_annotation(self) -> None:
        validator = SchemaValidator({"properties": {"mail": {"type": "string", "format": "email"}}})
        validator.validate({"_id": "a", "mail": "not an address"})

    def test_draft4_semantics(self) -> None:
        schema = {"$schema": D4, "properties": {"n": {"maximum": 5, "exclusiveMaximum": True}}}
        validator = SchemaValidator(schema)
        assert validator.compiled
        assert validator.is_valid({"_id": "a", "n": 4})
        assert not validator.is_valid({"_id": "a", "n": 5})

    def test_2020_12_falls_back_to_jsonschema(self) -> None:
        schema = {
            "$schema": D2020,
            "type": "object",
            "properties": {
                "pair": {"type": "array", "prefixItems": [{"type": "string"}], "items": False}
            },
            "$defs": {"unused": {"type": "string"}},
        }
        validator = SchemaValidator(schema)
        assert not validator.compiled
        assert validator.is_valid({"_id": "a", "pair": ["x"]})
        assert not validator.is_valid({"_id": "a", "pair": ["x", 1]})
        with pytest.raises(SchemaViolation, match=r"at \$\.pair\[0\]: 1 is not of type 'string'"):
            validator.validate({"_id": "a", "pair": [1]})

    def test_uncompilable_draft7_schema_falls_back_to_jsonschema(self) -> None:
        # Valid draft 7, but fastjsonschema takes the {"$ref": …} inside `enum` for a
        # reference and cannot compile it; jsonschema treats it as the data it is.
        schema = {
            "$schema": D7,
            "properties": {"kind": {"enum": [{"$ref": "#/nowhere"}, "plain"]}},
        }
        validator = SchemaValidator(schema)
        assert not validator.compiled
        assert validator.is_valid({"_id": "a", "kind": "plain"})
        assert validator.is_valid({"_id": "a", "kind": {"$ref": "#/nowhere"}})
        with pytest.raises(SchemaViolation, match=r"at \$\.kind: 'other' is not one of"):
            validator.validate({"_id": "a", "kind": "other"})

    def test_remote_looking_data_is_never_fetched(self) -> None:
        schema = {"properties": {"k": {"const": {"$ref": "http://127.0.0.1:9/never"}}}}
        start = time.monotonic()
        validator = SchemaValidator(schema)
        assert validator.is_valid({"_id": "a", "k": {"$ref": "http://127.0.0.1:9/never"}})
        assert time.monotonic() - start < 2

    def test_same_verdict_compiled_or_not(self) -> None:
        schema = {
            "properties": {
                "n": {"type": "integer", "minimum": 0, "multipleOf": 2},
                "s": {"type": "string", "pattern": "^a", "maxLength": 3},
                "t": {"type": "array", "items": {"type": "number"}, "uniqueItems": True},
                "o": {
                    "type": "object",
                    "required": ["x"],
                    "additionalProperties": False,
                    "properties": {"x": {"enum": [1, "1", None]}},
                },
                "c": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            }
        }
        fast = SchemaValidator(schema)
        slow = SchemaValidator(
            {"$schema": "https://json-schema.org/draft/2019-09/schema", **schema}
        )
        assert fast.compiled and not slow.compiled
        docs: list[Any] = [
            {"_id": "a"},
            {"_id": "a", "n": 4},
            {"_id": "a", "n": 3},
            {"_id": "a", "n": -2},
            {"_id": "a", "n": 4.0},
            {"_id": "a", "n": True},
            {"_id": "a", "s": "abc"},
            {"_id": "a", "s": "abcd"},
            {"_id": "a", "s": "ba"},
            {"_id": "a", "t": [1, 2.5]},
            {"_id": "a", "t": [1, 1]},
            {"_id": "a", "t": [1, "x"]},
            {"_id": "a", "o": {"x": None}},
            {"_id": "a", "o": {"x": 2}},
            {"_id": "a", "o": {}},
            {"_id": "a", "o": {"x": 1, "y": 2}},
            {"_id": "a", "c": "s"},
            {"_id": "a", "c": 1.5},
            {"_id": 1},
            [],
        ]
        for doc in docs:
            assert fast.is_valid(doc) == slow.is_valid(doc), doc
            fast_ok = _raises(fast, doc)
            assert fast_ok == _raises(slow, doc), doc
            assert fast_ok == fast.is_valid(doc)

    def test_deeply_nested_document_is_a_violation(self) -> None:
        schema = {
            "$ref": "#/definitions/n",
            "definitions": {
                "n": {"type": "object", "properties": {"c": {"$ref": "#/definitions/n"}}}
            },
        }
        doc: dict[str, Any] = {}
        for _ in range(5000):
            doc = {"c": doc}
        doc["_id"] = "a"
        validator = SchemaValidator(schema)
        assert not validator.is_valid(doc)
        with pytest.raises(SchemaViolation, match="nested too deeply"):
            validator.validate(doc)

    def test_schema_property_is_a_copy(self) -> None:
        validator = SchemaValidator(BOOK)
        copied = validator.schema
        copied["properties"].clear()
        assert validator.schema == BOOK
        assert "SchemaValidator(" in repr(validator)

    def test_invalid_schema_is_refused(self) -> None:
        with pytest.raises(InvalidSchema):
            SchemaValidator({"type": "array"})


def _raises(validator: SchemaValidator, doc: Any) -> bool:
    try:
        validator.validate(doc)
    except SchemaViolation:
        return False
    return True


# --------------------------------------------------------------------------- index paths


class TestIndexPaths:
    """ThreadDB TestAddIndex and TestNewCollection index cases, on the Person2 schema."""

    @pytest.mark.parametrize(
        ("path", "json_type"),
        [("Name", "string"), ("Age", "integer"), ("Toys.Favorite", "string")],
    )
    def test_scalar_paths_are_indexable(self, path: str, json_type: str) -> None:
        assert check_index_path(prepare_schema(PERSON2), path) == json_type

    def test_number_and_boolean_are_indexable(self) -> None:
        assert check_index_path(BOOK, "Meta.Rating") == "number"
        assert check_index_path(BOOK, "Meta.TotalReads") == "integer"
        assert check_index_path(BOOK, "Banned") == "boolean"

    @pytest.mark.parametrize(
        ("path", "message"),
        [
            ("Toys", "cannot index 'Toys': it is an object"),
            ("Comments", "cannot index 'Comments': it is an array"),
            ("Toys.Names", "cannot index 'Toys.Names': it is an array"),
            ("Bad.Path", "the schema has no field 'Bad.Path': the root has no property 'Bad'"),
            ("Missing", "the schema has no field 'Missing'"),
            ("Toys.Missing", "Toys has no property 'Missing'"),
            ("Name.Length", "Name has no property 'Length'"),
            ("_id", "cannot index '_id': it is always uniquely indexed"),
        ],
    )
    def test_bad_paths_fail_with_a_clear_message(self, path: str, message: str) -> None:
        with pytest.raises(InvalidIndex, match=message.replace(".", r"\.").replace("(", r"\(")):
            check_index_path(prepare_schema(PERSON2), path)

    @pytest.mark.parametrize("path", ["", ".Name", "Name.", "Toys..Favorite", None, 5])
    def test_malformed_paths(self, path: Any) -> None:
        with pytest.raises(InvalidIndex):
            check_index_path(PERSON2, path)

    @pytest.mark.parametrize(
        ("field", "message"),
        [
            ({}, "a field with no type"),
            ({"type": ["string", "integer"]}, "several types"),
            ({"type": "null"}, "of type null"),
        ],
    )
    def test_untyped_or_mixed_fields_fail(self, field: dict[str, Any], message: str) -> None:
        with pytest.raises(InvalidIndex, match=message):
            check_index_path({"properties": {"f": field}}, "f")

    def test_nullable_scalar_is_indexable(self) -> None:
        assert (
            check_index_path({"properties": {"f": {"type": ["string", "null"]}}}, "f") == "string"
        )

    def test_type_from_enum_or_const(self) -> None:
        schema = {
            "properties": {"e": {"enum": ["a", "b"]}, "c": {"const": 3}, "m": {"enum": [1, 2.5]}}
        }
        assert index_path_type(schema, "e") == "string"
        assert index_path_type(schema, "c") == "integer"
        assert index_path_type(schema, "m") == "number"

    def test_defs_and_all_of_are_followed(self) -> None:
        schema = {
            "$schema": D2020,
            "allOf": [{"properties": {"meta": {"$ref": "#/$defs/meta"}}}],
            "$defs": {"meta": {"type": "object", "properties": {"n": {"type": "number"}}}},
        }
        assert index_path_type(schema, "meta") == "object"
        assert check_index_path(schema, "meta.n") == "number"

    def test_type_inferred_from_shape(self) -> None:
        schema = {"properties": {"o": {"properties": {}}, "a": {"items": {}}, "t": True}}
        assert index_path_type(schema, "o") == "object"
        assert index_path_type(schema, "a") == "array"
        assert index_path_type(schema, "t") == "any"


class TestSchemaPaths:
    def test_go_schema_paths(self) -> None:
        assert schema_paths(prepare_schema(PERSON2)) == {
            "_id",
            "Name",
            "Age",
            "Toys",
            "Toys.Favorite",
            "Toys.Names",
            "Comments",
        }

    def test_nested_and_combined_paths(self) -> None:
        schema = {
            "properties": {"_id": {"type": "string"}, "Meta": BOOK["properties"]["Meta"]},
            "anyOf": [{"properties": {"A": {}}}, {"properties": {"B": {"properties": {"C": {}}}}}],
            "if": {"properties": {"I": {}}},
            "then": {"properties": {"T": {}}},
        }
        assert schema_paths(schema) == {
            "_id",
            "Meta",
            "Meta.TotalReads",
            "Meta.Rating",
            "A",
            "B",
            "B.C",
            "I",
            "T",
        }

    def test_array_items_are_not_paths(self) -> None:
        schema = {"properties": {"list": {"type": "array", "items": {"properties": {"x": {}}}}}}
        assert schema_paths(schema) == {"list"}

    def test_recursive_ref_is_followed_once(self) -> None:
        schema = {
            "$ref": "#/definitions/n",
            "definitions": {"n": {"properties": {"v": {}, "next": {"$ref": "#/definitions/n"}}}},
        }
        assert schema_paths(schema) == {"v", "next"}

    def test_too_many_paths_is_refused(self) -> None:
        level = {"properties": {f"p{i}": {"$ref": "#/definitions/l2"} for i in range(30)}}
        schema = {
            "$ref": "#/definitions/l1",
            "definitions": {
                "l1": level,
                "l2": {"properties": {f"q{i}": {"$ref": "#/definitions/l3"} for i in range(30)}},
                "l3": {"properties": {f"r{i}": {} for i in range(30)}},
            },
        }
        assert MAX_SCHEMA_PATHS < 30 + 30 * 30 + 30 * 30 * 30
        with pytest.raises(InvalidSchema, match="more than"):
            schema_paths(schema)


def test_validate_speed_is_reasonable() -> None:
    """A loose guard: compiled validation of a small document is far under 100 µs."""
    validator = SchemaValidator(PERSON2)
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        validator.validate(GOOD_PERSON)
    assert (time.perf_counter() - start) / n < 100e-6


def test_prepared_schema_is_pure_json() -> None:
    schema = {"properties": {"t": {"enum": (1, 2)}}}
    prepared = prepare_schema(schema)
    assert json.loads(json.dumps(prepared)) == prepared
    assert prepared["properties"]["t"]["enum"] == [1, 2]
