"""Who the client is, behind reverse proxies we trust and only those (issue 20).

``X-Forwarded-For`` is a header anyone can send: honoured from every loopback peer (uvicorn's
default), it let one client rotate addresses past the per-address rate limit and fill the
audit log with invented ones. Here it counts only when the peer is listed in
``KB_TRUSTED_PROXIES`` (addresses or CIDR networks; empty by default): the client is then the
right-most address of the chain that is not itself a trusted proxy. ``Forwarded`` and
``X-Real-IP`` are never read. ``kb serve`` starts uvicorn with its own proxy handling off, so
this middleware sees the real peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from kb.api.limits import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``["10.0.0.1", "10.1.0.0/16"]`` as networks.

    :raises ValueError: naming the entry that is not an address or a network.
    """
    out: list[Network] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"KB_TRUSTED_PROXIES: {value!r} is not an address or network") from exc
    return tuple(out)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(peer: str, forwarded_for: str | None, networks: tuple[Network, ...]) -> str:
    """The client of a request from ``peer`` carrying ``forwarded_for`` (``X-Forwarded-For``)."""
    if not networks or not forwarded_for or not _trusted(peer, networks):
        return peer
    chain = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(chain):
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage from the client side: the proxy is the client we know
    return chain[0] if chain else peer


class ClientAddressMiddleware:
    """Puts the client's real address in ``scope["client"]`` before anything reads it."""

    def __init__(self, app: ASGIApp, trusted_proxies: Iterable[str]) -> None:
        self.app = app
        self.networks = parse_networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope.get("client"):
            host, port = scope["client"]
            forwarded = None
            if self.networks:
                for name, value in scope.get("headers") or []:
                    if name == b"x-forwarded-for":
                        # Several headers: one chain, in order.
                        text = value.decode("latin-1")
                        forwarded = f"{forwarded}, {text}" if forwarded else text
            address = client_address(str(host), forwarded, self.networks)
            if address != host:
                scope = {**scope, "client": (address, port)}
        await self.app(scope, receive, send)
