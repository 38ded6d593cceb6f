"""A real headless browser for end-to-end tests: Playwright (PyPI) driving Debian's chromium package,
never a browser that Playwright would download. `make test` installs chromium when it is missing;
without it these tests fail loudly rather than skip.

Playwright's sync API cannot run in the test process: tests/conftest.py monkey-patches eventlet
there, and Playwright's asyncio loop then never sees its driver exit (it hangs on stop). So a test
names a scenario, a plain function `scenario(browser, **kwargs)` in its own module, and
`run_scenario` runs it in a fresh Python process; the scenario asserts, and may return a JSON-able
result. Its traceback, if any, becomes the test's failure message.

    def signs_in(browser, site_url):
        page = new_context(browser).new_page()
        ...

    def test_x(platform):
        run_scenario(signs_in, site_url=...)
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DEFAULT_TIMEOUT_MS = 15_000
RESULT_MARK = "BROWSER-SCENARIO-RESULT "


class ChromiumMissing(RuntimeError):
    pass


def chromium_path() -> str:
    """Debian's chromium (CHROMIUM_PATH overrides); a clear failure when it is not installed."""
    configured = os.environ.get("CHROMIUM_PATH")
    for candidate in (configured,) if configured else CHROMIUM_CANDIDATES:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = None if configured else shutil.which("chromium")
    if found:
        return found
    raise ChromiumMissing(
        "chromium is not installed: `apt-get install chromium` (Debian's package; `make test` does it), "
        "or set CHROMIUM_PATH"
    )


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """A Playwright Browser on Debian's chromium (only in a process without eventlet)."""
    from playwright.sync_api import sync_playwright

    # The stack listens on 127.0.0.1 only: "localhost" goes straight there (no ::1 attempt first), and
    # no proxy from the environment comes in between.
    args = [
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-proxy-server",
        "--host-resolver-rules=MAP localhost 127.0.0.1",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # chromium refuses to start its sandbox as root (CI runs as root)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()


def new_context(browser: Any, **kwargs: Any) -> Any:
    """A fresh browser profile (no cookies), French, phone-sized unless told otherwise."""
    options = {"locale": "fr-FR", "viewport": {"width": 390, "height": 844}, **kwargs}
    context = browser.new_context(**options)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.on("response", _record_navigation)
    context.on("requestfailed", _record_navigation_failure)
    return context


# Every main-frame navigation with its answer (redirects included), shown when a scenario fails: a
# redirect to a page outside the stack (an OIDC error sent to a client's callback, say) otherwise
# surfaces only as the first URL's net::ERR_CONNECTION_REFUSED.
_navigations: list[str] = []


def _record_navigation(response: Any) -> None:
    if response.request.is_navigation_request():
        location = response.headers.get("location")
        _navigations.append(
            f"{response.status} {response.request.method} {response.url}"
            + (f" -> {location}" if location else "")
        )


def _record_navigation_failure(request: Any) -> None:
    if request.is_navigation_request():
        _navigations.append(f"FAILED {request.method} {request.url}: {request.failure}")


def run_scenario(scenario: Callable[..., Any], timeout: float = 180, **kwargs: Any) -> Any:
    """Run `scenario(browser, **kwargs)` in a fresh process; its return value, or an AssertionError
    with the scenario's output and traceback."""
    try:
        chromium_path()
    except ChromiumMissing as exc:
        raise AssertionError(str(exc)) from None
    spec = {"file": inspect.getfile(scenario), "name": scenario.__name__, "kwargs": kwargs}
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO)
    process = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "tests.browser", json.dumps(spec)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = process.stdout.splitlines()
    results = [line[len(RESULT_MARK) :] for line in lines if line.startswith(RESULT_MARK)]
    if process.returncode != 0 or not results:
        raise AssertionError(
            f"browser scenario {scenario.__name__} failed (exit {process.returncode}):\n"
            f"{process.stdout[-4000:]}\n{process.stderr[-6000:]}"
        )
    return json.loads(results[-1])


def _show_pages(browser: Any) -> None:
    """The navigations, and where each open page was when the scenario failed and what it said."""
    print("--- navigations\n" + "\n".join(_navigations[-30:]), file=sys.stderr, flush=True)
    for context in browser.contexts:
        for page in context.pages:
            try:
                body = page.locator("body").inner_text(timeout=2000)[:1500]
            except Exception as exc:  # noqa: BLE001 - a diagnostic must not hide the failure
                body = f"(unreadable: {type(exc).__name__})"
            print(f"--- page at {page.url}\n{body}", file=sys.stderr, flush=True)


def _main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    module_spec = importlib.util.spec_from_file_location("browser_scenarios", spec["file"])
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    scenario = getattr(module, spec["name"])
    with headless_chromium() as browser:
        try:
            result = scenario(browser, **spec["kwargs"])
        except BaseException:
            _show_pages(browser)
            raise
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
