"""A real browser on the server-rendered example sites: headless Chromium, driven by
Selenium, against ``examples/pages_starlette.py`` under uvicorn and
``examples/pages_flask.py`` under gunicorn, each on a free loopback port with a fresh
SQLite store, its mail going to a real SMTP server on loopback (`MailCatcher`).

The browser keeps the cookies, follows the redirects and posts the forms itself, so
what is checked is what a person gets: the cookie attributes as Chromium stored them,
a form posted from another origin refused, the mailed links followed.  Chromium treats
http://127.0.0.1 as a secure context, so it accepts the ``Secure`` ``__Host-`` cookies
there without TLS (the test checks that it does).

Skipped where Chromium, chromedriver or Selenium is missing, except under ``CI``, where
that is a failure.  With ``AUTHGATE_SCREENSHOTS=<directory>`` the login and reset pages
are saved there (docs/images/ holds the ones the docs show).

The last test starts ``python -m examples``, the README's demo command, which serves
the API demo and both sites, and stops it as a person or a service manager would.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from authgate.testing import MailCatcher, free_port

pytest.importorskip("flask")
pytest.importorskip("starlette")
pytest.importorskip("jinja2")

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait

    NO_SELENIUM = ""
except ImportError as err:  # pragma: no cover - the dev extra brings it
    NO_SELENIUM = f"selenium is not installed ({err}): pip install -e '.[dev]'"

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ADMIN, ADMIN_PW = "admin", "admin password 1"
#: How long the browser may take for a page or a redirect chain.
WAIT = 15
SESSION_COOKIE, CSRF_COOKIE = "__Host-authgate_session", "__Host-authgate_csrf"
REMEMBER_TTL = 2_592_000  # AUTHGATE_REMEMBER_TTL's default: 30 days


def require_browser() -> None:
    """Skip where no browser can be driven, naming what to install; under CI (which
    installs it) fail instead."""
    missing = NO_SELENIUM
    if not missing and (CHROMIUM is None or CHROMEDRIVER is None):
        missing = (
            "chromium and chromedriver are not installed "
            "(Debian: apt-get install chromium chromium-driver)"
        )
    if missing and os.environ.get("CI"):
        pytest.fail(f"CI runs the browser tests: {missing}")
    if missing:
        pytest.skip(missing)


# -- the sites -------------------------------------------------------------------------


@dataclass
class Site:
    """An example site served by a real server, its mail caught on loopback."""

    framework: str
    url: str
    mail: MailCatcher
    process: subprocess.Popen[bytes]
    log: Path

    def wait_until_ready(self) -> None:
        """Poll the home page until it answers, or fail with the server's log."""
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.framework} did not start: {self.log.read_text()[-3000:]}"
                )
            time.sleep(0.05)  # the next poll; the deadline bounds the wait


def _command(framework: str, port: int) -> list[str]:
    if framework == "starlette":
        return [sys.executable, "-m", "uvicorn", "examples.pages_starlette:app",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
    # gthread: a browser keeps connections open (and opens spare ones), which would hold
    # a sync worker until its timeout.
    return [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
            "--threads", "8", "--log-level", "warning", "examples.pages_flask:app"]  # fmt: skip


@pytest.fixture(params=["starlette", "flask"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """The example site of one framework, started (not yet ready: the browser starts
    meanwhile).  Only the store, key, admin, cheap hashing, mail and address are set
    here; the rest is the example's own defaults."""
    require_browser()
    framework = str(request.param)
    port = free_port()
    with MailCatcher() as catcher:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")},
            "AUTHGATE_STORE": f"sqlite:///{tmp_path / 'authgate.db'}",
            "AUTHGATE_SECRET_KEY": secrets.token_urlsafe(48),
            "AUTHGATE_SUPERUSER_USERNAME": ADMIN,
            "AUTHGATE_SUPERUSER_PASSWORD": ADMIN_PW,
            "AUTHGATE_ARGON2_TIME_COST": "1",
            "AUTHGATE_ARGON2_MEMORY_COST": "8",
            "AUTHGATE_ARGON2_PARALLELISM": "1",
            "AUTHGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "AUTHGATE_MAIL_URL": catcher.url,
        }
        log = tmp_path / "server.log"
        with open(log, "wb") as sink:  # a file, not a pipe: a chatty server never blocks
            process = subprocess.Popen(
                _command(framework, port), cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
            )
        try:
            yield Site(framework, f"http://127.0.0.1:{port}", catcher, process, log)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def browser(site: Site) -> Iterator[WebDriver]:
    """Headless Chromium, one per site (so no cookie of one site's store reaches the
    other: cookies belong to a host, not to a port)."""
    assert CHROMIUM is not None and CHROMEDRIVER is not None  # `site` required them
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests may run as root
        "--disable-dev-shm-usage",
        "--window-size=900,700",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(WAIT)
        site.wait_until_ready()
        yield driver
    finally:
        driver.quit()


@dataclass
class Attacker:
    """Another origin (its own loopback port) serving whatever page a test sets."""

    url: str
    page: bytearray


@pytest.fixture
def attacker() -> Iterator[Attacker]:
    page = bytearray()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(page)))
            self.end_headers()
            self.wfile.write(bytes(page))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Attacker(f"http://127.0.0.1:{server.server_port}/", page)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- what a person does ---------------------------------------------------------------------


