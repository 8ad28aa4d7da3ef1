"""A real browser on the server-rendered example sites: headless Chromium, driven by
Selenium, against ``examples/pages_starlette.py`` under uvicorn and
``examples/pages_flask.py`` under gunicorn, each on a free loopback port with a fresh
SQLite store, its mail going to a real SMTP server on loopback (`MailCatcher`).

The browser keeps the cookies, follows the redirects and posts the forms itself, so
what is checked is what a person gets: the cookie attributes as Chromium stored them,
a form posted from another origin refused, the mailed links followed.  Chromium treats
http://127.0.0.1 as a secure context, so it accepts the ``Secure`` ``__Host-`` cookies
there without TLS (the test checks that it does).

The second factors are set up and used as a person does, through the pages' script
(``examples/static/account.js``): an authenticator app (its codes computed here with
pyotp from the key the page shows), and passkeys held by Chromium's virtual
authenticator (WebAuthn's test API, through Selenium).  A passkey belongs to a domain,
never to an IP address, so those tests open the sites at http://localhost:<port> (the
examples' default relying party, for the ``PORT`` the fixture gives them).

A login through an identity provider goes through a real one (panva's oidc-provider
under Node.js, `oidc.OpenIdProvider`, at http://localhost:<its port>: another host than
the site's, as a provider is): the browser presses the site's "Sign in with op", fills
the provider's own login form and comes back signed in; logging out there too is the
provider's end-session page, confirmed in the browser.

Skipped where Chromium, chromedriver or Selenium is missing (or Node.js, for the provider
tests), except under ``CI``, where that is a failure.  With
``AUTHGATE_SCREENSHOTS=<directory>`` the login and reset pages are saved there
(docs/images/ holds the ones the docs show).

The last test starts ``python -m examples``, the README's demo command, which serves
the API demo and both sites, and stops it as a person or a service manager would.
"""

from __future__ import annotations

import contextlib
import json
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
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pyotp
import pytest

from authgate.testing import MailCatcher, free_port
from oidc import Client, OpenIdProvider, User

pytest.importorskip("flask")
pytest.importorskip("starlette")
pytest.importorskip("jinja2")

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions
    from selenium.webdriver.remote.command import Command
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


@pytest.fixture
def site_env() -> dict[str, str]:
    """What a test adds to its site's environment: none, unless the test parametrizes
    ``site_env`` itself (pytest then uses its values instead of this fixture's)."""
    return {}


@pytest.fixture
def site_port() -> int:
    """The loopback port the site is served on, known before it starts: what its
    `site_env` names (an identity provider's registration of the site's callback)
    may depend on it."""
    return free_port()


