"""Who may use ``tuixp serve``: every HTTP request and every websocket goes through ``Guard``.

Whoever drives the served TUI can do what its keys do: re-run and repeat trials (run the
experiment's code on this machine), load a pickled output (unpickling runs code). So:

- Served on a loopback address without a token (the default), the ``Host`` a request names must
  be a loopback name (``localhost``, ``127.x.x.x``, ``::1``): a page whose own name was made to
  resolve to 127.0.0.1 (DNS rebinding) is refused.
- A request that says where it comes from (``Origin``, which browsers send with every websocket)
  must come from the page this server served: another site's page open in the same browser
  cannot open the websocket and type into the TUI.
- With a token (required off loopback), every request carries it: ``?token=`` (the address
  ``tuixp serve`` prints), the cookie the server sets when that address is opened, or
  ``Authorization: Bearer``. It is compared in constant time.

No web framework here: the server hands over the few header values it needs.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

TOKEN_MIN_LENGTH = 16
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~-]+")
# What a Host header may hold: a name or IPv4 address, or a bracketed IPv6 one, then a port.
_HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?")


def is_loopback(host: str) -> bool:
    """``host`` (a name or an address, IPv6 with or without brackets) is this machine only."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_unspecified(host: str) -> bool:
    """``host`` is 0.0.0.0 or ``::`` (every interface of the machine)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def new_token() -> str:
    """A fresh token: 32 URL-safe characters (192 random bits)."""
    return secrets.token_urlsafe(24)


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot be used (too short to be safe, or not URL-safe), or None."""
    if len(token) < TOKEN_MIN_LENGTH:
        return f"the token must be at least {TOKEN_MIN_LENGTH} characters (it can be guessed)"
    if not _TOKEN_CHARS.fullmatch(token):
        return "the token may hold only letters, digits and . _ ~ - (it goes in a URL)"
    return None


def split_host(value: str) -> tuple[str, str]:
    """A Host header's name (brackets kept for IPv6) and port (``""`` when absent)."""
    match = _HOST_HEADER.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not a host: {value!r}")
    return match.group(1).lower(), (match.group(2) or "")[1:]


def cookie_name(host_header: str) -> str:
    """The cookie that carries the token. Cookies are shared by every port of a host, so the
    name holds the port the browser sees: two servers on one machine keep their own."""
    try:
        port = split_host(host_header)[1]
    except ValueError:
        port = ""
    return f"tuixp_token_{port or 'default'}"


@dataclass(frozen=True)
class Guard:
    """The checks every request passes. ``token`` None: no token (loopback only)."""

    token: str | None

    def refusal(
        self,
        *,
        host: str | None,
        origin: str | None,
        query_token: str | None,
        cookie_token: str | None,
        authorization: str | None,
    ) -> str | None:
        """Why this request is refused (one line for the person who made it), or None."""
        try:
            name, port = split_host(host or "")
        except ValueError:
            return "refused: the request names no valid Host"
        if self.token is None and not is_loopback(name):
            return (
                f"refused: this server answers only to loopback names (localhost, 127.0.0.1), "
                f"not {name!r}"
            )
        if origin is not None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() != (
                name + (f":{port}" if port else "")
            ):
                return f"refused: a page from {origin} may not use this server"
        if self.token is None:
            return None
        given = [t for t in (query_token, cookie_token, _bearer(authorization)) if t]
        if not given:
            return (
                "refused: this server needs its token: open the address tuixp serve printed "
                "(it ends in ?token=...)"
            )
        if not any(self.matches(t) for t in given):
            return "refused: wrong token: open the address tuixp serve printed"
        return None

    def matches(self, candidate: str) -> bool:
        """``candidate`` is the token (compared in constant time)."""
        if self.token is None:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None
