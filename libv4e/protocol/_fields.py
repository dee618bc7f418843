"""Reading a field of an OCPP payload whatever form it arrived in: the ``ocpp`` package's
dataclasses, or plain dicts (snake_case, or camelCase as sent) — nested values of a
2.0.1 message may be either."""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["field", "text"]


def field(obj: Any, name: str) -> Any:
    """``obj.name``, or its key in a dict (``name`` in snake_case, or camelCase); None for
    None or a missing field."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        if name in obj:
            return obj[name]
        return obj.get(_camel(name))
    return getattr(obj, name, None)


@functools.cache
def _camel(name: str) -> str:
    """``sampled_value`` → ``sampledValue`` (the few field names there are, once each)."""
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def text(value: Any) -> Any:
    """An enum member as its value (a string); anything else as it is."""
    return getattr(value, "value", value)
