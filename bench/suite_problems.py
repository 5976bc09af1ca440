"""How pydantic's validation errors read as a suite's problems: one line each, naming the field path
(`budget.steps: expected a valid integer`), the nearest valid key for an unknown one, a check across
fields one problem per line. bench/suite.py raises them together as a SuiteError."""

from __future__ import annotations

import difflib
import math
from typing import Any, get_args

from pydantic import BaseModel, ValidationError


def _path(location: tuple[Any, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _not_an_integer(value: Any) -> str:
    if isinstance(value, bool):
        return "expected a valid integer, not true or false"
    if isinstance(value, str):
        return "expected a valid integer, not a string (write numbers without quotes)"
    if isinstance(value, float) and math.isfinite(value) and abs(value) >= 2**63:
        return "expected an integer, and this one is far too large"
    return "expected a valid integer"


def _describe(error: dict[str, Any], field_type: type | None = None) -> str:
    """What the value should be; `field_type` (int or float) words a positive bound."""
    kind, context = error["type"], error.get("ctx", {})
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required field is missing"
    if kind in ("int_parsing_size", "int_type"):
        return _not_an_integer(error.get("input"))
    if kind == "greater_than" and context.get("gt") == 0:
        return "expected a positive number" if field_type is float else "expected a positive integer"
    if kind == "too_short":  # pydantic: "List should have at least 1 item after validation, not 0"
        least = context.get("min_length", 1)
        return f"expected at least {least} item{'s' if least != 1 else ''}"
    message = error["msg"].removeprefix("Value error, ")
    return message.replace("Input should be", "expected", 1)


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (`X`, `X | None`, `list[X]`, `Annotated[X, ...]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((found for arg in get_args(annotation) if (found := _inner_model(arg)) is not None), None)


def _model_at(model: type[BaseModel] | None, location: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that validates the mapping at `location` below `model` (list indexes skipped)."""
    for part in location:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _inner_model(field.annotation) if field is not None else None
    return model


def _unknown_key(location: tuple[Any, ...], prefix: tuple[Any, ...], model: type[BaseModel] | None) -> str:
    """`budget.stepz: unknown key; did you mean 'steps'?`; a key that cannot be read in a path (empty,
    blank, not a string) is named after its parent: `(top level): unknown key ''; valid keys: ...`."""
    key = location[-1]
    parent = _model_at(model, location[:-1])
    names = sorted(parent.model_fields) if parent is not None else []
    close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else (f"; valid keys: {', '.join(names)}" if names else "")
    if isinstance(key, str) and key and key.strip() == key and key.isprintable():
        return f"{_path(prefix + location)}: unknown key{hint}"
    return f"{_path(prefix + location[:-1])}: unknown key {key!r}{hint}"


def validation_problems(
    error: ValidationError, prefix: tuple[Any, ...] = (), model: type[BaseModel] | None = None
) -> list[str]:
    """One line per problem, each naming its field path; `model` (what was validated) lets an unknown
    key name the nearest valid one."""
    problems = []
    for item in error.errors():
        if item["type"] == "extra_forbidden":
            problems.append(_unknown_key(tuple(item["loc"]), prefix, model))
            continue
        location = tuple(item["loc"])
        if item["type"] == "value_error" and isinstance(item["input"], dict):  # a check spanning a model's fields
            problems.extend(_spanning(prefix + location, _describe(item)))
            continue
        message = _describe(item, _field_type(model, location))
        named = item["type"] == "missing" or repr(item["input"]) in message  # the message names the value itself
        got = "" if named else f", got {item['input']!r}"
        problems.append(f"{_path(prefix + location)}: {message}{got}")
    return problems


def _spanning(location: tuple[Any, ...], message: str) -> list[str]:
    """A check across several fields names them itself: one problem per line of its message, without the
    mapping it read; at the top level the message's own field paths stand alone."""
    lines = message.splitlines()
    return lines if not location else [f"{_path(location)}: {line}" for line in lines]


def _field_type(model: type[BaseModel] | None, location: tuple[Any, ...]) -> type | None:
    """int or float: the number type of the field at `location` (a list item: its list's field)."""
    names = [index for index, part in enumerate(location) if isinstance(part, str)]
    if not names:
        return None
    parent = _model_at(model, location[: names[-1]])
    field = parent.model_fields.get(location[names[-1]]) if parent is not None else None
    return _number_type(field.annotation) if field is not None else None


def _number_type(annotation: Any) -> type | None:
    """float when the annotation (through Annotated, unions, lists) holds float, else int when it holds int."""
    if annotation in (int, float):
        return annotation
    found = {_number_type(arg) for arg in get_args(annotation)}
    return float if float in found else (int if int in found else None)
