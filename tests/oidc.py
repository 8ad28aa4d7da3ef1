"""A real OpenID provider for the tests: panva's oidc-provider (a certified OpenID
Connect implementation, pinned in ``tests/oidc_provider/package.json``), run by Node.js
on a free loopback port by ``tests/oidc_provider/provider.js``.

    from oidc import Client, OpenIdProvider, Resource, User

    API = "https://api.example.test"
    CALLBACK = "http://127.0.0.1:8000/auth/oidc/callback"
    with OpenIdProvider(
        clients=[Client("svc", "svc secret"), Client("web", "web secret", (CALLBACK,))],
        resources=[Resource(API, scope="read write")],
        users=[User("alice", "alice's password", {"realm_access": {"roles": ["admin"]}})],
    ) as provider:
        token = provider.token("svc", API, claims={"permissions": ["read:x"]}, alg="ES256")
        callback_url = provider.login(authorization_url, "alice", "alice's password")

What the provider does (``provider.js`` says how):

- access tokens are RFC 9068 JWTs (``typ: at+jwt``) for a configured resource, its
  indicator as the audience; `OpenIdProvider.token` gets one over the
  ``client_credentials`` grant, carrying the claims the test passes (over the provider's
  own: ``exp`` or ``aud`` too, to mint validly signed bad tokens; ``None`` removes one),
  signed with the algorithm it asks for;
- a user logs in through a plain HTML form (`UserAgent` fills it), consent is granted
  without a page; id_tokens and a user's access tokens carry the user's claims;
- `OpenIdProvider.rotate_keys` puts a new key first for each algorithm, the old ones
  still served; `OpenIdProvider.retire_keys` drops them;
- `OpenIdProvider.stop` and `OpenIdProvider.restart` make an outage on the same port,
  with the same keys (sessions, codes and grants are lost, as in-memory state is).

Node.js and npm are needed; ``npm ci`` runs once into ``tests/oidc_provider/node_modules``.
Where either is missing, or the install fails, the test is skipped, except under ``CI``,
where that is a failure.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import html
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn
from urllib.parse import parse_qsl, quote_plus, urlencode, urljoin, urlsplit

import httpx
import pytest

from authgate.testing import free_port

__all__ = [
    "PROVIDER_DIR",
    "AuthorizationRequest",
    "Client",
    "LoginRefused",
    "LoginRequired",
    "OpenIdProvider",
    "ProviderRefused",
    "Resource",
    "User",
    "UserAgent",
    "query",
    "require_node",
]

#: provider.js, its package.json and lock file; ``npm ci`` installs into node_modules here.
PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"
#: How long the provider may take to answer its discovery document after it is started.
START_TIMEOUT = 30.0
#: How long ``npm ci`` may take.
INSTALL_TIMEOUT = 300.0
#: The mark of provider.js's login form.
_LOGIN_FORM = 'name="password"'


# -- what the provider knows -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Client:
    """A client registered at the provider: confidential with a secret (it may also use
    client_credentials), public without one; with redirect URIs it may use the
    authorization code flow (PKCE is always required)."""

    client_id: str
    client_secret: str | None = None
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    #: How its id_tokens are signed.
    id_token_alg: str = "RS256"

    def metadata(self) -> dict[str, Any]:
        """The client's registration, as oidc-provider reads it."""
        grant_types = ["authorization_code", "refresh_token"] if self.redirect_uris else []
        if self.client_secret is not None:
            grant_types.append("client_credentials")
        registered: dict[str, Any] = {
            "client_id": self.client_id,
            "grant_types": grant_types,
            "response_types": ["code"] if self.redirect_uris else [],
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "id_token_signed_response_alg": self.id_token_alg,
        }
        if self.client_secret is None:
            registered["token_endpoint_auth_method"] = "none"
        else:
            registered["client_secret"] = self.client_secret
        return registered


