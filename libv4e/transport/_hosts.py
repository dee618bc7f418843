"""Whether a host is a loopback address: the CSMS warns when OCPP binds beyond loopback
without passwords. (The REST API's request guard — Host names, Origin, JSON bodies — is
the app's: :mod:`libv4e_apps.csms.guard`.)"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