@pytest.fixture(params=["starlette", "flask"])
def site(
    request: pytest.FixtureRequest, tmp_path: Path, site_env: dict[str, str], site_port: int
) -> Iterator[Site]:
    """The example site of one framework, started (not yet ready: the browser starts
    meanwhile).  Only the store, key, admin, cheap hashing, mail, address and port are
    set here (and the test's `site_env`); the rest is the example's own defaults, its
    passkeys for http://localhost:<port> among them."""
    require_browser()
    framework = str(request.param)
    port = site_port
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
            "PORT": str(port),
            **site_env,
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
    # Chromium's network log (read by `visited`): every URL of a redirect chain, where
    # current_url shows only the last.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    options.add_experimental_option(
        "perfLoggingPrefs", {"enableNetwork": True, "enablePage": False}
    )
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
    button, and wait until the browser has left the page and followed the redirects."""
    submit(driver, f"form[action='{action}']", **fields)
    wait(driver, on_a_new_page)


def submit(driver: WebDriver, form_selector: str, **fields: str | bool) -> None:
    """Fill the form at `form_selector` and press its button, without waiting (the
    pages' script handles some forms without leaving the page).  The fields are set by
    one script rather than typed key by key: what is under test is what the form sends,
    and each WebDriver command costs a round trip."""
    form = driver.find_element(By.CSS_SELECTOR, form_selector)
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
    form.find_element(By.CSS_SELECTOR, "[type=submit]").click()


def press(driver: WebDriver, selector: str) -> None:
    """Press the button at `selector` (one the pages' script handles), without waiting;
    `on_a_new_page` tells when the script has sent the browser to another page."""
    driver.execute_script("window.leftBehind = true")
    driver.find_element(By.CSS_SELECTOR, selector).click()


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


def on_localhost(site: Site) -> Site:
    """The site at http://localhost:<port>, where its passkeys work (a relying party is
    a domain, never an IP address).  The browser keeps its cookies apart from
    127.0.0.1's: another host."""
    return replace(site, url=site.url.replace("://127.0.0.1:", "://localhost:"))


def add_authenticator(driver: WebDriver) -> None:
    """Give the browser a platform authenticator (as a laptop's fingerprint reader,
    through WebAuthn's test API): it keeps discoverable passkeys and verifies its user
    at each use."""
    driver.add_virtual_authenticator(
        VirtualAuthenticatorOptions(
            protocol=VirtualAuthenticatorOptions.Protocol.CTAP2,
            transport=VirtualAuthenticatorOptions.Transport.INTERNAL,
            has_resident_key=True,
            has_user_verification=True,
            is_user_verified=True,
        )
    )


def log_in(driver: WebDriver, site: Site, username: str, password: str) -> None:
    """Log in with the login page's form."""
    driver.get(site.url + "/login")
    fill_and_submit(driver, "/auth/session", username=username, password=password)


def log_out(driver: WebDriver, site: Site) -> None:
    """Log out with the header's button."""
    fill_and_submit(driver, "/auth/logout")
    assert at(driver, site) == ("/login", {"logged_out": ["1"]})
    assert SESSION_COOKIE not in cookies(driver)


def open_security(driver: WebDriver, site: Site) -> None:
    """Open the account's security page and wait until its script has filled it."""
    driver.get(site.url + "/account/security")
    assert at(driver, site) == ("/account/security", {})
    wait(driver, lambda d: text_of(d, "#factor-status") != "Loading…")


def text_of(driver: WebDriver, selector: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, selector).text)


def shown(driver: WebDriver, selector: str) -> bool:
    """Is the element at `selector` there and visible?"""
    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return bool(found) and bool(found[0].is_displayed())


def script_message(driver: WebDriver) -> str:
    """What the pages' script last told the person (empty when nothing)."""
    return text_of(driver, "#script-message")


def passkey_names(driver: WebDriver) -> list[str]:
    """The passkeys the security page lists, by name."""
    items = driver.find_elements(By.CSS_SELECTOR, "#passkey-list li strong")
    return [str(item.text) for item in items]


def recovery_codes(driver: WebDriver) -> list[str]:
    return [str(li.text) for li in driver.find_elements(By.CSS_SELECTOR, "#recovery-codes li")]


def answered(driver: WebDriver, path: str) -> bool:
    """Has the page's script had its answer from `path` (Resource Timing)?"""
    return bool(
        driver.execute_script(
            """return performance.getEntriesByType("resource").some((entry) =>
                new URL(entry.name).pathname === arguments[0] && entry.responseEnd > 0)""",
            path,
        )
    )


def next_code(totp: pyotp.TOTP) -> str:
    """The app's code of the next time step: never one already used (each code works
    once, and the server takes one step either side of now)."""
    return str(totp.at(time.time(), counter_offset=1))


def enrol_totp(site: Site, username: str, password: str) -> pyotp.TOTP:
    """Set up an authenticator app for `username` through the JSON API, as a script
    with a bearer token would: the app's code generator."""
    with httpx.Client(base_url=site.url, timeout=WAIT) as client:
        login = client.post("/auth/login", json={"username": username, "password": password})
        assert login.status_code == 200, login.text
        bearer = {"authorization": f"Bearer {login.json()['access_token']}"}
        begun = client.post("/auth/mfa/totp", headers=bearer)
        assert begun.status_code == 201, begun.text
        totp = pyotp.TOTP(begun.json()["secret"])
        done = client.post("/auth/mfa/totp/confirm", json={"code": totp.now()}, headers=bearer)
        assert done.status_code == 200, done.text
    return totp


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


# -- second factors and passkeys ------------------------------------------------------------

#: The step-up window of the site of the step-up test (AUTHGATE_STEP_UP_TTL), seconds.
STEP_UP = 3


