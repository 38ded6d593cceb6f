"""The HTTP exchange the gateway forwards to `IdentityService.oidc_http`, as plain data.

Request (a dict, JSON over RPC)::

    {"method": "GET" | "POST" | "OPTIONS", "path": "/oidc/authorize",
     "query": {name: str}, "form": {name: str},
     "headers": {"cookie": str | None, "authorization": str | None, "content-type": str | None,
                 "origin": str | None, "accept-language": str | None},
     "client_ip": str | None}

Response: ``{"status": int, "headers": [[name, value], ...], "body": str}``; cookies are set by
``Set-Cookie`` entries in ``headers`` (there may be several).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

METHODS = ("GET", "POST", "OPTIONS")
MAX_PARAMS = 64
MAX_VALUE_CHARS = 8192

HTML_HEADERS = (
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on the forms' POST,
    # which the same-origin check (CSRF) must refuse
    ("Referrer-Policy", "same-origin"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    ),
)


class BadRequest(Exception):
    """The forwarded request does not have the agreed shape."""


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    client_ip: str | None = None

    @property
    def params(self) -> dict[str, str]:
        """The protocol parameters: the query string of a GET, the form body of a POST."""
        return self.form if self.method == "POST" else self.query

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def cookies(self) -> dict[str, str]:
        return parse_cookies(self.header("cookie"))


def _string_map(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_PARAMS:
        raise BadRequest(f"{what} must be an object of at most {MAX_PARAMS} strings")
    result = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise BadRequest(f"{what} names must be strings")
        if item is None:
            continue
        if not isinstance(item, str) or len(item) > MAX_VALUE_CHARS:
            raise BadRequest(f"{what}.{key} must be a string of at most {MAX_VALUE_CHARS} characters")
        result[key] = item
    return result


def parse_request(raw: object) -> HttpRequest:
    """Check the shape of what the gateway sent; raises BadRequest."""
    if not isinstance(raw, dict):
        raise BadRequest("request must be an object")
    method = str(raw.get("method") or "").upper()
    path = raw.get("path")
    if method not in METHODS:
        raise BadRequest(f"method must be one of {METHODS}")
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadRequest("path must be an absolute path")
    headers = {key.lower(): value for key, value in _string_map(raw.get("headers"), "headers").items()}
    client_ip = raw.get("client_ip")
    return HttpRequest(
        method=method,
        path=path.rstrip("/") or "/",
        query=_string_map(raw.get("query"), "query"),
        form=_string_map(raw.get("form"), "form"),
        headers=headers,
        client_ip=client_ip if isinstance(client_ip, str) and client_ip else None,
    )


def parse_cookies(header: str | None) -> dict[str, str]:
    """`name=value; name2=value2` -> dict; the first of several same-named cookies wins (browsers
    send the most specific path first)."""
    cookies: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in cookies:
            cookies[name] = value.strip().strip('"')
    return cookies


def set_cookie(name: str, value: str, *, max_age: int, secure: bool, path: str = "/") -> str:
    """A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure over https."""
    parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def clear_cookie(name: str, *, secure: bool, path: str = "/") -> str:
    return set_cookie(name, "", max_age=0, secure=secure, path=path)


@dataclass
class HttpResponse:
    status: int
    body: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)

    def add_header(self, name: str, value: str) -> HttpResponse:
        self.headers.append((name, value))
        return self

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "headers": [[k, v] for k, v in self.headers], "body": self.body}


def redirect(location: str, status: int = 302) -> HttpResponse:
    return HttpResponse(status, "", [("Location", location), ("Cache-Control", "no-store")])


def json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    base = (
        headers
        if headers is not None
        else [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
    )
    return HttpResponse(status, json.dumps(payload, separators=(",", ":")), list(base))


def html_response(status: int, body: str) -> HttpResponse:
    return HttpResponse(status, body, list(HTML_HEADERS))
