"""Which Host headers a jsproj HTTP server bound to a loopback address answers (the dashboard, the daemon's metrics).

A server on 127.0.0.1 is reachable from a browser on the same machine, and a
web page elsewhere can make a browser send it requests under a name of the
page's choosing that resolves to 127.0.0.1 (DNS rebinding): the page could
then read the answers. So a loopback server answers only requests that name
it -- ``localhost`` or its address, with its port -- and refuses the rest with
421 (Misdirected Request). A server bound elsewhere is meant to be reached
under names this one cannot know: it answers any Host.
"""

from __future__ import annotations

import ipaddress

MISDIRECTED = 421


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """The Host header values a server listening on ``host:port`` answers; None for any."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, not an address: "localhost" is the only loopback name trusted
        loopback = host == "localhost"
    if not loopback:
        return None
    names = {"localhost", f"[{host}]" if ":" in host else host}
    return frozenset({f"{name}:{port}" for name in names} | (names if port == 80 else set()))


def host_allowed(allowed: frozenset[str] | None, header: str | None) -> bool:
    """Whether a request whose Host header is ``header`` may be answered."""
    return allowed is None or (header or "").lower() in allowed