def test_an_authenticator_app_set_up_on_the_security_page_asks_its_code_at_each_login(
    site: Site, browser: WebDriver
) -> None:
    driver, site = browser, on_localhost(site)
    log_in(driver, site, ADMIN, ADMIN_PW)
    assert at(driver, site) == ("/", {})
    driver.find_element(By.LINK_TEXT, "Security").click()  # the header's link
    wait(driver, lambda d: text_of(d, "#factor-status") != "Loading…")
    assert at(driver, site) == ("/account/security", {})
    assert text_of(driver, "#factor-status").startswith("Your login asks only for your password")
    assert text_of(driver, "#totp-status") == "Off."

    # The key, as a QR code and as text; a wrong first code is refused, a right one
    # turns the app on and shows the recovery codes, once.
    press(driver, "#totp-begin")
    wait(driver, lambda d: shown(d, "#totp-enrol"))
    assert not shown(driver, "#totp-begin")
    totp = pyotp.TOTP(text_of(driver, "#totp-secret"))
    qr_drawn = (
        "const qr = document.getElementById('totp-qr'); return qr.complete && qr.naturalWidth"
    )
    wait(driver, lambda d: d.execute_script(qr_drawn) > 0)
    screenshot(driver, "account-security.png")
    submit(driver, "#totp-confirm", code=f"{(int(totp.now()) + 1) % 10**6:06d}")
    wait(driver, lambda d: "That code is not right" in script_message(d))
    assert text_of(driver, "#totp-status") == "Off."
    submit(driver, "#totp-confirm", code=totp.now())
    wait(driver, lambda d: shown(d, "#recovery") and text_of(d, "#totp-status") == "On.")
    codes = recovery_codes(driver)
    assert len(set(codes)) == 10, codes
    assert not shown(driver, "#totp-enrol")
    assert not shown(driver, "#totp-begin")
    assert "Recovery codes left: 10." in text_of(driver, "#factor-status")
    open_security(driver, site)
    assert not shown(driver, "#recovery")
    assert recovery_codes(driver) == []

    # The next login asks for a code; this account has no passkey, so the page offers
    # none (its script asked: 404).
    log_out(driver, site)
    log_in(driver, site, ADMIN, ADMIN_PW)
    assert at(driver, site) == ("/login/second-factor", {})
    assert SESSION_COOKIE not in cookies(driver)
    wait(driver, lambda d: answered(d, "/auth/mfa/passkey"))
    assert not shown(driver, "#passkey-second-step")
    code = next_code(totp)
    fill_and_submit(driver, "/auth/mfa", code=code)
    assert at(driver, site) == ("/", {})
    assert f"Logged in as {ADMIN}" in text(driver)
    assert SESSION_COOKIE in cookies(driver)

    # A code works once: the same again is refused; a recovery code works (once).
    log_out(driver, site)
    log_in(driver, site, ADMIN, ADMIN_PW)
    fill_and_submit(driver, "/auth/mfa", code=code)
    assert at(driver, site) == ("/login/second-factor", {"error": ["invalid_credentials"]})
    assert "That code is not right, or was used already" in text(driver)
    assert SESSION_COOKIE not in cookies(driver)
    fill_and_submit(driver, "/auth/mfa", code=codes[0])
    assert at(driver, site) == ("/", {})

    # Proving it again asks this account for a code, not its password.
    driver.get(site.url + "/reauth?next=/account/security")
    assert not driver.find_elements(By.CSS_SELECTOR, "[name=password]")
    fill_and_submit(driver, "/auth/reauth", code=codes[0])  # spent
    path, query = at(driver, site)
    assert (path, query["error"]) == ("/reauth", ["invalid_credentials"])
    assert "That code is not right, or was used already" in text(driver)
    fill_and_submit(driver, "/auth/reauth", code=codes[1])
    assert at(driver, site) == ("/account/security", {})
    wait(driver, lambda d: text_of(d, "#factor-status") != "Loading…")
    assert "Recovery codes left: 8." in text_of(driver, "#factor-status")


