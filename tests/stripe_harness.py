"""A local Stripe for tests: localstripe (PyPI) serves the Stripe API over HTTP to the real `stripe` SDK,
and a small proxy in front of it adds what localstripe lacks and what tests need:

- Idempotency-Key, as Stripe does it: a POST whose key was already answered on the same path gets the
  first answer again (with `Idempotent-Replayed: true`) without reaching localstripe; the same key
  with other parameters gets 400 idempotency_error; the same key while the first request is still
  running gets 409;
- failures on demand: `fail_next(n, mode)` makes the next n requests answer HTTP 500 ("error"), close
  the connection without answering ("drop"), reach localstripe but lose the answer on the way back
  ("lost_response": the request took effect, the client sees a connection error), or answer after
  `delay` seconds ("slow": for client timeouts);
- parameters real Stripe accepts but localstripe refuses (a PaymentIntent's `description`) are
  dropped before forwarding;
- a webhook endpoint: `register_webhook(secret)` has localstripe sign and send its events to the
  proxy, which keeps them (`wait_webhook`).

Also: `sign` (a Stripe-Signature header for any body, secret and timestamp, offline), `event_body`
(a Stripe event as JSON), `confirm` (pay a PaymentIntent with a test card: CARD_OK or CARD_DECLINED),
`payment_intents` / `refunds` (what localstripe holds, read directly).

Tests ask for the `stripe_harness` fixture (module scope) after importing `stripe_harness_fixture`."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import stripe

CARD_OK = "pm_card_visa"  # localstripe: 4242 4242 4242 4242, charged
# localstripe's card that attaches but whose charge is declined (card_declined); its
# pm_card_visa_chargeDeclined is only refused when attached to a customer, not when charged.
CARD_DECLINED = "pm_card_chargeCustomerFail"

# localstripe's server with its store kept in memory only: it otherwise pickles every write to one
# fixed /tmp file shared by every instance on the machine. Bound to the loopback address only.
_BOOT = """
import sys
from aiohttp import web
from localstripe import resources, server
resources.Store.dump_to_disk = lambda self: None
web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

