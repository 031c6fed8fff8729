"""The inlined fast paths of converters agree with the converters themselves."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from bson import ObjectId
from hypothesis import given
from hypothesis import strategies as st

from docshift.transform.convert import ConvertOptions, converter_for, fast_path
from docshift.transform.pgtypes import parse_type

TYPES = ["text", "varchar(3)", "smallint", "integer", "bigint", "double precision", "boolean",
         "timestamptz", "uuid"]

values = st.one_of(
    st.text(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(), st.booleans(),
    st.datetimes(timezones=st.just(dt.UTC)), st.datetimes(),
    st.binary(min_size=12, max_size=12).map(ObjectId))


@pytest.mark.parametrize("type_name", TYPES)
@given(value=values)
def test_fast_path_gives_what_the_converter_gives(type_name: str, value: object) -> None:
    t = parse_type(type_name)
    fp = fast_path(t)
    assert fp is not None
    names = {"v": value, **(fp.names or {})}
    if not eval(fp.condition, names):  # noqa: S307 - our own expression
        return
    fast, slow = eval(fp.result, names), converter_for(t)(value)  # noqa: S307
    # NaN equals nothing, itself included: both paths must give NaN
    if isinstance(fast, float) and math.isnan(fast):
        assert isinstance(slow, float) and math.isnan(slow)
    else:
        assert fast == slow


@pytest.mark.parametrize(("type_name", "max_chars"), [("text", 2), ("varchar(5)", 2),
                                                     ("varchar(2)", 5)])
@given(value=st.text(max_size=8))
def test_text_fast_path_keeps_the_length_limit(type_name: str, max_chars: int,
                                               value: str) -> None:
    t, options = parse_type(type_name), ConvertOptions(max_text_chars=max_chars)
    fp = fast_path(t, options)
    assert fp is not None
    if eval(fp.condition, {"v": value}):  # noqa: S307 - our own expression
        assert len(value) <= 2
        assert converter_for(t, options)(value) == value
    elif value.isascii() and "\x00" not in value:
        assert len(value) > 2


@pytest.mark.parametrize("type_name", ["text[]", "numeric(5,2)", "jsonb", "real"])
def test_types_with_extra_checks_have_no_fast_path(type_name: str) -> None:
    assert fast_path(parse_type(type_name)) is None
