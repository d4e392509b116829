"""hypothesis strategies for malformed input: odd text, arbitrary JSON, contract-breaking mutations.

The mutations are built to break the contract on purpose (drop a required field, give a field a
value of the wrong type, an unknown literal, an unknown field, another contract version), so a
test can expect a dead letter; the tests still use the contract itself as the oracle
(`support.decodes`) for the few that happen to be valid.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel

# characters that have broken chat bots before: NUL and controls, zero-width and bidi marks,
# a BOM, line/paragraph separators, combining marks, non-characters, astral emoji, and lone
# UTF-16 surrogates (Slack and Feishu JSON can carry "\ud83d" halves of a cut emoji)
ODD_CHARS = [
    "\x00",
    "\x1b",
    "\x7f",
    "\u0085",
    "\u200b",
    "\u200e",
    "\u202e",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\ufffd",
    "\uffff",
    "\u0301",
    "\U0001f600",
    "\U0001f469\u200d\U0001f4bb",
    "\ud83d",
    "\udc00",
    "<@U1>",
    "<!channel>",
    "&amp;",
    "@_user_1",
    '"',
    "\\",
    "{",
    "%s",
]

plain_text = st.text(max_size=30)
odd_text = st.lists(st.one_of(st.sampled_from(ODD_CHARS), st.text(max_size=4)), max_size=12).map("".join)
huge_text = st.sampled_from([5_000, 70_000, 400_000]).map(lambda n: ("x" * 97 + "\U0001f600\n") * (n // 100))
any_text = st.one_of(plain_text, odd_text, huge_text)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    plain_text,
    odd_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
# a JSON value that is not a string: the wrong type for any string field
non_strings = json_values.filter(lambda v: not isinstance(v, str))


def dumps(value: Any) -> str:
    """JSON text; lone surrogates become \\udXXX escapes (valid JSON text, invalid Unicode)."""
    return json.dumps(value, ensure_ascii=True)


def broken_json_text() -> st.SearchStrategy[str]:
    """Text that is not a JSON document (or is one cut short)."""
    return st.one_of(
        st.just(""),
        st.sampled_from(["{", "[", '{"a":', "nul", "{'single': 'quotes'}", "NaN", '{"a":1}x', "\x00"]),
        json_values.map(dumps).map(lambda s: s[: max(0, len(s) - 1)]),
        odd_text,
    )


def non_utf8_bytes() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(min_size=1, max_size=40).filter(_not_utf8),
        st.sampled_from([b"\xff", b'{"v": 1, "x": "\xc3\x28"}', b"\xed\xa0\x80", b"\x80abc"]),
    )


def _not_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _required(model: type[BaseModel]) -> list[str]:
    return [name for name, field in model.model_fields.items() if field.is_required()]


def contract_breaking(model: type[BaseModel], valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """`valid` (a valid instance of `model`, as JSON data) with one mutation that breaks it."""
    required = _required(model) or list(valid)
    fields = list(valid)

    def drop(name: str) -> dict[str, Any]:
        return {k: v for k, v in valid.items() if k != name}

    def set_to(name: str, value: Any) -> dict[str, Any]:
        return {**valid, name: value}

    return st.one_of(
        st.sampled_from(required).map(drop),
        st.tuples(st.sampled_from(required), non_strings).map(lambda nv: set_to(*nv)),
        st.tuples(st.sampled_from(fields), st.sampled_from(["", "?", "bogus-literal", "x" * 300]))
        .map(lambda nv: set_to(*nv))
        .filter(lambda d: _invalid(model, d)),
        st.tuples(st.text(min_size=1, max_size=10).filter(lambda k: k not in valid), json_values).map(
            lambda kv: set_to(*kv)
        ),
        st.sampled_from([0, 2, 99, "1", None]).map(lambda v: set_to("v", v)),
    )


def _invalid(model: type[BaseModel], data: dict[str, Any]) -> bool:
    try:
        model.model_validate_json(dumps(data))
    except Exception:
        return True
    return False


def stream_data(model: type[BaseModel], valid: dict[str, Any]) -> st.SearchStrategy[str | bytes]:
    """Garbage for an entry's `data` field on a stream whose model is `model`."""
    return st.one_of(
        broken_json_text(),
        non_utf8_bytes(),
        json_values.map(dumps),
        contract_breaking(model, valid).map(dumps),
        huge_text,
    )


def stream_fields(model: type[BaseModel], valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The whole entry: usually one `data` field of garbage; sometimes no `data` field at all."""
    data = stream_data(model, valid)
    return st.one_of(
        data.map(lambda d: {"data": d}),
        data.map(lambda d: {"payload": d}),
        st.tuples(data, plain_text).map(lambda t: {"data": t[0], "extra": t[1] or "-"}),
    )