# real Stripe parameters localstripe answers with 400 "Unexpected ...", per path
_UNSUPPORTED = {"/v1/payment_intents": {"description"}}

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StripeHarness:
    def __init__(self):
        self.secret_key = "sk_test_" + uuid.uuid4().hex  # localstripe accepts any sk_ key
        self.stripe_port = free_port()
        self.stripe_url = f"http://127.0.0.1:{self.stripe_port}"
        self.forwarded = []  # (method, path, idempotency_key, api key) that reached localstripe
        self.replayed = []  # (method, path, idempotency_key) answered from the idempotency cache
        self.webhooks = []  # (body: bytes, Stripe-Signature) sent by localstripe
        self.delay = 2.0  # seconds, for the "slow" failure mode
        self._failures = []
        self._answers = {}  # (idempotency key, path) -> (request parameters, (status, headers, body))
        self.in_flight = set()  # (idempotency key, path) of requests being executed
        self._lock = threading.Lock()
        self._process = None
        self._server = None
        self._log = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def api_base(self) -> str:
        """Where the SDK should send its requests: the proxy."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._log = tempfile.NamedTemporaryFile(prefix="localstripe-", suffix=".log", delete=False)
        self._process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(self.stripe_port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready(timeout=30)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"localstripe exited ({self._process.returncode}):\n{self._log_tail()}")
            try:
                status, _ = self.direct("GET", "/v1/payment_intents")
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"localstripe did not answer within {timeout}s:\n{self._log_tail()}")
            time.sleep(0.1)

    def _log_tail(self):
        self._log.flush()
        with open(self._log.name, encoding="utf-8", errors="replace") as f:
            return f.read()[-2000:]

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            os.unlink(self._log.name)

    # ------------------------------------------------------------------ failures

    def fail_next(self, count=1, mode="error"):
        """The next `count` requests to the proxy fail: "error" (HTTP 500), "drop" (connection closed,
        nothing forwarded), "lost_response" (forwarded and applied, answer lost), "slow" (answered
        after `self.delay` seconds)."""
        assert mode in ("error", "drop", "lost_response", "slow")
        with self._lock:
            self._failures.extend([mode] * count)

    def _next_failure(self):
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def wait_idle(self, timeout=10):
        """Until no idempotent request is being executed (one whose client gave up, for example)."""
        deadline = time.monotonic() + timeout
        while self.in_flight:
            assert time.monotonic() < deadline, "requests still in flight"
            time.sleep(0.05)

    def forwarded_with_key(self, key):
        return [f for f in self.forwarded if f[2] == key]

    # ------------------------------------------------------------------ localstripe, directly

    def direct(self, method, path, params=None):
        """A request straight to localstripe (not through the proxy) → (status, JSON)."""
        body = urlencode(_flatten(params or {})) if params else None
        headers = {"Authorization": "Bearer " + self.secret_key}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", self.stripe_port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            conn.close()

    def payment_intents(self, payment_id=None):
        """The PaymentIntents localstripe holds (those of one billing payment_id if given)."""
        status, data = self.direct("GET", "/v1/payment_intents?limit=100")
        assert status == 200, data
        intents = data["data"]
        if payment_id is not None:
            intents = [pi for pi in intents if pi["metadata"].get("payment_id") == payment_id]
        return intents

    def refunds(self, payment_intent):
        status, data = self.direct("GET", f"/v1/refunds?payment_intent={payment_intent}&limit=100")
        assert status == 200, data
        return data["data"]

    def confirm(self, payment_intent, card=CARD_OK):
        """What stripe.js does in the parent's browser: attach a test card and confirm. Returns the
        PaymentIntent as localstripe then holds it (a declined card answers 402 to the confirm)."""
        status, data = self.direct("POST", f"/v1/payment_intents/{payment_intent}", {"payment_method": card})
        assert status == 200, data
        status, data = self.direct("POST", f"/v1/payment_intents/{payment_intent}/confirm")
        assert status in (200, 402), data
        status, data = self.direct("GET", f"/v1/payment_intents/{payment_intent}")
        assert status == 200, data
        return data

    # ------------------------------------------------------------------ webhooks

    def register_webhook(self, secret, events=None):
        """localstripe signs its events with `secret` and posts them to the proxy (about 1 s later)."""
        params = {"url": self.api_base + "/_harness/webhook", "secret": secret}
        if events:
            params["events"] = list(events)
        status, _ = self.direct("POST", f"/_config/webhooks/{uuid.uuid4().hex}", params)
        assert status == 200

    def wait_webhook(self, event_type, payment_intent=None, timeout=10):
        """The first webhook of that type (about that PaymentIntent) localstripe sent: (body, header)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body, signature in list(self.webhooks):
                data = json.loads(body)
                obj = data["data"]["object"]
                if data["type"] == event_type and payment_intent in (None, obj.get("id")):
                    return body, signature
            time.sleep(0.1)
        raise AssertionError(f"no {event_type} webhook within {timeout}s")


def sign(body, secret, timestamp=None):
    """The Stripe-Signature header Stripe would send for this body (str or bytes)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    return stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)


def event_body(event_type, obj, event_id=None, created=None):
    """A Stripe event (API shape) around `obj`, as the JSON text a webhook carries."""
    return json.dumps(
        {
            "id": event_id or "evt_" + uuid.uuid4().hex[:24],
            "object": "event",
            "type": event_type,
            "created": created if created is not None else int(time.time()),
            "livemode": False,
            "api_version": stripe.api_version,
            "data": {"object": obj},
        },
        indent=2,
    )


def _flatten(params, prefix=""):
    """Stripe's form encoding: {"metadata": {"a": 1}, "events": ["x"]} → metadata[a]=1, events[0]=x."""
    pairs = []
    items = params.items() if isinstance(params, dict) else enumerate(params)
    for key, value in items:
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict | list):
            pairs.extend(_flatten(value, name))
        else:
            pairs.append((name, str(value)))
    return pairs