def test_a_passkey_added_on_the_security_page_logs_in_alone_or_as_the_second_step(
    site: Site, browser: WebDriver
) -> None:
    driver, site, at_ip = browser, on_localhost(site), site
    add_authenticator(driver)
    # An account with an app already (its second step has a form to go to: see the
    # report on passkey-only accounts), which adds a passkey.
    totp = enrol_totp(site, ADMIN, ADMIN_PW)
    log_in(driver, site, ADMIN, ADMIN_PW)
    fill_and_submit(driver, "/auth/mfa", code=next_code(totp))
    open_security(driver, site)
    assert passkey_names(driver) == []
    assert shown(driver, "#passkey-none")
    submit(driver, "#passkey-add", name="Laptop")
    wait(driver, lambda d: passkey_names(d) == ["Laptop"])
    assert script_message(driver) == "The passkey “Laptop” is added."
    assert not shown(driver, "#recovery")  # the app's recovery codes stand
    [kept] = driver.get_credentials()
    assert kept.is_resident_credential  # discoverable: a login needs no username
    assert kept.rp_id == "localhost"

    # A login by the passkey alone: no username, no password.
    log_out(driver, site)
    wait(driver, lambda d: shown(d, "#passkey-login"))
    press(driver, "#passkey-login button")
    wait(driver, on_a_new_page)
    assert at(driver, site) == ("/notes", {})
    assert f"Logged in as {ADMIN}" in text(driver)
    assert cookies(driver)[SESSION_COOKIE]["httpOnly"] is True
    open_security(driver, site)
    assert "last used" in text_of(driver, "#passkey-list li")

    # The password, then the passkey as the second step (instead of the app's code),
    # on to the page the login was for.
    log_out(driver, site)
    driver.get(site.url + "/notes")
    fill_and_submit(driver, "/auth/session", username=ADMIN, password=ADMIN_PW)
    assert at(driver, site) == ("/login/second-factor", {"next": ["/notes"]})
    wait(driver, lambda d: shown(d, "#passkey-second-step"))
    screenshot(driver, "second-factor.png")
    press(driver, "#passkey-second-step button")
    wait(driver, on_a_new_page)
    assert at(driver, site) == ("/notes", {})
    assert f"Logged in as {ADMIN}" in text(driver)

    # Opened at 127.0.0.1, the site's passkeys cannot work (the browser would refuse
    # them there): the page says where to open it instead.
    driver.get(at_ip.url + "/login")
    wait(driver, lambda d: shown(d, "#passkey-login"))
    press(driver, "#passkey-login button")
    wait(driver, lambda d: "passkeys belong to localhost" in script_message(d))
    assert at(driver, at_ip) == ("/login", {})


@pytest.mark.parametrize(
    "site_env", [{"AUTHGATE_STEP_UP_TTL": str(STEP_UP)}], ids=[f"step-up-{STEP_UP}s"]
)
def test_a_login_older_than_the_step_up_window_proves_itself_again_to_change_passkeys(
    site: Site, browser: WebDriver
) -> None:
    driver, site = browser, on_localhost(site)
    add_authenticator(driver)
    log_in(driver, site, ADMIN, ADMIN_PW)
    time.sleep(STEP_UP + 0.5)  # the login grows older than the window

    # Adding a passkey asks for a recent proof: the page sends the browser to /reauth,
    # which asks this account (no second factor) for its password, and comes back.
    open_security(driver, site)
    submit(driver, "#passkey-add", name="Laptop")
    wait(driver, on_a_new_page)
    assert at(driver, site) == ("/reauth", {"next": ["/account/security"]})
    assert driver.find_elements(By.CSS_SELECTOR, "form[action='/auth/reauth'] [name=password]")
    assert not shown(driver, "#passkey-reauth")
    screenshot(driver, "reauth.png")
    fill_and_submit(driver, "/auth/reauth", password="not the password")
    path, query = at(driver, site)
    assert (path, query["error"]) == ("/reauth", ["invalid_credentials"])
    assert "Wrong password." in text(driver)
    stale = cookies(driver)[SESSION_COOKIE]["value"]
    fill_and_submit(driver, "/auth/reauth", password=ADMIN_PW)
    assert at(driver, site) == ("/account/security", {})
    assert cookies(driver)[SESSION_COOKIE]["value"] != stale  # a new session
    wait(driver, lambda d: shown(d, "#passkey-none"))
    submit(driver, "#passkey-add", name="Laptop")
    wait(driver, lambda d: passkey_names(d) == ["Laptop"])
    assert len(recovery_codes(driver)) == 10  # its first factor brings recovery codes

    # Older again: removing it asks again, now for a code or a passkey (this account
    # has a second factor), and the passkey proves it.
    time.sleep(STEP_UP + 0.5)
    press(driver, "#passkey-list button")
    wait(driver, on_a_new_page)
    assert at(driver, site) == ("/reauth", {"next": ["/account/security"]})
    assert driver.find_elements(By.CSS_SELECTOR, "form[action='/auth/reauth'] [name=code]")
    wait(driver, lambda d: shown(d, "#passkey-reauth"))
    press(driver, "#passkey-reauth button")
    wait(driver, on_a_new_page)
    assert at(driver, site) == ("/account/security", {})
    wait(driver, lambda d: passkey_names(d) == ["Laptop"])
    press(driver, "#passkey-list button")
    wait(driver, lambda d: passkey_names(d) == [] and shown(d, "#passkey-none"))
    assert script_message(driver) == "The passkey “Laptop” is removed."


