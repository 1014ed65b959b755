#!/usr/bin/python3
"""The value oracle: what object_value must hold for a row, written from the README's value rules
("Values in object_value"), using only Python's own datetime, decimal, json and base64. It shares
no code with src/. PostgreSQL's text form of every value is its input (read back from PostgreSQL by
the test with no client-side parsing); where a rule says "PostgreSQL's text form", that text is the
answer.

stdin: {"columns": {name: {"kind": k} | {"kind": "array", "element": k}},
        "rows": {id: {name: text | null | {"dims": text|null, "elements": [text|null]}}},
        "observations": [{"path", "row", "state", "json", "keys": [names] | null, "omitted": [names],
                          "numbers": "exact" | "numeric"}]}
stdout: {"checked": n, "differences": [text]}
"""
import base64
import datetime
import decimal
import json
import math
import re
import sys

# The README's table, by the type's name (domains are given as their base type by the test).
INTEGER = {"int2", "int4", "int8", "oid"}
FLOAT = {"float4", "float8"}


def parse_json(text):
    """JSON as Python reads it, numbers exact: ints as int, others as Decimal, -0 kept as -0.0."""
    return json.loads(
        text,
        parse_int=lambda s: -0.0 if s == "-0" else int(s),
        parse_float=decimal.Decimal,
        parse_constant=lambda s: ("constant", s),  # NaN/Infinity are not JSON: never accepted as numbers
    )


def expect_scalar(kind, text):
    if text is None:
        return None
    if kind == "bool":
        assert text in ("t", "f"), f"boolout gives t or f, not {text!r}"
        return text == "t"
    if kind in INTEGER:
        return int(text)
    if kind == "numeric":
        if text not in ("NaN", "Infinity", "-Infinity"):
            decimal.Decimal(text)  # a number, its exact digits kept as the string
        return text
    if kind in FLOAT:
        value = float(text)
        if math.isnan(value) or math.isinf(value):
            return text  # "NaN", "Infinity", "-Infinity" as strings
        return ("float", text)  # a JSON number: the very number PostgreSQL wrote
    if kind == "timestamptz":
        try:
            value = datetime.datetime.fromisoformat(text)
        except ValueError:
            return text  # infinity, BC, years past 9999: PostgreSQL's text
        assert value.utcoffset() == datetime.timedelta(0), f"not UTC: {text}"
        return value.isoformat()
    if kind == "timestamp":
        try:
            return datetime.datetime.fromisoformat(text).isoformat()
        except ValueError:
            return text
    if kind == "date":
        try:
            return datetime.date.fromisoformat(text).isoformat()
        except ValueError:
            return text
    if kind in ("json", "jsonb"):
        return ("json", parse_json(text))
    if kind == "bytea":
        assert text.startswith("\\x"), f"bytea_output=hex gives \\x..., not {text[:10]!r}"
        return base64.b64encode(bytes.fromhex(text[2:])).decode("ascii")
    return text  # everything else: PostgreSQL's text form


def reshape(dims, elements):
    """PostgreSQL's array_dims ("[1:2][0:2]") and its elements in row-major order -> nested lists."""
    if dims is None:
        return []
    sizes = [int(hi) - int(lo) + 1 for lo, hi in re.findall(r"\[(-?\d+):(-?\d+)\]", dims)]

    def build(level, start):
        if level == len(sizes) - 1:
            return elements[start:start + sizes[level]]
        step = 1
        for size in sizes[level + 1:]:
            step *= size
        return [build(level + 1, start + i * step) for i in range(sizes[level])]

    return build(0, 0)


def expect_value(column, value):
    if column["kind"] == "array":
        if value is None:
            return None

        def convert(node):
            return [convert(x) for x in node] if isinstance(node, list) else expect_scalar(column["element"], node)

        return convert(reshape(value["dims"], value["elements"]))
    return expect_scalar(column["kind"], value)


def same(expected, actual, numbers):
    """Whether the published value is the expected one. `numbers="numeric"` (a jsonb store) compares
    numbers by value: jsonb keeps numbers as numeric, which has neither float spelling nor -0."""
    if isinstance(expected, tuple) and expected[0] == "json":
        return same_json(expected[1], actual, numbers)
    if isinstance(expected, tuple) and expected[0] == "float":
        # Numerically equal to PostgreSQL's text, digit for digit (JSON numbers are decimal).
        if not is_number(actual):
            return False
        written = decimal.Decimal(expected[1])
        published = decimal.Decimal(repr(actual)) if isinstance(actual, float) else decimal.Decimal(actual)
        if written != published:
            return False
        # -0 keeps its sign, except in a jsonb store: numeric has no negative zero.
        return numbers == "numeric" or written != 0 or written.is_signed() == published.is_signed()
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(same(e, a, numbers) for e, a in zip(expected, actual))
    if isinstance(expected, bool) or expected is None:
        return actual is expected
    if isinstance(expected, int):
        if numbers == "numeric" and isinstance(actual, decimal.Decimal):
            return actual == expected
        return isinstance(actual, int) and not isinstance(actual, bool) and actual == expected
    return type(actual) is type(expected) and actual == expected


def is_number(x):
    return isinstance(x, (int, float, decimal.Decimal)) and not isinstance(x, bool)


def same_json(expected, actual, numbers):
    if isinstance(expected, dict):
        return isinstance(actual, dict) and expected.keys() == actual.keys() and all(same_json(expected[k], actual[k], numbers) for k in expected)
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(same_json(e, a, numbers) for e, a in zip(expected, actual))
    if is_number(expected):
        return is_number(actual) and decimal.Decimal(str(expected)) == decimal.Decimal(str(actual))
    if isinstance(expected, bool) or expected is None:
        return actual is expected
    return type(actual) is type(expected) and actual == expected


def main():
    document = json.load(sys.stdin)
    columns = document["columns"]
    expected_rows = {
        (row_id, state): {name: expect_value(columns[name], value) for name, value in values.items()}
        for row_id, states in document["rows"].items()
        for state, values in states.items()
    }
    differences = []
    checked = 0
    for observation in document["observations"]:
        where = f'{observation["path"]} row {observation["row"]} ({observation["state"]})'
        try:
            actual = parse_json(observation["json"])
        except ValueError as error:
            differences.append(f"{where}: object is not JSON: {error}")
            continue
        if not isinstance(actual, dict):
            differences.append(f"{where}: object is not a JSON object")
            continue
        expected = expected_rows[(str(observation["row"]), observation["state"])]
        keys = set(observation["keys"]) if observation["keys"] is not None else set(expected)
        keys -= set(observation["omitted"])
        if observation["numbers"] == "exact" and list(actual) != sorted(actual):
            differences.append(f"{where}: keys not in alphabetical order: {list(actual)}")
        if set(actual) != keys:
            differences.append(f"{where}: keys {sorted(actual)} where the rules give {sorted(keys)}")
        for name in sorted(keys & set(actual)):
            checked += 1
            if not same(expected[name], actual[name], observation["numbers"]):
                differences.append(f"{where}: {name} is {json.dumps(actual[name], default=str)[:300]} where the rules give {json.dumps(expected[name], default=str)[:300]}")
    json.dump({"checked": checked, "differences": differences}, sys.stdout)


if __name__ == "__main__":
    main()