def wait(driver: WebDriver, until: Callable[[WebDriver], Any]) -> None:
    """Poll `until` for up to WAIT seconds.  Asked while one document replaces another,
    chromedriver may answer an "unknown error" (a node that no longer belongs to the
    document) rather than a stale element: that is one more poll, not a failure."""
    WebDriverWait(
        driver, WAIT, poll_frequency=0.05, ignored_exceptions=(WebDriverException,)
    ).until(until)


def fill_and_submit(driver: WebDriver, action: str, **fields: str | bool) -> None:
    """Fill the page's form posting to `action` (checkboxes ticked or not), press its
    button, and wait until the browser has left the page and followed the redirects.
    The fields are set by one script rather than typed key by key: what is under test
    is what the form sends, and each WebDriver command costs a round trip."""
    form = driver.find_element(By.CSS_SELECTOR, f"form[action='{action}']")
    driver.execute_script(
        """const [form, values] = arguments;
        for (const [name, value] of Object.entries(values)) {
            const field = form.elements.namedItem(name);
            if (field.type === "checkbox") field.checked = value; else field.value = value;
        }
        window.leftBehind = true;  // gone with this document""",
        form,
        fields,
    )
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver, on_a_new_page)


def on_a_new_page(driver: WebDriver) -> bool:
    """Has the browser left the page `fill_and_submit` marked, and loaded the next?"""
    return bool(
        driver.execute_script(
            "return window.leftBehind === undefined && document.readyState === 'complete'"
        )
    )


def at(driver: WebDriver, site: Site) -> tuple[str, dict[str, list[str]]]:
    """The path the browser is at, and its query."""
    parts = urlsplit(driver.current_url)
    assert f"{parts.scheme}://{parts.netloc}" == site.url, driver.current_url
    return parts.path, parse_qs(parts.query)


def status(driver: WebDriver) -> int:
    """The HTTP status of the document the browser shows (Navigation Timing 2)."""
    code = driver.execute_script(
        "return performance.getEntriesByType('navigation')[0].responseStatus"
    )
    assert isinstance(code, int)
    return code