# -- logins through an identity provider --------------------------------------------------

#: The provider's name on the site ("Sign in with op"), and its account of alice.
PROVIDER = "op"
ALICE = User(
    "alice",
    "alice password 1",
    {"realm_access": {"roles": ["operator"]}, "preferred_username": "alice"},
)


def sign_in_with(driver: WebDriver, name: str) -> None:
    """Press the login page's "Sign in with <name>" and wait for where it leads: the
    provider's login form, or (with a session there already) back on the site."""
    driver.execute_script("window.leftBehind = true")
    driver.find_element(By.LINK_TEXT, f"Sign in with {name}").click()
    wait(driver, on_a_new_page)


def at_provider_form(driver: WebDriver, provider: OpenIdProvider) -> bool:
    """Is the browser at the provider's own login form?"""
    return provider.owns(driver.current_url) and bool(
        driver.find_elements(By.CSS_SELECTOR, "form input[name=password]")
    )


def log_in_at_provider(driver: WebDriver, username: str, password: str) -> None:
    """Fill the provider's login form, as a person does, and wait for the next page."""
    submit(driver, "form", username=username, password=password)
    wait(driver, on_a_new_page)


def visited(driver: WebDriver, prefix: str) -> list[str]:
    """The URLs starting with `prefix` that the browser asked for since the last call,
    redirects included (Chromium's network log)."""
    urls = []
    # what ChromiumDriver.get_log sends (that method is untyped)
    for entry in driver.execute(Command.GET_LOG, {"type": "performance"})["value"]:
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = str(message["params"]["request"]["url"])
            if url.startswith(prefix):
                urls.append(url)
    return urls


