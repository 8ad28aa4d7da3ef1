/* The script of the example sites' pages (examples/templates/pages/): passkeys on the
   login, second-step and "prove it's you" pages, and the account's security page (an
   authenticator app, passkeys), all through authgate's JSON API.  No framework and no
   build step: the browser runs this file as it is.

   The API's JSON carries WebAuthn's binary fields as base64url; the browser's calls
   want and give ArrayBuffers.  Newer browsers convert with
   PublicKeyCredential.parseCreationOptionsFromJSON() and credential.toJSON(); this file
   converts by hand, so it works where those are missing. */
"use strict";

// -- the API -----------------------------------------------------------------------------

/** A refusal of the API: its HTTP status and error code ({"error", "detail"}). */
class ApiError extends Error {
  constructor(status, body) {
    super(body.detail || body.error || `the server answered ${status}`);
    this.status = status;
    this.code = body.error || "";
  }
}

/** Call authgate's API with JSON.  Every request carries the page's CSRF token: an
    unsafe request that the session cookie authenticates is refused without it. */
async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: {
      "Accept": "application/json",
      "Content-Type": "application/json",
      "X-CSRF-Token": document.querySelector("meta[name=csrf-token]").content,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = response.status === 204 ? {} : await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

// -- what the person reads ---------------------------------------------------------------

const MESSAGES = {
  invalid_credentials: "That was not accepted: try again.",
  too_many_attempts: "Too many attempts from here: wait a few minutes and try again.",
  account_locked: "Too many wrong attempts: this account is locked for a while.",
  not_authenticated: "Your session has ended: log in again.",
  csrf_failed: "This page had expired: reload it and try again.",
};

/** Show `text` in the page's message box: an error, or a notice. */
function say(text, isError = false) {
  const box = document.getElementById("script-message");
  box.textContent = text;
  box.className = isError ? "flash error" : "flash notice";
  box.setAttribute("role", isError ? "alert" : "status");
  box.hidden = false;
}

/** What went wrong, for a person; `own` words for some error codes of the API. */
function explain(error, own = {}) {
  switch (error.name) {
    case "NotAllowedError":
      return "No passkey was used: the request was cancelled, timed out, or found none for this site.";
    case "InvalidStateError":
      return "This device holds a passkey of this account already.";
    case "SecurityError":
      return "This page's address is not one where this site's passkeys work (AUTHGATE_PASSKEY_ORIGINS).";
  }
  return own[error.code] || MESSAGES[error.code] || error.message;
}

/** Run `action` on `event` of `element` (a button's click, a form's submit), its
    button off meanwhile.  A refusal asking for a recent login goes to /reauth, which
    comes back to this page afterwards; any other is told in the message box. */
function on(element, event, action, own = {}) {
  element.addEventListener(event, async (happened) => {
    happened.preventDefault();
    const button = element.matches("form") ? element.querySelector("[type=submit]") : element;
    button.disabled = true;
    try {
      await action();
    } catch (error) {
      if (error.code === "insufficient_user_authentication") {
        location.assign(`/reauth?next=${encodeURIComponent(location.pathname)}`);
        return;
      }
      say(explain(error, own), true);
    } finally {
      button.disabled = false;
    }
  });
}

/** The page's ?next= when it is a path of this site, else `fallback`. */
function nextPage(fallback) {
  const next = new URLSearchParams(location.search).get("next") || "";
  const local = next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\");
  return local ? next : fallback;
}

// -- WebAuthn, with base64url by hand ----------------------------------------------------

function toBuffer(base64url) {
  const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0)).buffer;
}