def _handler_for(harness):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # quiet
            pass

        def do_GET(self):
            self._handle()

        def do_POST(self):
            self._handle()

        def do_DELETE(self):
            self._handle()

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            if path == "/_harness/webhook":
                harness.webhooks.append((body, self.headers.get("Stripe-Signature")))
                return self._answer(200, [], b"{}")
            failure = harness._next_failure()
            if failure == "error":  # before Stripe's idempotency layer (as a failing load balancer)
                return self._error(500, "api_error", "Injected failure (test harness).")
            if failure == "drop":
                self.close_connection = True
                return
            key = self.headers.get("Idempotency-Key") if self.command == "POST" else None
            if key is None:
                if failure == "slow":
                    time.sleep(harness.delay)
                answer = self._forward(path, body)
            else:
                answer = self._idempotent(key, path, body, failure == "slow")
            if failure == "lost_response":
                self.close_connection = True
                return
            self._answer(*answer)

        def _idempotent(self, key, path, body, slow):
            """Stripe's rules: the first answer is saved and replayed to a retry with the same key and
            parameters; other parameters → 400 idempotency_error; the same key while the first
            request still runs → 409 (nothing saved, retry later)."""
            params = sorted(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            with harness._lock:
                saved = harness._answers.get((key, path))
                if saved is None and (key, path) in harness.in_flight:
                    return self._error_answer(
                        409, "idempotency_error", "A request with this key is in progress."
                    )
                if saved is None:
                    harness.in_flight.add((key, path))
            if saved is not None:
                saved_params, (status, headers, payload) = saved
                if saved_params != params:
                    return self._error_answer(
                        400, "idempotency_error", "Keys for idempotent requests need the same parameters."
                    )
                harness.replayed.append((self.command, path, key))
                return status, [*headers, ("Idempotent-Replayed", "true")], payload
            try:
                if slow:
                    time.sleep(harness.delay)
                answer = self._forward(path, body)
                with harness._lock:
                    harness._answers[(key, path)] = (params, answer)
                return answer
            finally:
                with harness._lock:
                    harness.in_flight.discard((key, path))

        def _forward(self, path, body):
            unsupported = _UNSUPPORTED.get(path) if self.command == "POST" else None
            if unsupported and body:
                pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
                body = urlencode([(k, v) for k, v in pairs if k not in unsupported]).encode()
            headers = {
                name: value
                for name, value in self.headers.items()
                if name.lower() not in _HOP_HEADERS and name.lower() != "host"
            }
            headers["Content-Length"] = str(len(body))
            harness.forwarded.append(
                (self.command, path, self.headers.get("Idempotency-Key"), _api_key(self.headers))
            )
            conn = http.client.HTTPConnection("127.0.0.1", harness.stripe_port, timeout=30)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                kept = [(n, v) for n, v in response.getheaders() if n.lower() not in _HOP_HEADERS]
                return response.status, kept, payload
            finally:
                conn.close()

        def _error_answer(self, status, error_type, message):
            payload = json.dumps({"error": {"type": error_type, "message": message}}).encode()
            return status, [("Content-Type", "application/json")], payload

        def _error(self, status, error_type, message):
            self._answer(*self._error_answer(status, error_type, message))

        def _answer(self, status, headers, payload):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def _api_key(headers):
    """The secret key a request was sent with (the SDK uses HTTP Bearer auth)."""
    kind, _, value = (headers.get("Authorization") or "").partition(" ")
    if kind == "Basic":
        return base64.b64decode(value).decode().partition(":")[0]
    return value or None


@pytest.fixture(scope="module", name="stripe_harness")
def stripe_harness_fixture():
    """Import `stripe_harness_fixture` into a test module; tests then ask for `stripe_harness`."""
    harness = StripeHarness().start()
    yield harness
    harness.stop()