class TestLoginThroughAProvider:
    """The sites with an identity provider that offers logins: a real one (oidc-provider
    under Node.js), with the site's callback and login page registered for its client,
    on localhost (another host than the site's 127.0.0.1, so neither sees the other's
    cookies, and the way back to the site is a cross-site navigation)."""

    @pytest.fixture
    def provider(self, site_port: int) -> Iterator[OpenIdProvider]:
        site_url = f"http://127.0.0.1:{site_port}"
        web = Client(
            "web",
            "web secret",
            redirect_uris=(f"{site_url}/auth/oidc/{PROVIDER}/callback",),
            post_logout_redirect_uris=(f"{site_url}/login",),
        )
        with OpenIdProvider(clients=[web], users=[ALICE], host="localhost") as provider:
            yield provider

    @pytest.fixture
    def site_env(self, provider: OpenIdProvider) -> dict[str, str]:
        issuer = {
            "issuer": provider.issuer,
            "audience": "https://api.example.test",
            "name": PROVIDER,
            "preset": "keycloak",
            "login_client_id": "web",
            "login_client_secret": "web secret",
        }
        return {"AUTHGATE_TRUSTED_ISSUERS": json.dumps([issuer])}

    def test_a_person_signs_in_at_the_provider_and_logs_out_here_and_there(
        self, site: Site, browser: WebDriver, provider: OpenIdProvider
    ) -> None:
        driver = browser
        driver.get(site.url + "/notes")
        assert at(driver, site) == ("/login", {"next": ["/notes"]})
        link = driver.find_element(By.LINK_TEXT, f"Sign in with {PROVIDER}")
        assert link.get_attribute("href") == f"{site.url}/auth/oidc/{PROVIDER}/login?next=/notes"
        screenshot(driver, "login-with-provider.png")

        # The provider's form, in the browser; then back on the page the login was for,
        # as the user made at this first login (the provider's preferred_username).
        sign_in_with(driver, PROVIDER)
        assert at_provider_form(driver, provider), driver.current_url
        log_in_at_provider(driver, "alice", ALICE.password)
        assert at(driver, site) == ("/notes", {})
        assert "Logged in as alice" in text(driver)
        kept = cookies(driver)
        assert kept[SESSION_COOKIE]["httpOnly"] is True
        assert "__Host-authgate_oidc" not in kept  # the login's state is spent
        fill_and_submit(driver, "/notes", text="from the provider")
        assert notes(driver) == ["from the provider"]

        # The header's "Log out" ends the session here only: the provider still knows
        # her, so the next "Sign in with" comes back without its form.
        log_out(driver, site)
        sign_in_with(driver, PROVIDER)
        assert at(driver, site) == ("/notes", {})
        assert "Logged in as alice" in text(driver)

        # "Log out here and at op": the session here ends, the provider asks to confirm
        # and sends the browser back to the login page.
        driver.get(site.url + "/")
        screenshot(driver, "home-with-provider.png")
        fill_and_submit(driver, f"/auth/oidc/{PROVIDER}/logout")
        assert provider.owns(driver.current_url), driver.current_url
        press(driver, "button[name=logout]")
        wait(driver, on_a_new_page)
        assert at(driver, site) == ("/login", {})
        assert SESSION_COOKIE not in cookies(driver)
        assert "Logged in as" not in text(driver)
        driver.get(site.url + "/notes")
        assert at(driver, site) == ("/login", {"next": ["/notes"]})
        # ... and there: the next "Sign in with" asks for the password again.
        sign_in_with(driver, PROVIDER)
        assert at_provider_form(driver, provider), driver.current_url

    def test_a_login_the_provider_refuses_signs_nobody_in(
        self, site: Site, browser: WebDriver, provider: OpenIdProvider
    ) -> None:
        driver = browser
        # A wrong password: the provider's form again, and the site knows nobody.
        driver.get(site.url + "/login")
        visited(driver, provider.authorization_endpoint)  # what came before: not this login
        sign_in_with(driver, PROVIDER)
        log_in_at_provider(driver, "alice", "not alice's password")
        assert at_provider_form(driver, provider), driver.current_url
        assert "Invalid username or password." in text(driver)
        driver.get(site.url + "/notes")
        assert at(driver, site) == ("/login", {"next": ["/notes"]})
        assert SESSION_COOKIE not in cookies(driver)

        # The person gives up instead: the provider sends the browser back with
        # error=access_denied and the login's state (RFC 6749, 4.1.2.1), which the
        # browser's network log has from the way there.  No session; the login page
        # says the login did not happen.
        [asked] = visited(driver, provider.authorization_endpoint)
        state = parse_qs(urlsplit(asked).query)["state"][0]
        refusal = urlencode({"error": "access_denied", "state": state})
        driver.get(f"{site.url}/auth/oidc/{PROVIDER}/callback?{refusal}")
        assert at(driver, site) == ("/login", {"error": ["login_refused"]})
        assert "The provider did not log you in" in text(driver)
        kept = cookies(driver)
        assert SESSION_COOKIE not in kept
        assert "__Host-authgate_oidc" not in kept  # the refused login's state is gone too
        driver.get(site.url + "/notes")
        assert at(driver, site) == ("/login", {"next": ["/notes"]})
        # A callback of a login this browser has no state of (another browser's, or
        # this one's, spent): nothing either, and the page says to start again.
        stray = urlencode({"code": "a code", "state": state})
        driver.get(f"{site.url}/auth/oidc/{PROVIDER}/callback?{stray}")
        assert at(driver, site) == ("/login", {"error": ["invalid_token"]})
        assert "That login did not finish" in text(driver)
        assert SESSION_COOKIE not in cookies(driver)

        # Nothing of either sticks: the next try, with the password, signs her in.
        sign_in_with(driver, PROVIDER)
        log_in_at_provider(driver, "alice", ALICE.password)
        assert at(driver, site) == ("/notes", {})
        assert "Logged in as alice" in text(driver)


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
        banner = log.read_text()  # the sites at localhost, where their passkeys work
        assert all(
            f"{url.replace('127.0.0.1', 'localhost')}/notes" in banner for url in pages.values()
        ), banner

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