@dataclass(frozen=True, slots=True)
class Resource:
    """A resource server (an API): its indicator is its access tokens' audience."""

    indicator: str
    #: The scopes a client may ask for it, space-separated.
    scope: str = ""
    #: How its access tokens are signed unless a token request asks otherwise.
    alg: str = "RS256"
    #: Its access tokens' lifetime, in seconds.
    ttl: int = 300


@dataclass(frozen=True, slots=True)
class User:
    """An account that can log in; its claims go into its id_tokens, its userinfo and
    its access tokens (``sub`` is the username)."""

    username: str
    password: str
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """An authorization code request with PKCE (S256), as a relying party makes one."""

    client_id: str
    redirect_uri: str
    url: str
    state: str
    nonce: str
    code_verifier: str


class ProviderRefused(Exception):
    """The provider answered an error: ``status`` and, for OAuth errors, ``error``."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"the OpenID provider answered {status}: {body[:500]}")
        self.status = status
        self.body = body
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {}
        self.error: str | None = answer.get("error") if isinstance(answer, dict) else None


class LoginRequired(Exception):
    """The provider showed its login form to a user agent that was given no password."""


class LoginRefused(Exception):
    """The provider showed its login form again after the password was posted."""


def query(url: str) -> dict[str, str]:
    """The query parameters of a URL (a redirect to a callback: ``code``, ``state``...)."""
    return dict(parse_qsl(urlsplit(url).query))


# -- Node.js and the package -----------------------------------------------------------


def _unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI, which installs what is missing."""
    if os.environ.get("CI"):
        pytest.fail(f"CI runs the OpenID provider tests: {reason}")
    pytest.skip(reason)


