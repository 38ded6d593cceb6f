"""Origins of URLs, for the allowlists that decide where a browser may be sent back to."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def origin(url: object) -> Origin | None:
    """(scheme, host, port) of an absolute http(s) URL without userinfo, the default port made
    explicit and the host lower-cased; None for anything else (relative or scheme-relative URLs,
    other schemes, user:password@, bad ports)."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme]
