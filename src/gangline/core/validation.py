"""Invalid input said one way from every door: the field it concerns, what was expected, what was found.

REST's request validation, the MCP tools, the CLI's options and item files all turn pydantic's
problems into a ``ConfigError`` here, so the same bad input gets the same field and message.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gangline.core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

_SHOW = reprlib.Repr()
_SHOW.maxstring = 60
_SHOW.maxother = 60


def describe_validation_error(err: ValidationError) -> tuple[str, str]:
    """The first problem in ``err`` as (location like ``depends_on[1]``, message saying what was found)."""
    return describe_problems(err.errors(include_url=False))


def describe_problems(problems: Sequence[Mapping[str, Any]], skip: int = 0) -> tuple[str, str]:
    """The first of pydantic's problems as (its field, what was expected and found); ``skip`` drops
    leading location parts (REST's ``body``, ``query``)."""
    first = problems[0]
    location = ""
    for part in tuple(first["loc"])[skip:]:
        location += f"[{part}]" if isinstance(part, int) else f".{part}"
    message = _PLAIN_MESSAGES.get(first["type"], first["msg"])
    if first["type"] == "value_error" and first.get("ctx", {}).get("error") is not None:
        message = str(first["ctx"]["error"])  # our validator's own words, without pydantic's "Value error, "
    if first["type"] != "missing" and first["type"] in _SHOW_INPUT_FOR:
        message += f"; found {_SHOW.repr(first.get('input'))}"
    more = len(problems) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return location.lstrip(".") or "(root)", message


def validated(model: type[M], data: Mapping[str, object], where: str = "") -> M:
    """``data`` validated as ``model``; the first problem becomes a ConfigError naming its field
    (``"<where>: <field>"`` when ``where`` is given: a file, say)."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        raise invalid(err, where) from None


def invalid(err: ValidationError, where: str = "") -> ConfigError:
    """``err``'s first problem as the ConfigError every door reports: the field, then what was wrong."""
    location, message = describe_validation_error(err)
    return ConfigError(f"{where}: {location}" if where else location, message)


# Said the way a person editing a file or a form would put it.
_PLAIN_MESSAGES = {"tuple_type": "Input should be a list"}

# Pydantic's own messages say what was expected; for these we add what was found.
# Our validators' messages already say what was found.
_SHOW_INPUT_FOR = frozenset(
    {
        "string_type",
        "int_type",
        "bool_type",
        "bool_parsing",
        "enum",
        "tuple_type",
        "greater_than",
        "greater_than_equal",
        "less_than_equal",
        "too_long",
        "model_type",
        "model_attributes_type",
        "extra_forbidden",
        "literal_error",
        "int_parsing",
        "int_from_float",
        "dict_type",
    }
)
