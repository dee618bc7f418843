"""The charger's link to its CSMS: the present connection (None while offline) and the
nursery :meth:`~libv4e.charger.Charger.run` opened, which the other parts use to call the
CSMS directly (Authorize) and to start work that outlives a call (the driver unplugging
a little later)."""

from __future__ import annotations

import trio

from libv4e.charger._base import ChargerState
from libv4e.transport._connection import OcppConnection


class Link:
    """The present connection and the charger's nursery (set by the runtime)."""

    def __init__(self, state: ChargerState) -> None:
        self._state = state
        self.conn: OcppConnection | None = None
        self.scope: trio.CancelScope | None = None
        """The scope of the present connection's tasks (cancelled when it closes)."""
        self.nursery: trio.Nursery | None = None

    @property
    def online(self) -> bool:
        """Connected and booted (Accepted)."""
        return self.conn is not None and not self.conn.closed and self._state.booted

    def closed(self) -> None:
        """The connection's reader saw it close: end the tasks that used it."""
        if self.scope is not None:
            self.scope.cancel()

    async def disconnect(self, code: int, reason: str) -> None:
        """Close the present connection (if any) with ``code``."""
        if self.conn is not None:
            await self.conn.aclose(code, reason)