def text(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def notes(driver: WebDriver) -> list[str]:
    return [str(li.text) for li in driver.find_elements(By.CSS_SELECTOR, "ul.notes li")]


def cookies(driver: WebDriver) -> dict[str, dict[str, Any]]:
    return {str(c["name"]): c for c in driver.get_cookies()}


def screenshot(driver: WebDriver, name: str) -> None:
    """Save the page as `name` in AUTHGATE_SCREENSHOTS, when that names a directory."""
    directory = os.environ.get("AUTHGATE_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(Path(directory) / name))


def link_to(site: Site, to: str, path: str) -> str:
    """The link to `path` on the site in the next mail to `to`."""
    mail = site.mail.wait_for(to, timeout=WAIT)
    found = [link for link in MailCatcher.links(mail) if link.startswith(site.url + path)]
    assert found, MailCatcher.links(mail)
    return found[0]


# -- the tests ------------------------------------------------------------------------------


def test_a_browser_logs_in_posts_a_form_and_logs_out_and_other_sites_cannot_post(
    site: Site, browser: WebDriver, attacker: Attacker
) -> None:
    driver = browser
    # A page behind require_auth, without a session: authgate sends the browser to the
    # login page, with the page in `next`.
    driver.get(site.url + "/notes")
    assert at(driver, site) == ("/login", {"next": ["/notes"]})
    assert "Log in to see that page." in text(driver)
    screenshot(driver, "login.png")
    fill_and_submit(driver, "/auth/session", username=ADMIN, password="not the password")
    assert at(driver, site) == (
        "/login",
        {"error": ["invalid_credentials"], "next": ["/notes"]},
    )
    assert "Wrong username or password." in text(driver)
    assert SESSION_COOKIE not in cookies(driver)

    logged_in_at = time.time()
    fill_and_submit(driver, "/auth/session", username=ADMIN, password=ADMIN_PW, remember=True)
    assert at(driver, site) == ("/notes", {})
    assert f"Logged in as {ADMIN}" in text(driver)
    assert notes(driver) == []

    # The cookies as the browser keeps them: __Host- (so Secure, Path=/, no Domain: only
    # this host, never a subdomain or a sibling, can set or shadow them), HttpOnly (no
    # script reads them), SameSite=Lax; "remember me" makes the session cookie outlive
    # the browser, for AUTHGATE_REMEMBER_TTL.
    kept = cookies(driver)
    session, csrf = kept[SESSION_COOKIE], kept[CSRF_COOKIE]
    for cookie in (session, csrf):
        assert cookie["httpOnly"] is True
        assert cookie["secure"] is True
        assert cookie["sameSite"] == "Lax"
        assert cookie["path"] == "/"
        assert cookie["domain"] == "127.0.0.1"  # host-only: no leading dot, no parent
    assert str(session["value"]).startswith("ags_")
    assert abs(int(session["expiry"]) - (logged_in_at + REMEMBER_TTL)) < 120
    assert "expiry" not in csrf  # the pre-login binding ends with the browser
    assert driver.execute_script("return document.cookie") == ""

    # The page's own form, with the token the page embeds.
    fill_and_submit(driver, "/notes", text="buy milk")
    assert at(driver, site) == ("/notes", {})
    assert notes(driver) == ["buy milk"]

    # Another origin makes the browser post the same form without a token. The session
    # cookie goes along (another port of the same host is the same site for SameSite),
    # so only the CSRF check stands between: 403 before the app runs.
    attacker.page[:] = (
        f"<!doctype html><title>You won</title><form method=post action='{site.url}/notes'>"
        "<input type=hidden name=text value='written by another site'></form>"
        "<script>document.forms[0].submit()</script>"
    ).encode()
    driver.get(attacker.url)
    wait(driver, lambda d: d.current_url == f"{site.url}/notes" and "csrf_failed" in text(d))
    assert status(driver) == 403
    # ... and with a token of another session (the attacker's own, of a real login).
    other = httpx.post(
        f"{site.url}/auth/session", json={"username": ADMIN, "password": ADMIN_PW}, timeout=WAIT
    )
    assert other.status_code == 200, other.text
    other_token = other.json()["csrf_token"]
    attacker.page[:] = (
        f"<!doctype html><title>You won</title><form method=post action='{site.url}/notes'>"
        "<input type=hidden name=text value='written by another site'>"
        f"<input type=hidden name=csrf_token value='{other_token}'></form>"
        "<script>document.forms[0].submit()</script>"
    ).encode()
    driver.get(attacker.url)
    wait(driver, lambda d: d.current_url == f"{site.url}/notes" and "csrf_failed" in text(d))
    assert status(driver) == 403
    driver.get(site.url + "/notes")
    assert notes(driver) == ["buy milk"]

    # Log out with the header's button: the session cookie is gone, and the protected
    # page sends the browser to the login page again.
    fill_and_submit(driver, "/auth/logout")
    assert at(driver, site) == ("/login", {"logged_out": ["1"]})
    assert "You are logged out." in text(driver)
    assert SESSION_COOKIE not in cookies(driver)
    driver.get(site.url + "/notes")
    assert at(driver, site) == ("/login", {"next": ["/notes"]})

    # Sign up, confirm the address from the mailed link (the page's button, not the
    # link's GET, spends the token), forget the password, reset it from the mailed link.
    email = "alice@example.com"
    first_pw, new_pw = "alice first password", "alice second password"
    driver.get(site.url + "/signup")
    fill_and_submit(driver, "/auth/signup", username="alice", email=email, password=first_pw)
    assert at(driver, site) == ("/login", {"signed_up": ["1"]})
    driver.get(site.url + "/signup")  # a taken name: back to the form, which says so
    fill_and_submit(driver, "/auth/signup", username="alice", email=email, password=first_pw)
    path, query = at(driver, site)
    assert (path, query["error"]) == ("/signup", ["user_exists"])
    assert "That username is taken" in text(driver)
    driver.get(site.url + "/verify-email")
    fill_and_submit(driver, "/auth/email/resend", username="alice")
    assert at(driver, site) == ("/verify-email", {"sent": ["1"]})
    verify_link = link_to(site, email, "/verify-email?token=")
    driver.get(verify_link)
    fill_and_submit(driver, "/auth/email/verify")
    assert at(driver, site) == ("/verify-email", {"verified": ["1"]})
    assert "Your email address is confirmed." in text(driver)
    driver.get(verify_link)  # a link works once
    fill_and_submit(driver, "/auth/email/verify")
    path, query = at(driver, site)
    assert (path, query["error"]) == ("/verify-email", ["invalid_link"])
    assert "This link is invalid" in text(driver)

    driver.get(site.url + "/forgot-password")
    fill_and_submit(driver, "/auth/password/forgot", username="alice")
    assert at(driver, site) == ("/forgot-password", {"sent": ["1"]})
    reset_link = link_to(site, email, "/reset-password?token=")
    driver.get(reset_link)
    screenshot(driver, "reset-password.png")
    fill_and_submit(driver, "/auth/password/reset", new_password=new_pw)
    assert at(driver, site) == ("/login", {"reset": ["1"]})
    assert "Your password is changed" in text(driver)

    fill_and_submit(driver, "/auth/session", username="alice", password=first_pw)
    assert at(driver, site)[1]["error"] == ["invalid_credentials"]
    fill_and_submit(driver, "/auth/session", username="alice", password=new_pw)
    assert at(driver, site) == ("/", {})
    assert "Logged in as alice" in text(driver)
    assert "expiry" not in cookies(driver)[SESSION_COOKIE]  # not remembered: ends with the browser
    driver.get(reset_link)  # a reset link works once too
    fill_and_submit(driver, "/auth/password/reset", new_password="alice third password")
    path, query = at(driver, site)
    assert (path, query["error"]) == ("/reset-password", ["invalid_link"])

    fill_and_submit(driver, "/auth/logout")
    assert SESSION_COOKIE not in cookies(driver)
    driver.get(site.url + "/notes")
    assert at(driver, site) == ("/login", {"next": ["/notes"]})
    changed = site.mail.wait_for(email, timeout=WAIT)  # the reset told the owner
    assert "password" in str(changed["Subject"]).lower()


# -- the demo command ---------------------------------------------------------------------


def _free_run_of_ports(length: int) -> int:
    """The first of `length` consecutive loopback ports that are free now."""
    for _ in range(100):
        first = free_port()
        try:
            for port in range(first + 1, first + length):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError(f"found no {length} consecutive free ports")


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_the_demo_command_serves_the_api_and_both_sites_and_stopping_it_stops_them(
    stop: str, tmp_path: Path
) -> None:
    """``python -m examples`` (the README's demo command): the API on PORT, the
    Starlette and Flask sites on PORT+1 and PORT+2, each a process of its own.  A Ctrl-C
    (SIGINT to the terminal's process group) stops every one of them, and so does a
    SIGTERM to the demo alone (a service manager's, or `kill`)."""
    pytest.importorskip("fastapi")
    port = _free_run_of_ports(3)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")},
        "AUTHGATE_STORE": f"sqlite:///{tmp_path / 'authgate.db'}",
        "AUTHGATE_SECRET_KEY": secrets.token_urlsafe(48),
        "AUTHGATE_SUPERUSER_USERNAME": ADMIN,
        "AUTHGATE_SUPERUSER_PASSWORD": ADMIN_PW,
        "AUTHGATE_ARGON2_TIME_COST": "1",
        "AUTHGATE_ARGON2_MEMORY_COST": "8",
        "AUTHGATE_ARGON2_PARALLELISM": "1",
        "PORT": str(port),
    }
    log = tmp_path / "demo.log"
    with open(log, "wb") as sink:
        demo = subprocess.Popen(
            [sys.executable, "-m", "examples"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, as a terminal's job
        )
    try:
        pages = {
            "Starlette": f"http://127.0.0.1:{port + 1}",
            "Flask": f"http://127.0.0.1:{port + 2}",
        }
        deadline = time.monotonic() + 60
        while True:
            try:
                api = httpx.get(f"http://127.0.0.1:{port}/public", timeout=5)
                homes = {name: httpx.get(url + "/", timeout=5) for name, url in pages.items()}
                if api.status_code == 200 and all(r.status_code == 200 for r in homes.values()):
                    break
            except httpx.TransportError:
                pass
            if demo.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the demo did not start: {log.read_text()[-3000:]}")
            time.sleep(0.05)  # the next poll; the deadline bounds the wait
        for name, url in pages.items():
            assert f"served by {name}." in homes[name].text
            page = httpx.get(url + "/notes", headers={"accept": "text/html"}, timeout=5)
            assert (page.status_code, page.headers["location"]) == (302, "/login?next=/notes")
        banner = log.read_text()
        assert all(f"{url}/notes" in banner for url in pages.values()), banner

        if stop == "ctrl-c":
            os.killpg(demo.pid, signal.SIGINT)
        else:
            demo.terminate()
        assert demo.wait(30) == (0 if stop == "ctrl-c" else 128 + signal.SIGTERM), log.read_text()
        with pytest.raises(ProcessLookupError):  # no site outlived it
            os.killpg(demo.pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever of the group is left
            os.killpg(demo.pid, signal.SIGKILL)
        demo.wait()
