"""The documented local-only key: what a loopback server without configured keys accepts, and
what the CLI signs with when it finds no AWS credentials for such a server."""

from __future__ import annotations

import ipaddress

# Documented, not secret: a server accepts it only on loopback and only with no key configured.
LOCAL_ACCESS_KEY_ID = "facesearch-local"
LOCAL_SECRET_ACCESS_KEY = "facesearch-local-secret"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
