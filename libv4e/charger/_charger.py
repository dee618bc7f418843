"""A simulated OCPP 1.6 charge point on Trio: boots, heartbeats, charges, answers every
Core / Local Auth List / Reservation / Smart Charging / Firmware / Remote Trigger command,
reconnects with backoff, and keeps transaction messages while offline.

State lives in the sans-IO model (``_model``); the layers in ``_base`` … ``_handlers``
move it in time and over the wire. Start :meth:`Charger.run` in your nursery.
"""

from __future__ import annotations

from libv4e.charger._base import ChargerConfig
from libv4e.charger._driver import Driver
from libv4e.charger._handlers import HandlerCharger

__all__ = ["Charger", "ChargerConfig"]


class Charger(HandlerCharger):
    """One simulated charge point. Everything it does runs inside :meth:`run`.

    Subclass it to add behaviour (e.g. ``on_<action>`` handlers or faults registered on
    :attr:`faults`)."""

    @property
    def driver(self) -> Driver:
        """The driver at this charger: plug in, unplug, present a card, press stop, read
        the screen, look at the car's app (see :class:`~libv4e.charger.Driver`)."""
        driver = self.__dict__.get("_driver")
        if driver is None:
            driver = self.__dict__["_driver"] = Driver(self)
        return driver
