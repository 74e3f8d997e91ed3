"""pydantic's complaints about project.toml, said in the file's own terms: the TOML key and what was found."""

from __future__ import annotations

import json
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails


class KeyedError(ValueError):
    """A cross-field problem that knows which TOML key to blame (pydantic only knows the model)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


_NOUNS = {
    "int": "an integer",
    "float": "a number",
    "string": "a string",
    "bool": "true or false",
    "tuple": "an array",
    "list": "an array",
    "dict": "a table",
    "model": "a table",
    "model_attributes": "a table",
}
_BOUNDS = {
    "greater_than": ("greater than", "gt"),
    "greater_than_equal": ("of at least", "ge"),
    "less_than": ("less than", "lt"),
    "less_than_equal": ("of at most", "le"),
}


def describe(err: ValidationError, root: type[BaseModel]) -> tuple[str, str]:
    """The first problem as (TOML key with 1-based indices, what was expected and what was found)."""
    first = err.errors(include_url=False)[0]
    # [[chat]] is one table whichever transport it names: the key leaves out pydantic's tag.
    key, message = _key(_untagged(first["loc"], root)), _message(first, root)
    if first["type"] == "transport":  # a [[chat]] table's transport picks its keys: said of that key
        found = first["input"].get("transport") if isinstance(first["input"], dict) else None
        key, message = f"{key}.transport", f"{first['msg']}, got {_show(found)}" if found else "is required but missing"
    if first["type"] == "value_error" and isinstance(error := first.get("ctx", {}).get("error"), KeyedError):
        key = error.key
    more = err.error_count() - 1
    return key, message + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def _key(loc: tuple[int | str, ...]) -> str:
    key = "".join(f"[{part + 1}]" if isinstance(part, int) else f".{part}" for part in loc)
    return key.lstrip(".")


def _message(error: ErrorDetails, root: type[BaseModel]) -> str:
    kind, ctx, got = error["type"], error.get("ctx", {}), _show(error["input"])
    if kind == "missing":
        return "is required but missing"
    if kind == "extra_forbidden":
        model, _ = _resolve(error["loc"], root)
        keys = ", ".join(_fields(model)) if model else "?"
        return f"unknown key; expected one of: {keys}"
    if kind == "tuple_type" and error["loc"] in (("agent",), ("gate",)):
        return f"expected [[{error['loc'][0]}]] tables, got {got}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "finite_number":
        return f"expected a finite number, got {got}"
    if kind in _BOUNDS:
        words, name = _BOUNDS[kind]
        return f"expected {_noun(_resolve(error['loc'], root)[1])} {words} {_show(ctx[name])}, got {got}"
    if kind in ("enum", "literal_error"):
        return f"expected one of {ctx['expected']}, got {got}"
    if kind == "string_too_short":
        return f"expected at least {ctx['min_length']} character(s), got {got}"
    if kind == "string_too_long":
        return f"expected at most {ctx['max_length']} characters, got {len(str(error['input']))}"
    if kind == "string_pattern_mismatch":
        return f"expected text matching {ctx['pattern']}, got {got}"
    noun = _NOUNS.get(kind.removesuffix("_type").removesuffix("_parsing").removesuffix("_from_float"))
    return f"expected {noun}, got {got}" if noun else f"{error['msg']}; got {got}"


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = json.dumps(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _noun(annotation: Any) -> str:
    plain = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    return {int: "an integer", float: "a number", str: "a string"}.get(plain[0], "a value")


def _resolve(loc: tuple[int | str, ...], root: type[BaseModel]) -> tuple[type[BaseModel] | None, Any]:
    """The model holding the last key of ``loc``, and that key's type (None when it has none)."""
    model: type[BaseModel] | None = root
    annotation: Any = None
    for part in (p for p in loc if isinstance(p, str)):
        if get_origin(annotation) is dict:  # this part is a key of a table of tables ([price."<model>"])
            annotation = get_args(annotation)[1]
            continue
        if (tagged := _tags(annotation).get(part)) is not None:  # a tagged union's choice, not a key
            model, annotation = tagged, tagged
            continue
        if annotation is not None:
            model = _model_in(annotation)
        field = _fields(model).get(part) if model else None
        annotation = field.annotation if field else None
        if field is None:
            break
    return model, annotation


def _untagged(loc: tuple[int | str, ...], root: type[BaseModel]) -> tuple[int | str, ...]:
    """``loc`` without the tags pydantic puts in it for a tagged union (``chat[1].matrix.user`` is ``chat[1].user``)."""
    return tuple(
        part
        for at, part in enumerate(loc)
        if not (isinstance(part, str) and part in _tags(_resolve(loc[:at], root)[1]))
    )


def _tags(annotation: Any) -> dict[str, type[BaseModel]]:
    """The models of a tagged union inside ``annotation``, by tag; empty when there is none."""
    found: dict[str, type[BaseModel]] = {}
    for arg in get_args(annotation):
        if get_origin(arg) is Annotated:
            inner, *meta = get_args(arg)
            tags = [m.tag for m in meta if isinstance(m, Tag)]
            if tags and isinstance(inner, type) and issubclass(inner, BaseModel):
                found |= dict.fromkeys(tags, inner)
                continue
        found |= _tags(arg)
    return found


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (tuple, list, Union, types.UnionType, Annotated):
        return next((m for a in get_args(annotation) if (m := _model_in(a))), None)
    return None