function toBase64url(buffer) {
  const binary = String.fromCharCode(...new Uint8Array(buffer));
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function withBinaryId(descriptor) {
  return { ...descriptor, id: toBuffer(descriptor.id) };
}

/** A credential as PublicKeyCredential.toJSON() gives it, which the API takes. */
function credentialJSON(credential) {
  const answer = credential.response;
  const response = { clientDataJSON: toBase64url(answer.clientDataJSON) };
  if (answer.attestationObject) {  // a new passkey
    response.attestationObject = toBase64url(answer.attestationObject);
    response.transports = answer.getTransports ? answer.getTransports() : [];
  } else {  // a passkey used
    response.authenticatorData = toBase64url(answer.authenticatorData);
    response.signature = toBase64url(answer.signature);
    response.userHandle = answer.userHandle ? toBase64url(answer.userHandle) : null;
  }
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    response,
    clientExtensionResults: credential.getClientExtensionResults(),
    authenticatorAttachment: credential.authenticatorAttachment || null,
  };
}

/** A passkey belongs to its relying party's domain: elsewhere (a site opened at
    127.0.0.1, say) the browser refuses it, so say where the site must be opened. */
function checkRelyingParty(rpId) {
  const host = location.hostname;
  if (rpId && host !== rpId && !host.endsWith(`.${rpId}`)) {
    throw new Error(`This site's passkeys belong to ${rpId}: open the site there (not at ${host}) to use them.`);
  }
}

/** Make a passkey for the options of POST /auth/passkeys/options. */
async function createPasskey(publicKey) {
  checkRelyingParty(publicKey.rp.id);
  const options = {
    ...publicKey,
    challenge: toBuffer(publicKey.challenge),
    user: { ...publicKey.user, id: toBuffer(publicKey.user.id) },
    excludeCredentials: (publicKey.excludeCredentials || []).map(withBinaryId),
  };
  return credentialJSON(await navigator.credentials.create({ publicKey: options }));
}

/** Use a passkey for the options of a login, a second step or a step-up. */
async function usePasskey(publicKey) {
  checkRelyingParty(publicKey.rpId);
  const options = {
    ...publicKey,
    challenge: toBuffer(publicKey.challenge),
    allowCredentials: (publicKey.allowCredentials || []).map(withBinaryId),
  };
  return credentialJSON(await navigator.credentials.get({ publicKey: options }));
}

// -- the pages ---------------------------------------------------------------------------

const PASSKEY_REFUSED = { invalid_credentials: "That passkey was not accepted." };

/** The login page: a login by passkey alone (a discoverable one: no username asked). */
function loginPage(box) {
  box.hidden = false;
  on(box.querySelector("button"), "click", async () => {
    const remember = document.querySelector("input[name=remember]").checked;
    const options = await api("POST", "/auth/passkeys/login/options", { session: "cookie", remember });
    const credential = await usePasskey(options.publicKey);
    await api("POST", "/auth/passkeys/login", { passkey_token: options.passkey_token, credential });
    location.assign(nextPage("/notes"));
  }, PASSKEY_REFUSED);
}

/** The second step of a login (its challenge in an HttpOnly cookie): a passkey instead
    of a code, when the account has one (the API answers 404 when it has none). */
async function secondStepPage(box) {
  let options;
  try {
    options = await api("POST", "/auth/mfa/passkey", {});
  } catch (error) {
    return;  // no passkey for this login (or it expired): the code form stays alone
  }
  box.hidden = false;
  on(box.querySelector("button"), "click", async () => {
    const credential = await usePasskey(options.publicKey);
    await api("POST", "/auth/mfa", { passkey: credential });
    location.assign(nextPage("/"));
  }, PASSKEY_REFUSED);
}

/** Prove it's you again with a passkey: the session starts again, then ?next=. */
function reauthPage(box) {
  box.hidden = false;
  on(box.querySelector("button"), "click", async () => {
    const { passkey } = await api("GET", "/auth/reauth");
    const credential = await usePasskey(passkey.publicKey);
    await api("POST", "/auth/reauth", { passkey: credential, passkey_token: passkey.passkey_token });
    location.assign(nextPage("/"));
  }, PASSKEY_REFUSED);
}

