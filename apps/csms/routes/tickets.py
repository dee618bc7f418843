"""Support tickets (``/tickets``)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from libv4e.csms import CentralSystem
from libv4e.scenarios import ScenarioManager

from ..errors import body
from ..models import TicketBody
from ..tickets import Ticket, TicketDesk


def blueprint(csms: CentralSystem, desk: TicketDesk, scenarios: ScenarioManager) -> Blueprint:
    """The ticket routes over ``desk`` (dated by ``csms``' clock); a filed ticket ends
    ``scenarios``' escalation."""
    bp = Blueprint("tickets", __name__)

    @bp.get("/tickets")
    async def tickets() -> Any:
        """Support tickets, oldest first."""
        return {"tickets": [t.as_dict() for t in await desk.tickets()]}

    @bp.post("/tickets")
    @body(TicketBody)
    async def add_ticket(data: TicketBody) -> Any:
        """File a support ticket."""
        ticket = await desk.add(
            Ticket(
                0,
                data.cp_id,
                data.summary,
                csms.clock(),
                scenario=data.scenario,
                details=data.details,
            )
        )
        scenarios.escalated(ticket.cp_id, ticket.scenario)
        return ticket.as_dict(), 201

    return bp
