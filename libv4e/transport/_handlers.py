"""Handler tables that bind on lookup, so that a fleet of thousands of simulated chargers
does not hold one dict of ~25 bound methods per connection."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from libv4e.transport._connection import Handler

_TABLES: dict[type, dict[str, str]] = {}


def _method_names(cls: type) -> dict[str, str]:
    table = _TABLES.get(cls)
    if table is not None:
        return table
    from libv4e.protocol._convert import CATALOGUES

    names = _TABLES[cls] = {}
    actions = dict.fromkeys(a for c in CATALOGUES.values() for a in c.calls)
    for action in actions:
        name = "on_" + "".join("_" + c.lower() if c.isupper() else c for c in action).lstrip("_")
        if callable(getattr(cls, name, None)):
            names[action] = name
    return names


class BoundHandlers(Mapping[str, Handler]):
    """What :func:`~libv4e.handlers_from` returns, as a view: ``on_<action>`` methods of
    ``obj`` looked up (and bound) when a call arrives. One table per class is shared."""

    __slots__ = ("_names", "_obj")

    def __init__(self, obj: object) -> None:
        self._obj = obj
        self._names = _method_names(type(obj))

    def __getitem__(self, action: str) -> Handler:
        handler: Handler = getattr(self._obj, self._names[action])
        return handler

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
