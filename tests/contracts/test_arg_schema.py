"""Argument schemas: each type's checks and messages, defaults, and bad method declarations."""

from __future__ import annotations

import pytest

from contracts.contract import Call, Contract, method
from contracts.errors import ArgumentError, DefinitionError
from contracts.schema import (
    NAME_PATTERN,
    ArgType,
    Bool,
    Bytes,
    Choice,
    Int,
    ListOf,
    MapOf,
    Record,
    Str,
    validate_args,
)
from ledger.genesis import Role


def test_int_rejects_bool_even_though_python_calls_it_an_int() -> None:
    with pytest.raises(ArgumentError, match=r"^n must be an integer from 0 to 5, got a bool"):
        Int(min=0, max=5).check(True, "n")


@pytest.mark.parametrize(
    ("schema", "value", "message"),
    [
        (Int(min=1, max=3), 0, "x must be at least 1, got 0"),
        (Int(min=1, max=3), 4, "x must be at most 3, got 4"),
        (
            Int(),
            1.0,
            "x must be an integer from -9223372036854775808 to 9223372036854775807, got a float",
        ),
        (Str(max_len=3), "abcd", "x must be a string of 0 to 3 characters, got 4 characters"),
        (
            Str(max_len=8, pattern=NAME_PATTERN),
            "a b",
            "x must be a string of 0 to 8 characters matching [A-Za-z0-9_-][A-Za-z0-9_.-]*, "
            "got 'a b'",
        ),
        (Str(max_len=8, pattern=NAME_PATTERN), "..", "matching [A-Za-z0-9_-][A-Za-z0-9_.-]*"),
        (Str(max_len=8, pattern=NAME_PATTERN), ".", "matching [A-Za-z0-9_-][A-Za-z0-9_.-]*"),
        (Str(), b"abc", "x must be a string of 0 to 256 characters, got bytes"),
        (Bytes(length=4), b"abc", "x must be exactly 4 bytes, got 3 bytes"),
        (Bytes(max_len=2), "ab", "x must be 0 to 2 bytes, got a string"),
        (Bool(), 1, "x must be a bool, got an integer (1)"),
        (Choice(values=("a", "b")), "c", "x must be one of a, b, got 'c'"),
        (ListOf(item=Int(), max_len=1), [1, 2], "got 2 items"),
        (ListOf(item=Int(min=0)), [1, -1], "x[1] must be at least 0, got -1"),
        (ListOf(item=Int(), unique=True), [1, 1], "x[1] repeats an earlier item"),
        (ListOf(item=Int()), {"a": 1}, "got a map"),
        (MapOf(value=Int(min=0)), {"ok": 1, "bad": -1}, "x['bad'] must be at least 0, got -1"),
        (MapOf(value=Int()), {"a b": 1}, "x key must be a string"),
        (MapOf(value=Int()), [1], "got a list"),
        (Int(), None, "got nil"),
    ],
)
def test_each_type_rejects_with_a_message_saying_what_was_expected(
    schema: ArgType, value: object, message: str
) -> None:
    with pytest.raises(ArgumentError) as caught:
        schema.check(value, "x")
    assert message in str(caught.value)


def test_valid_values_pass_through_and_tuples_become_lists() -> None:
    assert Int(min=1).check(5, "x") == 5
    assert Str(pattern=NAME_PATTERN).check("steel-1.a_b", "x") == "steel-1.a_b"
    assert Bytes(length=2).check(b"ab", "x") == b"ab"
    assert Bool().check(False, "x") is False
    assert ListOf(item=Int()).check((1, 2), "x") == [1, 2]
    assert MapOf(value=ListOf(item=Bool())).check({"k": [True]}, "x") == {"k": [True]}


def test_validate_args_fills_defaults_and_reports_every_missing_argument() -> None:
    schema = {"a": Int(), "b": Str(), "c": Bool(default=False), "d": Int(default=None)}
    assert validate_args(schema, {"a": 1, "b": ""}, where="m") == {
        "a": 1,
        "b": "",
        "c": False,
        "d": None,
    }
    with pytest.raises(ArgumentError) as caught:
        validate_args(schema, {}, where="m")
    assert str(caught.value) == (
        "m: missing argument a (an integer from -9223372036854775808 to 9223372036854775807); "
        "b (a string of 0 to 256 characters)"
    )


def test_validate_args_lists_extra_arguments_sorted_and_what_the_method_takes() -> None:
    with pytest.raises(ArgumentError) as caught:
        validate_args({"a": Int()}, {"a": 1, "z": 1, "y": 2}, where="m")
    assert str(caught.value) == "m: unexpected argument y, z; it takes a"
    with pytest.raises(ArgumentError, match="it takes no arguments"):
        validate_args({}, {"a": 1}, where="m")


def test_describe_says_type_bounds_and_optionality() -> None:
    assert Int(min=1, max=2).describe() == {"type": "int", "min": 1, "max": 2, "required": True}
    assert Bytes(length=3, default=b"abc").describe() == {
        "type": "bytes",
        "length": 3,
        "required": False,
        "default": "616263",
    }
    assert ListOf(item=Choice(values=("a",))).describe()["item"] == {
        "type": "choice",
        "values": ["a"],
        "required": True,
    }


def test_method_parameters_must_match_declared_args() -> None:
    with pytest.raises(DefinitionError, match="differ from args"):

        class Bad(Contract):
            name = "bad"

            @method(roles=(Role.ADMIN,), args={"a": Int()})
            def m(self, call: Call, *, b: int) -> None:
                return None


def test_method_needs_at_least_one_role() -> None:
    with pytest.raises(DefinitionError, match="roles"):

        class Bad(Contract):
            name = "bad"

            @method(roles=(), args={})
            def m(self, call: Call) -> None:
                return None


def test_an_invalid_default_is_refused_when_declared() -> None:
    with pytest.raises(DefinitionError, match="default of a"):

        class Bad(Contract):
            name = "bad"

            @method(roles=(Role.ADMIN,), args={"a": Int(min=1, default=0)})
            def m(self, call: Call, *, a: int) -> None:
                return None


def test_contract_names_are_lowercase_identifiers() -> None:
    with pytest.raises(DefinitionError, match="not valid"):

        class Bad(Contract):
            name = "Bad Name"


def test_methods_are_collected_in_definition_order_including_inherited_ones() -> None:
    class Base(Contract):
        name = "base"

        @method(roles=(Role.ADMIN,))
        def first(self, call: Call) -> int:
            return 1

    class Child(Base):
        name = "child"

        @method(roles=(Role.ADMIN,))
        def second(self, call: Call) -> int:
            return 2

    assert list(Base.methods) == ["first"]
    assert list(Child.methods) == ["first", "second"]


def test_record_checks_named_fields_fills_defaults_and_names_nested_paths() -> None:
    part = Record(fields={"qty": Int(min=1), "note": Str(default="")})
    assert part.check({"qty": 2}, "arg") == {"qty": 2, "note": ""}
    with pytest.raises(ArgumentError, match=r"^arg is missing field qty \(an integer"):
        part.check({}, "arg")
    with pytest.raises(ArgumentError, match=r"^arg has unexpected field colour; its fields"):
        part.check({"qty": 1, "colour": "red"}, "arg")
    with pytest.raises(ArgumentError, match=r"^arg\['a'\]\.qty must be at least 1, got 0$"):
        MapOf(value=part).check({"a": {"qty": 0}}, "arg")
    assert part.describe()["fields"]["note"]["required"] is False