def require_node() -> str:
    """The ``node`` program, oidc-provider installed beside provider.js (``npm ci``,
    once); skips the test where Node.js or npm is missing or the install fails."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable(
            "the OpenID provider tests need Node.js (18 or later) and npm "
            "(Debian: apt-get install nodejs npm)"
        )
    problem = _install_problem(npm)
    if problem is not None:
        _unavailable(problem)
    return node


def _pinned_version() -> str:
    package = json.loads((PROVIDER_DIR / "package.json").read_text())
    version: str = package["dependencies"]["oidc-provider"]
    return version


def _installed_version() -> str | None:
    installed = PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json"
    try:
        version: str = json.loads(installed.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return version


@functools.cache
def _install_problem(npm: str) -> str | None:
    """Run ``npm ci`` unless the pinned oidc-provider is installed: why it failed, or
    None.  Once per session (a failed install is not retried by every test); xdist
    workers wait for one another rather than install over each other."""
    if _installed_version() == _pinned_version():
        return None
    with _install_lock():
        if _installed_version() == _pinned_version():
            return None
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=PROVIDER_DIR,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"npm ci in {PROVIDER_DIR} took over {INSTALL_TIMEOUT:.0f} s"
    if done.returncode != 0:
        # npm names the cause first (ECONNREFUSED, ETARGET...), its log's path last
        first_lines = "\n".join((done.stderr or done.stdout).strip().splitlines()[:6])
        return f"npm ci in {PROVIDER_DIR} failed: {first_lines}"
    return None


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    if sys.platform == "win32":
        yield
        return
    import fcntl

    lock_path = Path(tempfile.gettempdir()) / "authgate-oidc-provider-npm-ci.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# -- the provider ----------------------------------------------------------------------


class OpenIdProvider:
    """oidc-provider in a Node.js process on loopback, configured by the test; started
    by ``with`` (or `start`), stopped and its files removed at the end (or `close`)."""

    def __init__(
        self,
        clients: Sequence[Client] = (),
        resources: Sequence[Resource] = (),
        users: Sequence[User] = (),
        *,
        host: str = "127.0.0.1",
        algs: Sequence[str] = ("RS256", "ES256"),
    ) -> None:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError(
                f"the provider listens on loopback: host {host!r} is neither "
                "127.0.0.1 nor localhost"
            )
        self.port = free_port()
        #: The issuer URL, as tokens and the discovery document name it.
        self.issuer = f"http://{host}:{self.port}"
        self.clients = {client.client_id: client for client in clients}
        self.resources = {resource.indicator: resource for resource in resources}
        self.users = {user.username: user for user in users}
        self.algs = tuple(algs)
        #: The discovery document, read when the provider starts.
        self.metadata: dict[str, Any] = {}
        self._secret = secrets.token_urlsafe(32)
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(timeout=10)

    # -- life cycle

    def __enter__(self) -> OpenIdProvider:
        try:
            self.start()
        except BaseException:  # a skip too: leave no client or files behind
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start the provider (on the same port and with the same keys as before, if it
        ran before) and wait until it answers its discovery document."""
        if self.running:
            return
        node = require_node()
        workdir = self._prepare()
        with (workdir / "provider.log").open("ab") as log:
            self._process = subprocess.Popen(
                [node, "provider.js", str(workdir / "config.json")],
                cwd=PROVIDER_DIR,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self._wait_until_ready()

    def stop(self) -> int | None:
        """Stop the provider (SIGTERM): its port refuses connections until `start`.
        The process's exit status (0: it stopped cleanly), None if it was not running."""
        process, self._process = self._process, None
        if process is None:
            return None
        process.terminate()
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def restart(self) -> None:
        """Stop and start again: the same issuer, port and keys, no sessions."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the provider and remove its files."""
        self.stop()
        self._http.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    @property
    def running(self) -> bool:
        """Whether the provider's process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def log(self) -> str:
        """What the provider wrote to stderr: one line per request, and its errors."""
        if self._workdir is None:
            return ""
        return (self._workdir / "provider.log").read_text(errors="replace")

    def _prepare(self) -> Path:
        """The work directory with the configuration provider.js reads (made once, so a
        restart keeps the port, the cookie secret and the keys file)."""
        if self._workdir is not None:
            return self._workdir
        self._workdir = Path(tempfile.mkdtemp(prefix="authgate-oidc-"))
        config = {
            "port": self.port,
            "issuer": self.issuer,
            "secret": self._secret,
            "keys_file": str(self._workdir / "keys.json"),
            "algs": list(self.algs),
            "clients": [client.metadata() for client in self.clients.values()],
            "resources": {
                resource.indicator: {
                    "scope": resource.scope,
                    "alg": resource.alg,
                    "ttl": resource.ttl,
                }
                for resource in self.resources.values()
            },
            "users": {
                user.username: {"password": user.password, "claims": dict(user.claims)}
                for user in self.users.values()
            },
        }
        (self._workdir / "config.json").write_text(json.dumps(config, indent=2))
        return self._workdir

    def _wait_until_ready(self) -> None:
        """Poll the discovery document until it answers, or fail with the log's tail."""
        deadline = time.monotonic() + START_TIMEOUT
        url = f"{self.issuer}/.well-known/openid-configuration"
        while True:
            try:
                response = self._http.get(url, timeout=2)
                if response.status_code == 200:
                    self.metadata = response.json()
                    return
            except httpx.TransportError:
                pass
            if not self.running or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the OpenID provider did not start:\n{self.log[-3000:]}")
            time.sleep(0.02)  # the next poll; the deadline bounds the wait

    # -- endpoints

    @property
    def jwks_uri(self) -> str:
        """Where the provider publishes its public keys."""
        return str(self.metadata["jwks_uri"])

    @property
    def token_endpoint(self) -> str:
        """Where clients get tokens."""
        return str(self.metadata["token_endpoint"])

    @property
    def authorization_endpoint(self) -> str:
        """Where a relying party sends the user to log in."""
        return str(self.metadata["authorization_endpoint"])

    @property
    def end_session_endpoint(self) -> str:
        """Where a relying party sends the user to log out (RP-initiated logout)."""
        return str(self.metadata["end_session_endpoint"])

    def owns(self, url: str) -> bool:
        """Whether a URL is one of the provider's (same scheme, host and port)."""
        return urlsplit(url)[:2] == urlsplit(self.issuer)[:2]

    def jwks(self) -> dict[str, Any]:
        """The JWKS the provider serves now."""
        response = self._http.get(self.jwks_uri)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    # -- tokens

    def token(
        self,
        client: Client | str,
        audience: str,
        *,
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
        alg: str | None = None,
    ) -> str:
        """A JWT access token for `audience` (a configured resource), got with the
        client_credentials grant: `claims` are merged over the provider's own (``None``
        removes one), `alg` signs it instead of the resource's algorithm."""
        data = {"grant_type": "client_credentials", "resource": audience}
        if scope is not None:
            data["scope"] = scope
        answer = self.request_token(client, data, claims=claims, alg=alg)
        return str(answer["access_token"])

    def request_token(
        self,
        client: Client | str,
        data: Mapping[str, str],
        *,
        claims: Mapping[str, Any] | None = None,
        alg: str | None = None,
    ) -> dict[str, Any]:
        """POST `data` to the token endpoint as `client` (its secret through HTTP basic,
        a public client by its id in the body), with test-chosen access token `claims`
        and `alg`; the JSON answer, or `ProviderRefused`."""
        registered = self._client(client)
        body = dict(data)
        headers = {}
        if registered.client_secret is None:
            body["client_id"] = registered.client_id
        else:
            # client_secret_basic form-encodes both halves before base64 (RFC 6749 2.3.1)
            pair = f"{quote_plus(registered.client_id)}:{quote_plus(registered.client_secret)}"
            headers["Authorization"] = f"Basic {base64.b64encode(pair.encode()).decode()}"
        if claims is not None:
            headers["X-Test-Claims"] = json.dumps(claims)  # ASCII: json escapes the rest
        if alg is not None:
            headers["X-Test-Alg"] = alg
        response = self._http.post(self.token_endpoint, data=body, headers=headers)
        if response.status_code != 200:
            raise ProviderRefused(response.status_code, response.text)
        answer: dict[str, Any] = response.json()
        return answer

    def _client(self, client: Client | str) -> Client:
        if isinstance(client, Client):
            return client
        try:
            return self.clients[client]
        except KeyError:
            raise KeyError(f"no client {client!r}: pass it in clients=[Client(...)]") from None

    # -- the authorization code flow

    def authorization_request(
        self,
        client: Client | str,
        *,
        redirect_uri: str | None = None,
        scope: str = "openid",
        resource: str | None = None,
        **params: str,
    ) -> AuthorizationRequest:
        """An authorization code request with PKCE (S256), a state and a nonce, as a
        relying party makes one (`redirect_uri` defaults to the client's first)."""
        registered = self._client(client)
        redirect_uri = redirect_uri or registered.redirect_uris[0]
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        query_params = {
            "response_type": "code",
            "client_id": registered.client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **({"resource": resource} if resource else {}),
            **params,
        }
        url = f"{self.authorization_endpoint}?{urlencode(query_params)}"
        return AuthorizationRequest(registered.client_id, redirect_uri, url, state, nonce, verifier)

    def exchange_code(
        self,
        request: AuthorizationRequest,
        callback_url: str,
        *,
        claims: Mapping[str, Any] | None = None,
        alg: str | None = None,
    ) -> dict[str, Any]:
        """Redeem the code a callback URL carries, after checking its state: the token
        answer (``id_token``, ``access_token``...)."""
        params = query(callback_url)
        if params.get("state") != request.state:
            raise ValueError(f"the callback's state is not the request's: {callback_url}")
        if "code" not in params:
            raise ProviderRefused(400, json.dumps(params))
        data = {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": request.redirect_uri,
            "code_verifier": request.code_verifier,
        }
        return self.request_token(request.client_id, data, claims=claims, alg=alg)

    def user_agent(self) -> UserAgent:
        """A cookie-keeping user agent: its provider session lasts across its calls."""
        return UserAgent(self)

    def login(self, authorization_url: str, username: str, password: str) -> str:
        """Log `username` in through `authorization_url` in a fresh user agent: the URL
        the provider finally redirects to (the callback, with ``code`` and ``state``)."""
        with self.user_agent() as agent:
            return agent.authorize(authorization_url, username, password)

    # -- keys

    def rotate_keys(self) -> dict[str, str]:
        """Put a new signing key first for each algorithm (new tokens carry its kid;
        the JWKS serves the old keys too): the new kids by algorithm."""
        return self._control("rotate")

    def retire_keys(self) -> dict[str, str]:
        """Drop all but the newest key of each algorithm: the kids that remain."""
        return self._control("retire")

    def _control(self, action: str) -> dict[str, str]:
        response = self._http.post(
            f"{self.issuer}/__test/{action}", headers={"X-Test-Secret": self._secret}
        )
        if response.status_code != 200:
            raise ProviderRefused(response.status_code, response.text)
        kids: dict[str, str] = response.json()["kids"]
        return kids


class UserAgent:
    """A browser's part in a login, without a browser: keeps the provider's cookies,
    follows its redirects and fills its login and logout forms."""

    #: More redirects than any login or logout takes.
    MAX_STEPS = 20

    def __init__(self, provider: OpenIdProvider) -> None:
        self.provider = provider
        self.http = httpx.Client(timeout=10)

    def __enter__(self) -> UserAgent:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Forget the cookies and close the connections."""
        self.http.close()

    def authorize(
        self, authorization_url: str, username: str | None = None, password: str | None = None
    ) -> str:
        """Follow an authorization URL until the provider redirects elsewhere (to the
        client, with ``code`` and ``state``, or ``error``), logging in if asked: the
        URL redirected to.  Without a username, a login form raises `LoginRequired`
        (an existing session needs none); a refused password raises `LoginRefused`."""
        response = self.http.get(authorization_url)
        posted = False
        for _ in range(self.MAX_STEPS):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if not self.provider.owns(location):
                    return location
                response = self.http.get(location)
            elif response.status_code == 200 and _LOGIN_FORM in response.text:
                if posted:
                    raise LoginRefused(f"the provider refused {username!r}'s password")
                if username is None or password is None:
                    raise LoginRequired("the provider asks for a login: pass username and password")
                action, _ = _form(response.text)
                response = self.http.post(
                    urljoin(str(response.url), action),
                    data={"username": username, "password": password},
                )
                posted = True
            else:
                raise ProviderRefused(response.status_code, response.text)
        raise RuntimeError(f"more than {self.MAX_STEPS} steps from {authorization_url}")

    def logout(self, end_session_url: str) -> str:
        """Follow an end-session URL (RP-initiated logout) and confirm the logout: the
        URL the provider redirects to (``post_logout_redirect_uri``, with ``state``), or
        its own signed-out page when the request named none."""
        response = self.http.get(end_session_url)
        if response.status_code != 200:
            raise ProviderRefused(response.status_code, response.text)
        action, fields = _form(response.text)
        response = self.http.post(
            urljoin(str(response.url), action), data={**fields, "logout": "yes"}
        )
        for _ in range(self.MAX_STEPS):
            if not response.is_redirect:
                if response.status_code != 200:
                    raise ProviderRefused(response.status_code, response.text)
                return str(response.url)
            location = urljoin(str(response.url), response.headers["location"])
            if not self.provider.owns(location):
                return location
            response = self.http.get(location)
        raise RuntimeError(f"more than {self.MAX_STEPS} steps from {end_session_url}")


def _form(page: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the one form on a provider.js page."""
    action = re.search(r'<form\b[^>]*\baction="([^"]*)"', page)
    if action is None:
        raise ValueError(f"no form on the provider's page: {page[:500]}")
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    return html.unescape(action.group(1)), {name: html.unescape(v) for name, v in hidden}