/** The account's security page: its second factors, TOTP enrolment, passkeys. */
function securityPage() {
  const $ = (id) => document.getElementById(id);
  const day = (seconds) => new Date(seconds * 1000).toLocaleDateString();

  /** Show what the account has (everything at once, once both answers are in). */
  async function refresh() {
    const status = await api("GET", "/auth/mfa");
    const passkeys = $("passkey-list") ? (await api("GET", "/auth/passkeys")).passkeys : [];
    $("factor-status").textContent = status.totp || status.passkeys
      ? `Your login asks for a second factor after your password. Recovery codes left: ${status.recovery_codes_left}.`
      : "Your login asks only for your password: add a second factor.";
    // authgate starts no app enrolment for an account with passkeys (409): offer the
    // app only before them.
    const appLater = !status.totp && status.passkeys > 0;
    $("totp-status").textContent = status.totp ? "On."
      : appLater ? "Off. An app can be set up only before any passkey, for now." : "Off.";
    $("totp-begin").hidden = status.totp || appLater;
    if ($("passkey-list")) showPasskeys(passkeys);
  }

  function showPasskeys(passkeys) {
    $("passkey-none").hidden = passkeys.length > 0;
    $("passkey-list").replaceChildren(...passkeys.map((passkey) => {
      const item = document.createElement("li");
      const name = document.createElement("strong");
      name.textContent = passkey.name;
      const used = passkey.last_used_at ? `, last used ${day(passkey.last_used_at)}` : "";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "link";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove the passkey ${passkey.name}`);
      on(remove, "click", async () => {
        await api("DELETE", `/auth/passkeys/${encodeURIComponent(passkey.id)}`);
        say(`The passkey “${passkey.name}” is removed.`);
        await refresh();
      });
      item.append(name, ` added ${day(passkey.created_at)}${used} · `, remove);
      return item;
    }));
  }

  function showRecoveryCodes(codes) {
    $("recovery-codes").replaceChildren(...codes.map((code) => {
      const item = document.createElement("li");
      item.textContent = code;
      return item;
    }));
    $("recovery").hidden = false;
  }

  on($("totp-begin"), "click", async () => {
    const enrolment = await api("POST", "/auth/mfa/totp", {});
    $("totp-qr").src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(enrolment.qr_svg)}`;
    $("totp-secret").textContent = enrolment.secret;
    $("totp-begin").hidden = true;
    $("totp-enrol").hidden = false;
    $("totp-confirm").elements.code.focus();
  });

  on($("totp-confirm"), "submit", async () => {
    const field = $("totp-confirm").elements.code;
    const { recovery_codes } = await api("POST", "/auth/mfa/totp/confirm", { code: field.value.trim() });
    field.value = "";
    $("totp-enrol").hidden = true;
    showRecoveryCodes(recovery_codes);
    say("Your authenticator app is on: your next login asks for its code.");
    await refresh();
  }, { invalid_credentials: "That code is not right: type the one your app shows now." });

  if ($("passkey-add")) {
    on($("passkey-add"), "submit", async () => {
      const field = $("passkey-add").elements.name;
      const name = field.value.trim() || undefined;
      const options = await api("POST", "/auth/passkeys/options", {});
      const credential = await createPasskey(options.publicKey);
      const added = await api("POST", "/auth/passkeys", { passkey_token: options.passkey_token, credential, name });
      field.value = "";
      if (added.recovery_codes) showRecoveryCodes(added.recovery_codes);
      say(`The passkey “${added.passkey.name}” is added.`);
      await refresh();
    });
  }

  refresh().catch((error) => say(explain(error), true));
}

document.addEventListener("DOMContentLoaded", () => {
  const find = (id) => document.getElementById(id);
  const webauthn = "PublicKeyCredential" in window;
  if (find("passkey-login") && webauthn) loginPage(find("passkey-login"));
  if (find("passkey-second-step") && webauthn) secondStepPage(find("passkey-second-step"));
  if (find("passkey-reauth") && webauthn) reauthPage(find("passkey-reauth"));
  if (find("security")) securityPage();
});
