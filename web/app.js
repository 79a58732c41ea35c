// The assistant's web chat: plain ES modules, no build step. Its libraries (marked, DOMPurify) are pinned through npm
// and committed under vendor/ (scripts/web_vendor.py copies them).
//
// Reads config.json next to the page (websocketUrl, region, userPoolClientId, optional cognitoEndpoint, demoUsername
// and, on the local stack, demoSignIn), signs in with Cognito's SRP (cognito-srp.js; userPoolId from config.json),
// renews and revokes tokens with Cognito's InitiateAuth and RevokeToken, and talks the WebSocket protocol of
// docs/protocol.md. Model text goes through renderMarkdown (markdown.js), which sanitises it; everything else is
// inserted with textContent.

import { srpSignIn } from "./cognito-srp.js";
import { renderMarkdown } from "./markdown.js";
import { createAttachments } from "./attachments.js";

const KEEPALIVE_MS = 5 * 60 * 1000; // API Gateway drops a connection idle for 10 minutes
const BACKOFF_INITIAL_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const TOKEN_MARGIN_MS = 60_000; // renew this long before the access token expires
const SESSION_KEY = "assistant.session";
// docs/protocol.md: a message is at most 16 000 characters by default (config.json's maxMessageChars, if a stage
// changes it), and a client frame must fit API Gateway's 32 KB frame in UTF-8 whatever the character count: over
// that, the gateway closes the connection (1009) before the server could even answer `too_large`.
const DEFAULT_MAX_MESSAGE_CHARS = 16_000;
const MAX_FRAME_BYTES = 32 * 1024;
const MAX_RESENDS = 3; // a frame the connection keeps closing on is given back to the user, not re-sent forever
const CLOSE_MESSAGE_TOO_BIG = 1009;
const PHONE = window.matchMedia("(max-width: 760px)");

const $ = (id) => document.getElementById(id);
const ui = {
  menu: $("menu"),
  modelBadge: $("model-badge"),
  status: $("status"),
  signOut: $("sign-out"),
  signInView: $("sign-in-view"),
  signInForm: $("sign-in-form"),
  username: $("username"),
  password: $("password"),
  signIn: $("sign-in"),
  demo: $("demo"),
  demoSignIn: $("demo-sign-in"),
  signInError: $("sign-in-error"),
  chatView: $("chat-view"),
  backdrop: $("backdrop"),
  sidebar: $("sidebar"),
  newConversation: $("new-conversation"),
  conversations: $("conversations"),
  emptyState: $("empty-state"),
  messages: $("messages"),
  composer: $("composer"),
  composerNote: $("composer-note"),
  message: $("message"),
  send: $("send"),
  stop: $("stop"),
  usage: $("usage"),
};

// The composer's files (attachments.js): attach button, paste, drag-and-drop, uploads with progress, thumbnails.
const attachments = createAttachments({
  tray: $("attachments-tray"),
  input: $("attach-input"),
  button: $("attach"),
  dropTarget: $("composer"),
  pasteTarget: $("message"),
  send: (frame) => send(frame),
  onChange: () => {
    ui.message.required = attachments.ready().length === 0; // files alone may be sent
    updateControls();
  },
  note: (text) => showComposerNote(text),
});

const state = {
  config: null,
  // { accessToken, refreshToken, expiresAt }. The access token lives in memory only; the refresh token is also kept
  // in sessionStorage (see saveSession for why there and not localStorage).
  auth: null,
  username: null,
  ws: null,
  connected: false,
  signedIn: false,
  attempt: 0,
  failedOpens: 0,
  retryTimer: null,
  keepaliveTimer: null,
  renewTimer: null,
  retryPending: false, // a reconnect waits out its backoff (retried at once when back online or shown again)
  connecting: false, // connect() is getting a token
  tokenExpired: false, // the server said token_expired: refresh before reconnecting
  reconnectWhenIdle: false, // a renewed token waits for the streaming reply before reconnecting
  statusText: "",
  conversationId: null,
  openedLatest: false, // the latest conversation was opened after sign-in (or the user chose one)
  historyWanted: null, // the conversation whose history we asked for; any other (or a late one) is not shown
  inFlight: null, // the messageId of our reply still streaming
  // New conversation was asked for and its `conversation` frame has not come yet: the pane is already the new
  // conversation's, and a message sent meanwhile waits in `queued` until the new conversation's id is known (sent
  // without it, the server would add it to the old conversation, or to whichever it made current first).
  newPending: false,
  queued: null, // the sendMessage frame waiting for the new conversation's id
  replies: new Map(), // messageId -> Reply
  // Replies asked for in another tab, whose question is fetched (getHistory) once they end: messageId -> tries.
  questionsWanted: new Map(),
  unaccepted: new Map(), // messageId -> sendMessage frame, re-sent after a reconnect (the server dedupes)
  resends: new Map(), // messageId -> how many times its frame was re-sent after a reconnect
  lastRequest: null, // the last frame other than sendMessage/cancel/ping, re-sent after rate_limited
  sendBlockedUntil: 0,
  sendBlockedTimer: null,
};

// --- Status ---------------------------------------------------------------------------------------------------

/** The connection state: the status line (the page's one live region) and its data-state. */
function setStatus(text, kind) {
  state.statusText = text;
  ui.status.textContent = text;
  ui.status.dataset.state = kind;
}

/** Something about the conversation for screen readers and everyone: the status line, connection state kept. */
function announce(text) {
  ui.status.textContent = state.statusText ? `${state.statusText} · ${text}` : text;
}

function updateControls() {
  const blocked = Date.now() < state.sendBlockedUntil;
  ui.send.disabled = !state.connected || state.inFlight !== null || blocked || attachments.busy();
  ui.stop.disabled = state.inFlight === null;
  ui.newConversation.disabled = !state.connected;
}

// --- Session --------------------------------------------------------------------------------------------------

// The refresh token is kept in sessionStorage so a reload keeps the user signed in. Not localStorage: that would
// keep a week-long credential on disk after the browser closes and share it with every tab; sessionStorage is per tab
// and gone with it. Script on this origin could read either, which is why model text never becomes script (the
// sanitiser and the CSP) — and the access token, the one the WebSocket accepts, is never stored at all: a reload
// gets a fresh one from the refresh token.
function saveSession() {
  if (!state.auth?.refreshToken) return;
  const session = {
    refreshToken: state.auth.refreshToken,
    username: state.username,
    clientId: state.config.userPoolClientId,
    conversationId: state.conversationId,
    offlineDemo: !ui.modelBadge.hidden,
  };
  try {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  } catch {
    // Storage disabled (private mode quotas): the session just ends with the tab's page.
  }
}

function loadSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    return session && session.clientId === state.config.userPoolClientId && session.refreshToken ? session : null;
  } catch {
    return null;
  }
}

function clearSession() {
  try {
    sessionStorage.removeItem(SESSION_KEY);
  } catch {
    // nothing stored
  }
}

// --- Cognito --------------------------------------------------------------------------------------------------

class SignInError extends Error {}

// Cognito's answers that may go another way if asked again later; any other refusal of a refresh token is final.
const RETRYABLE_COGNITO_ERRORS = ["TooManyRequestsException", "LimitExceededException", "InternalErrorException"];

function cognitoEndpoint() {
  const { cognitoEndpoint, region } = state.config;
  return cognitoEndpoint || `https://cognito-idp.${region}.amazonaws.com/`;
}

async function postJson(url, init, what) {
  let response;
  try {
    response = await fetch(url, { method: "POST", ...init });
  } catch (error) {
    throw new Error(`Cannot reach ${what} (${error.message}).`);
  }
  const body = await response.json().catch(() => ({}));
  return { response, body };
}

function acceptAuthResult(body) {
  if (!body.AuthenticationResult) {
    throw new SignInError(`Cognito asks for ${body.ChallengeName || "a challenge"}, which this page does not support.`);
  }
  const result = body.AuthenticationResult;
  state.auth = {
    accessToken: result.AccessToken,
    refreshToken: result.RefreshToken || state.auth?.refreshToken || null,
    expiresAt: Date.now() + (result.ExpiresIn || 3600) * 1000,
  };
  scheduleRenewal();
  saveSession();
  return state.auth.accessToken;
}

async function initiateAuth(authFlow, authParameters) {
  const { response, body } = await postJson(
    cognitoEndpoint(),
    {
      headers: {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
      },
      body: JSON.stringify({ AuthFlow: authFlow, ClientId: state.config.userPoolClientId, AuthParameters: authParameters }),
    },
    "the sign-in service",
  );
  if (!response.ok) {
    const type = String(body.__type || "").split("#").pop();
    const message = body.message || body.Message || `HTTP ${response.status}`;
    if (["NotAuthorizedException", "UserNotFoundException", "UserNotConfirmedException"].includes(type)) {
      throw new SignInError(authFlow === "REFRESH_TOKEN_AUTH" ? "Your session expired; sign in again." : message);
    }
    if (authFlow === "REFRESH_TOKEN_AUTH" && response.status < 500 && !RETRYABLE_COGNITO_ERRORS.includes(type)) {
      // The user pool or app client the session came from is gone (a restarted local stack has new ones): asking
      // again gets the same answer, forever.
      throw new SignInError("Your session is no longer valid (the service was restarted); sign in again.");
    }
    throw new Error(`Sign-in failed: ${message}`);
  }
  return acceptAuthResult(body);
}

/**
 * Revoke the refresh token (Cognito's RevokeToken): it no longer renews anything, and the access tokens it issued
 * stop working too (the server asks Cognito at `$connect` and at the next frame, and closes with `token_revoked`).
 * Best effort: signing out of this tab never waits on it or fails for it.
 */
function revokeRefreshToken(refreshToken) {
  if (!refreshToken || !state.config) return;
  postJson(
    cognitoEndpoint(),
    {
      headers: {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSCognitoIdentityProviderService.RevokeToken",
      },
      body: JSON.stringify({ Token: refreshToken, ClientId: state.config.userPoolClientId }),
    },
    "the sign-in service",
  ).catch(() => {});
}

/** A valid access token, renewed with the refresh token when it is about to expire (or `force`). */
async function accessToken(force = false) {
  if (!state.auth) throw new SignInError("Not signed in.");
  if (!force && state.auth.accessToken && Date.now() < state.auth.expiresAt - TOKEN_MARGIN_MS) {
    return state.auth.accessToken;
  }
  if (!state.auth.refreshToken) throw new SignInError("Your session expired; sign in again.");
  return initiateAuth("REFRESH_TOKEN_AUTH", { REFRESH_TOKEN: state.auth.refreshToken });
}

/** Renew the token before the server would end the connection for it, then move to a connection with the new one. */
function scheduleRenewal() {
  clearTimeout(state.renewTimer);
  if (!state.auth) return;
  const delay = Math.max(5_000, state.auth.expiresAt - Date.now() - TOKEN_MARGIN_MS);
  state.renewTimer = setTimeout(async () => {
    try {
      await accessToken(true);
    } catch (error) {
      if (error instanceof SignInError) return signOut(error.message);
      state.renewTimer = setTimeout(scheduleRenewal, 10_000);
      return;
    }
    if (state.inFlight) state.reconnectWhenIdle = true;
    else reconnectNow();
  }, delay);
}

// --- Connection -----------------------------------------------------------------------------------------------

function send(frame) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
  state.ws.send(JSON.stringify(frame));
  return true;
}

/** A request whose answer we wait for: remembered so a rate_limited answer can be retried. */
function request(frame) {
  state.lastRequest = frame;
  return send(frame);
}

function reconnectNow() {
  state.reconnectWhenIdle = false;
  const ws = state.ws;
  state.ws = null;
  state.connected = false;
  clearInterval(state.keepaliveTimer);
  if (ws) ws.close(1000, "token renewed");
  state.attempt = 0;
  connect();
}

async function connect() {
  clearTimeout(state.retryTimer);
  if (!state.signedIn) return;
  state.retryPending = false;
  state.connecting = true;
  let token;
  try {
    token = await accessToken(state.failedOpens >= 2 || state.tokenExpired);
  } catch (error) {
    state.connecting = false;
    if (error instanceof SignInError) return signOut(error.message);
    if (state.signedIn && (await stackReplaced())) {
      // Its sign-in service moved and the session belongs to the old one: nothing to reconnect to.
      state.auth = null; // not revoked: the service that issued it is gone
      return signOut("The assistant was restarted, so your session ended; sign in again.");
    }
    return scheduleReconnect(error.message);
  }
  state.connecting = false;
  state.tokenExpired = false;
  if (!state.signedIn) return;
  const url = new URL(state.config.websocketUrl);
  url.searchParams.set("Auth", token);
  setStatus(state.attempt === 0 ? "Connecting…" : "Reconnecting…", "connecting");
  const ws = new WebSocket(url.toString());
  state.ws = ws;
  let opened = false;
  ws.addEventListener("open", () => {
    if (state.ws !== ws) return;
    opened = true;
    state.connected = true;
    state.attempt = 0;
    state.failedOpens = 0;
    setStatus(`Connected${state.username ? ` as ${state.username}` : ""}`, "connected");
    updateControls();
    updateEmptyState();
    // A message sent just before a drop may never have reached the server; its id makes a re-send safe.
    resendUnaccepted();
    attachments.resume();
    if (state.newPending) send({ action: "newConversation" }); // its answer may have been lost with the connection
    request({ action: "listConversations" });
    send({ action: "getUsage" });
    clearInterval(state.keepaliveTimer);
    state.keepaliveTimer = setInterval(() => send({ action: "ping" }), KEEPALIVE_MS);
  });
  ws.addEventListener("message", (event) => onFrame(event.data));
  ws.addEventListener("close", (event) => {
    if (state.ws !== ws) return;
    clearInterval(state.keepaliveTimer);
    state.ws = null;
    state.connected = false;
    updateControls();
    if (!state.signedIn) return;
    if (state.tokenExpired) {
      // The server ended the connection with its token: renew and come straight back.
      setStatus("Renewing your session…", "connecting");
      state.attempt = 0;
      connect();
      return;
    }
    // A frame too big for the gateway closed the connection: sent again, it would close the next one too, forever.
    if (event.code === CLOSE_MESSAGE_TOO_BIG) giveBackUnaccepted("the server refused it as too large");
    // The browser hides a refused handshake's status; after repeated failures to open, renew the token.
    if (!opened) state.failedOpens += 1;
    scheduleReconnect(event.reason || (opened ? "connection lost" : "cannot connect"));
  });
}

/** A message sent just before a drop may never have reached the server; its id makes a re-send safe. */
function resendUnaccepted() {
  for (const [messageId, frame] of [...state.unaccepted]) {
    const count = (state.resends.get(messageId) || 0) + 1;
    if (count > MAX_RESENDS) {
      giveBack(messageId, "the connection closed each time it was sent");
      continue;
    }
    state.resends.set(messageId, count);
    send(frame);
  }
}

/** A message that will not be sent again: its bubble says why, and its text is back in the box. */
function giveBack(messageId, why) {
  const frame = state.unaccepted.get(messageId);
  state.unaccepted.delete(messageId);
  state.resends.delete(messageId);
  if (state.replies.has(messageId) || state.inFlight === messageId) finish(messageId, "failed", `Not sent: ${why}.`);
  if (frame && !ui.message.value) ui.message.value = frame.message;
}

function giveBackUnaccepted(why) {
  for (const messageId of [...state.unaccepted.keys()]) giveBack(messageId, why);
}

function scheduleReconnect(reason) {
  if (!state.signedIn) return;
  // Capped, with jitter so the tabs of a restarted service do not all come back in the same instant.
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** Math.min(state.attempt, 16));
  const delay = base * (1 - 0.25 * Math.random());
  state.attempt += 1;
  const when = navigator.onLine === false ? "when back online" : `in ${Math.ceil(delay / 1000)} s`;
  setStatus(`Disconnected (${reason}); reconnecting ${when}…`, "reconnecting");
  clearTimeout(state.retryTimer);
  state.retryPending = true;
  state.retryTimer = setTimeout(connect, delay);
}

/** Back online, or the tab shown again: a reconnect waiting out its backoff is tried now. */
function retryNow() {
  if (!state.signedIn || !state.retryPending || state.connecting || navigator.onLine === false) return;
  state.attempt = 0;
  connect();
}

/**
 * Whether config.json now names another sign-in service or app client than the one this tab signed in with: the
 * stack was replaced (a restarted `make dev` has a new user pool on a new port). Asked when the sign-in service
 * cannot be reached; if config.json cannot be read either, the stack is just down, and the tab keeps retrying.
 */
async function stackReplaced() {
  let fresh;
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) return false;
    fresh = await response.json();
  } catch {
    return false;
  }
  const keys = ["userPoolClientId", "cognitoEndpoint", "region", "websocketUrl"];
  if (!fresh?.userPoolClientId || keys.every((key) => fresh[key] === state.config[key])) return false;
  state.config = fresh; // the sign-in form talks to the new one
  return true;
}

// --- Rendering ------------------------------------------------------------------------------------------------

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function nearBottom() {
  const list = ui.messages;
  return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
}

function scrollToEnd() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function updateEmptyState() {
  ui.emptyState.hidden = ui.messages.childElementCount > 0 || !state.connected;
}

function showModel(model) {
  if (model === "offline-demo" && ui.modelBadge.hidden) {
    ui.modelBadge.hidden = false;
    saveSession();
  }
}

function addUserMessage(text, messageId, files) {
  const item = element("li", "message user");
  if (messageId) item.dataset.messageId = messageId;
  item.append(element("span", "role", "You"), element("div", "text", text));
  if (files && files.length) item.append(attachments.render(files));
  ui.messages.append(item);
  updateEmptyState();
  scrollToEnd();
}

function assistantItem(messageId, label) {
  const item = element("li", "message assistant");
  if (messageId) item.dataset.messageId = messageId;
  const tools = element("ul", "tools");
  tools.setAttribute("aria-label", "Tool activity");
  const text = element("div", "text markdown");
  const meta = element("div", "meta");
  item.append(element("span", "role", label), tools, text, meta);
  return { item, tools, textEl: text, meta };
}

/** One assistant reply: its bubble and the frames assembled so far. */
function reply(messageId, own = false) {
  let current = state.replies.get(messageId);
  if (current) return current;
  const parts = assistantItem(messageId, own ? "Assistant" : "Assistant (another tab)");
  let question = null;
  if (!own) {
    // Asked in another tab: every tab gets the reply's frames, but none carries the question, which is shown once
    // the turn can be read back (askForQuestion).
    parts.item.classList.add("other-tab");
    question = element("li", "message user other-tab");
    question.dataset.messageId = messageId;
    question.dataset.state = "pending";
    question.append(element("span", "role", "You (another tab)"), element("div", "text", "…"));
    ui.messages.append(question);
  }
  parts.item.dataset.state = "streaming";
  ui.messages.append(parts.item);
  updateEmptyState();
  current = {
    messageId, own, question, nextSeq: 0, early: new Map(), ahead: new Map(), text: "", finished: false, frame: 0,
    ...parts,
  };
  state.replies.set(messageId, current);
  scrollToEnd();
  return current;
}

/** Render only this reply's Markdown, at most once per animation frame however many deltas arrive. */
function scheduleRender(current) {
  if (current.frame) return;
  current.frame = requestAnimationFrame(() => renderReply(current));
}

function renderReply(current) {
  if (current.frame) cancelAnimationFrame(current.frame);
  current.frame = 0;
  const stick = nearBottom();
  current.textEl.replaceChildren(renderMarkdown(current.text));
  if (stick) scrollToEnd();
}

// Frames are placed by `offset` (where their text starts in the reply): a worker that resumes a reply after a crash
// re-sends up to a second of text, which then adds only what goes beyond; a frame that starts past the end waits
// for the gap to fill. A server without `offset` is followed by `seq`.
function placeByOffset(current, offset, text) {
  if (offset + text.length <= current.text.length) return "";
  const held = current.ahead.get(offset) || "";
  current.ahead.set(offset, text.length > held.length ? text : held);
  let added = "";
  for (;;) {
    const starts = [...current.ahead.keys()].filter((start) => start <= current.text.length + added.length);
    if (!starts.length) return added;
    const start = Math.min(...starts);
    added += current.ahead.get(start).slice(current.text.length + added.length - start);
    current.ahead.delete(start);
  }
}

function placeBySeq(current, seq, text) {
  if (seq < current.nextSeq || current.early.has(seq)) return "";
  current.early.set(seq, text);
  let added = "";
  while (current.early.has(current.nextSeq)) {
    added += current.early.get(current.nextSeq);
    current.early.delete(current.nextSeq);
    current.nextSeq += 1;
  }
  return added;
}

function onDelta(frame) {
  const current = reply(frame.messageId);
  if (current.finished) return;
  const text = String(frame.text);
  const added =
    frame.offset === undefined || frame.offset === null
      ? placeBySeq(current, Number(frame.seq), text)
      : placeByOffset(current, Number(frame.offset), text);
  if (added) {
    current.text += added;
    scheduleRender(current);
  }
}

// The server's model stream dropped and the reply is being generated again from `offset` (usually 0): the text
// from there on is void, and the deltas that follow number their `seq` from 0 again (docs/protocol.md).
function onReset(frame) {
  const current = reply(frame.messageId);
  if (current.finished) return;
  current.text = current.text.slice(0, Math.max(0, Number(frame.offset) || 0));
  current.ahead.clear();
  current.early.clear();
  current.nextSeq = 0;
  renderReply(current);
}

function toolLine(tools, name, status) {
  let entry = tools.querySelector(`li[data-tool="${CSS.escape(String(name))}"][data-status="started"]`);
  if (!entry || status === "started") {
    entry = element("li");
    entry.dataset.tool = String(name);
    tools.append(entry);
  }
  entry.dataset.status = String(status);
  const label = { started: "running…", done: "done", failed: "failed" }[status] || String(status);
  entry.textContent = `Tool ${name}: ${label}`;
}

function onTool(frame) {
  toolLine(reply(frame.messageId).tools, frame.name, frame.status);
}

function usageNote(usage, model) {
  const parts = [];
  if (usage && (usage.inputTokens !== undefined || usage.outputTokens !== undefined)) {
    parts.push(`${usage.inputTokens ?? 0} in / ${usage.outputTokens ?? 0} out tokens`);
  }
  if (model) parts.push(model);
  return parts.join(" · ");
}

function finish(messageId, outcome, note) {
  const current = reply(messageId);
  if (current.finished) return;
  current.finished = true;
  // Frames held behind a gap that will never fill (sent while we were reconnecting): show them anyway.
  if (current.early.size || current.ahead.size) {
    const seqs = [...current.early.keys()].sort((a, b) => a - b);
    current.text += seqs.map((seq) => current.early.get(seq)).join("");
    const starts = [...current.ahead.keys()].sort((a, b) => a - b);
    current.text += starts.map((start) => current.ahead.get(start)).join("");
    current.early.clear();
    current.ahead.clear();
    note = `${note ? note + " · " : ""}part of this reply was missed while reconnecting`;
  }
  renderReply(current);
  current.item.dataset.state = outcome;
  current.item.removeAttribute("aria-busy");
  current.meta.textContent = note || "";
  state.unaccepted.delete(messageId);
  state.resends.delete(messageId);
  if (state.inFlight === messageId) {
    state.inFlight = null;
    ui.stop.textContent = "Stop";
    updateControls();
    if (state.reconnectWhenIdle) reconnectNow();
  }
}

function showError(frame) {
  const item = element("li", "message error");
  item.setAttribute("role", "alert");
  item.dataset.code = String(frame.code);
  item.textContent = `Error (${frame.code}): ${frame.message}`;
  ui.messages.append(item);
  updateEmptyState();
  scrollToEnd();
}

function renderUsage(frame) {
  const left = (used, quota) => Math.max(0, Number(quota) - Number(used));
  const number = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
  const messagesLeft = left(frame.messages, frame.messageQuota);
  const inputLeft = left(frame.inputTokens, frame.inputTokenQuota);
  const outputLeft = left(frame.outputTokens, frame.outputTokenQuota);
  const resets = frame.resetsAt ? new Date(frame.resetsAt) : null;
  ui.usage.textContent =
    `Left today: ${messagesLeft} of ${frame.messageQuota} messages · ` +
    `${number.format(inputLeft)} input and ${number.format(outputLeft)} output tokens` +
    (resets && !isNaN(resets) ? ` · resets ${resets.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}` : "");
  ui.usage.title = `Used today (${frame.day}, UTC): ${frame.messages} messages, ${frame.inputTokens} input tokens, ${frame.outputTokens} output tokens`;
  Object.assign(ui.usage.dataset, {
    messagesLeft: String(messagesLeft),
    inputTokensLeft: String(inputLeft),
    outputTokensLeft: String(outputLeft),
  });
  ui.usage.classList.toggle("low", messagesLeft <= Math.ceil(frame.messageQuota * 0.1));
  ui.usage.hidden = false;
}

// --- Conversations --------------------------------------------------------------------------------------------

function requestHistory(conversationId) {
  state.historyWanted = conversationId;
  request({ action: "getHistory", conversationId });
}

function openConversation(conversationId) {
  state.openedLatest = true;
  if (!state.queued) state.newPending = false; // chose another one before the new one arrived
  requestHistory(conversationId);
  closeDrawer();
}

// The server's default title (docs/protocol.md) is the New conversation button's name: an entry with it, or with
// none, is shown as untitled, so that button stays the page's only one named "New conversation".
const UNTITLED = new Set(["", "new conversation"]);

function conversationTitle(title) {
  const text = String(title ?? "").trim();
  return UNTITLED.has(text.toLowerCase()) ? "Untitled conversation" : text;
}

function renderConversations(items) {
  ui.conversations.replaceChildren(
    ...items.map((item) => {
      const li = element("li");
      const button = element("button", "conversation");
      button.type = "button";
      button.dataset.conversationId = item.conversationId;
      button.setAttribute("aria-current", String(item.conversationId === state.conversationId));
      button.append(
        element("span", "title", conversationTitle(item.title)),
        element("span", "updated", item.updatedAt ? new Date(item.updatedAt).toLocaleString() : ""),
      );
      button.addEventListener("click", () => openConversation(item.conversationId));
      li.append(button);
      return li;
    }),
  );
  // After sign-in (or a reload) the conversation the user had open, else the latest one, opens by itself, unless
  // they have already started typing into a fresh one.
  if (!state.openedLatest && items.length && !state.inFlight && ui.messages.childElementCount === 0) {
    const known = items.find((item) => item.conversationId === state.conversationId);
    state.openedLatest = true;
    requestHistory((known || items[0]).conversationId);
  }
  state.openedLatest = true;
}

function markCurrentConversation() {
  for (const button of ui.conversations.querySelectorAll("button.conversation")) {
    button.setAttribute("aria-current", String(button.dataset.conversationId === state.conversationId));
  }
  $("conversation-tools").hidden = !state.conversationId;
  saveSession();
}

function historyTools(tools) {
  if (!Array.isArray(tools)) return [];
  return tools.map((tool) => (typeof tool === "string" ? { name: tool, status: "done" } : tool));
}

/**
 * A reply another tab asked for has ended: read its turn back (the newest few of its conversation) for the question.
 * The server sends `done` just before it commits the turn, so a turn not there yet is asked for again, a few times.
 * A reply in another conversation than the one shown leaves this pane; it is in that conversation's history.
 */
function askForQuestion(current, conversationId) {
  if (!current.question || current.question.dataset.state !== "pending") return;
  if (conversationId && state.conversationId && conversationId !== state.conversationId) {
    current.question.remove();
    current.item.remove();
    updateEmptyState();
    return;
  }
  const id = conversationId || state.conversationId;
  if (!id) return;
  const tries = (state.questionsWanted.get(current.messageId)?.tries || 0) + 1;
  if (tries > 4) {
    state.questionsWanted.delete(current.messageId);
    current.question.dataset.state = "unknown";
    current.question.querySelector(".text").textContent = "(asked in another tab)";
    return;
  }
  state.questionsWanted.set(current.messageId, { current, conversationId: id, tries });
  // The pane's own history of that conversation is on its way and will do (a short answer must not replace it).
  if (state.historyWanted === id) return;
  setTimeout(() => send({ action: "getHistory", conversationId: id, limit: 5 }), tries === 1 ? 0 : 300 * tries);
}

function fillQuestions(frame) {
  for (const [messageId, wanted] of [...state.questionsWanted]) {
    if (wanted.conversationId !== frame.conversationId) continue;
    const asked = (frame.messages || []).find((m) => m.role === "user" && m.messageId === messageId);
    if (!asked) {
      setTimeout(() => askForQuestion(wanted.current, wanted.conversationId), 0); // after this frame is shown
      continue;
    }
    state.questionsWanted.delete(messageId);
    wanted.current.question.dataset.state = "shown";
    wanted.current.question.querySelector(".text").textContent = asked.text;
  }
}

function renderHistory(frame) {
  fillQuestions(frame);
  // Only the history last asked for: not one the user has moved on from (sent a message, chose another) meanwhile.
  if (frame.conversationId !== state.historyWanted) return;
  state.historyWanted = null;
  // A reply of ours still streaming stays on screen below the history rather than being lost with the old list.
  const live = [...state.replies.values()].filter((current) => !current.finished);
  state.conversationId = frame.conversationId;
  ui.messages.replaceChildren();
  const shown = new Set();
  for (const message of frame.messages) {
    if (message.messageId) shown.add(message.messageId);
    if (message.role === "user") {
      addUserMessage(message.text, message.messageId, message.attachments);
      continue;
    }
    const parts = assistantItem(message.messageId, "Assistant");
    const outcome = message.status || message.state || "done";
    parts.item.dataset.state = outcome;
    for (const tool of historyTools(message.tools)) toolLine(parts.tools, tool.name, tool.status || "done");
    parts.textEl.append(renderMarkdown(message.text));
    const note = usageNote(message.usage, message.model);
    parts.meta.textContent = outcome === "cancelled" ? ["Stopped", note].filter(Boolean).join(" · ") : note;
    showModel(message.model);
    ui.messages.append(parts.item);
  }
  for (const current of live) {
    if (current.messageId && shown.has(current.messageId)) continue;
    ui.messages.append(current.item);
  }
  updateEmptyState();
  markCurrentConversation();
  scrollToEnd();
}

// --- Frames ---------------------------------------------------------------------------------------------------

/** The conversation New conversation asked for: it becomes current, and a message typed meanwhile goes to it. */
function onConversation(frame) {
  if (!state.newPending) {
    // Not one we are waiting for (the user opened another conversation meanwhile): only the list changes.
    request({ action: "listConversations" });
    return;
  }
  state.newPending = false;
  state.conversationId = frame.conversationId;
  state.openedLatest = true;
  state.historyWanted = null;
  markCurrentConversation();
  const queued = state.queued;
  state.queued = null;
  if (queued) {
    queued.conversationId = frame.conversationId;
    state.unaccepted.set(queued.messageId, queued);
    send(queued); // if the connection is down, the reconnect sends it with the other unaccepted frames
  }
  request({ action: "listConversations" });
}

/** New conversation: the pane empties at once, and whatever is typed next belongs to the new conversation. */
function startNewConversation() {
  if (!state.connected) return;
  state.newPending = true;
  state.conversationId = null;
  state.openedLatest = true;
  state.historyWanted = null;
  const live = [...state.replies.values()].filter((current) => !current.finished);
  ui.messages.replaceChildren();
  for (const current of live) ui.messages.append(current.item); // a reply still streaming is not lost
  markCurrentConversation();
  updateEmptyState();
  request({ action: "newConversation" });
}

// --- Managing conversations: rename, delete, delete everything, export ----------------------------------------------

function currentTitle() {
  const button = ui.conversations.querySelector(`button.conversation[aria-current="true"] .title`);
  return button ? button.textContent : "";
}

function startRename() {
  if (!state.conversationId) return;
  const form = $("rename-form");
  $("rename-title").value = currentTitle() === "Untitled conversation" ? "" : currentTitle();
  form.hidden = false;
  $("rename-title").focus();
}

function submitRename(event) {
  event.preventDefault();
  const title = $("rename-title").value.trim();
  if (!state.conversationId || !title) return;
  request({ action: "renameConversation", conversationId: state.conversationId, title });
  $("rename-form").hidden = true;
}

function deleteCurrent() {
  if (!state.conversationId || !confirm("Delete this conversation? This cannot be undone.")) return;
  request({ action: "deleteConversation", conversationId: state.conversationId });
}

function deleteEverything() {
  if (!confirm("Delete all your conversations? This cannot be undone.")) return;
  request({ action: "deleteAllData" });
}

/** A rename or a deletion, from this tab or another: the list is read again; a deleted open conversation closes. */
function onConversationsChanged(frame) {
  const gone = frame.type === "dataDeleted" || (frame.type === "conversationDeleted" && frame.conversationId === state.conversationId);
  if (gone) {
    state.conversationId = null;
    state.historyWanted = null;
    ui.messages.replaceChildren();
    markCurrentConversation();
    updateEmptyState();
    announce(frame.type === "dataDeleted" ? "all conversations deleted" : "conversation deleted");
  } else if (frame.type === "conversationUpdated") {
    announce("conversation renamed");
  }
  request({ action: "listConversations" });
}

/** Export: every getHistory page of the conversation, oldest first, downloaded as one Markdown file. */
function exportCurrent() {
  if (!state.conversationId) return;
  state.exporting = { conversationId: state.conversationId, title: currentTitle() || "Conversation", pages: [] };
  send({ action: "getHistory", conversationId: state.conversationId });
}

function collectExport(frame) {
  const exporting = state.exporting;
  if (!exporting || frame.conversationId !== exporting.conversationId) return false;
  exporting.pages.unshift(frame.messages || []);
  if (frame.cursor) {
    send({ action: "getHistory", conversationId: exporting.conversationId, before: frame.cursor });
    return true;
  }
  state.exporting = null;
  const lines = [`# ${exporting.title}`, ""];
  for (const message of exporting.pages.flat()) {
    lines.push(message.role === "user" ? "## You" : "## Assistant", "", String(message.text || "").trimEnd() || "*(no text)*");
    if (message.role === "assistant" && message.status === "cancelled") lines.push("", "*(stopped)*");
    if (message.role === "assistant" && message.status === "failed") lines.push("", "*(failed)*");
    lines.push("");
  }
  const link = element("a");
  link.href = URL.createObjectURL(new Blob([lines.join("\n")], { type: "text/markdown" }));
  link.download = `${exporting.title.replace(/[^\w .-]+/g, "_").slice(0, 60) || "conversation"}.md`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  return true;
}

function onError(frame) {
  const code = String(frame.code);
  if (code === "token_expired") {
    // The server closes the connection next; the close handler renews the token and reconnects, and a message we
    // had just sent is still unaccepted, so it is sent again on the new connection.
    state.tokenExpired = true;
    announce("session expired; renewing…");
    return;
  }
  if (code === "token_revoked") {
    // Signed out everywhere, disabled or deleted: a refresh cannot help, and the server closes the connection next.
    signOut("You were signed out. Sign in again to continue.");
    return;
  }
  if (attachments.onError(frame)) return; // a refused requestUpload: said under the composer
  showError(frame);
  // An error without an id answers a frame the server could not act on: the sendMessage still unaccepted, if any.
  const pending = state.inFlight && state.unaccepted.has(state.inFlight) ? state.inFlight : null;
  if (code === "rate_limited") {
    const waitMs = Math.max(0, Number(frame.retryAfterMs) || 1000);
    const seconds = Math.ceil(waitMs / 1000);
    if (frame.messageId || pending) {
      const messageId = frame.messageId || pending;
      const sent = state.unaccepted.get(messageId);
      finish(messageId, "failed", `Not sent: too many messages. You can send again in ${seconds} s.`);
      if (sent && !ui.message.value) ui.message.value = sent.message; // nothing lost: it is back in the box
      state.sendBlockedUntil = Date.now() + waitMs;
      clearTimeout(state.sendBlockedTimer);
      state.sendBlockedTimer = setTimeout(() => {
        updateControls();
        announce("you can send again");
      }, waitMs);
      updateControls();
      announce(`too many messages; wait ${seconds} s`);
    } else if (state.lastRequest) {
      // A list, history or new-conversation request was refused: ask again once allowed.
      const frameToRetry = state.lastRequest;
      setTimeout(() => request(frameToRetry), waitMs);
      announce(`busy; retrying in ${seconds} s`);
    }
    return;
  }
  announce(`error: ${frame.message}`);
  if (state.newPending && !frame.messageId && !pending) {
    // New conversation was refused (too many conversations kept): a message waiting for it comes back to the box.
    state.newPending = false;
    const queued = state.queued;
    state.queued = null;
    if (queued) {
      finish(queued.messageId, "failed", `Not sent: ${frame.message}`);
      if (!ui.message.value) ui.message.value = queued.message;
    }
  }
  if (code === "quota_exceeded") send({ action: "getUsage" }); // the meter shows what ran out, and when it resets
  const target = frame.messageId || pending;
  if (code === "too_large" && target && state.unaccepted.has(target)) {
    giveBack(target, frame.message.replace(/\.$/, "")); // never re-sent; the text is back in the box
    return;
  }
  if (target && (state.replies.has(target) || target === state.inFlight)) {
    finish(target, "failed", `Failed: ${frame.message}`);
    askForQuestion(reply(target), null); // another tab's failed reply is kept with its question too
  }
}

function onFrame(data) {
  let frame;
  try {
    frame = JSON.parse(data);
  } catch {
    console.warn("Ignored a frame that is not JSON", data);
    return;
  }
  switch (frame.type) {
    case "accepted": {
      const current = reply(frame.messageId);
      state.unaccepted.delete(frame.messageId);
      state.resends.delete(frame.messageId);
      if (current.own) {
        state.conversationId = frame.conversationId;
        markCurrentConversation();
      }
      break;
    }
    case "delta":
      onDelta(frame);
      break;
    case "reset":
      onReset(frame);
      break;
    case "tool":
      onTool(frame);
      break;
    case "done": {
      showModel(frame.model);
      finish(frame.messageId, "done", usageNote(frame.usage || {}, frame.model));
      askForQuestion(reply(frame.messageId), frame.conversationId);
      if (reply(frame.messageId).own) {
        request({ action: "listConversations" });
        announce("reply finished");
      }
      send({ action: "getUsage" });
      break;
    }
    case "cancelled":
      finish(frame.messageId, "cancelled", "Stopped");
      askForQuestion(reply(frame.messageId), null);
      announce("reply stopped");
      send({ action: "getUsage" });
      break;
    case "error":
      onError(frame);
      break;
    case "conversation":
      onConversation(frame);
      break;
    case "conversations":
      renderConversations(frame.items || []);
      break;
    case "history":
      if (!collectExport(frame)) renderHistory(frame);
      break;
    case "conversationUpdated":
    case "conversationDeleted":
    case "dataDeleted":
      onConversationsChanged(frame);
      break;
    case "usage":
      renderUsage(frame);
      break;
    case "pong":
      break;
    case "upload":
      attachments.onUpload(frame);
      break;
    case "attachment":
      attachments.onAttachment(frame);
      break;
    default:
      console.warn("Ignored a frame of unknown type", frame.type);
  }
}

// --- Actions --------------------------------------------------------------------------------------------------

function newMessageId() {
  // crypto.getRandomValues works on plain http hosts too (randomUUID needs a secure context).
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "m_" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Why a message cannot be sent as it is (over the documented limits), or "" if it can. */
function tooLong(frame) {
  const limit = Number(state.config?.maxMessageChars) || DEFAULT_MAX_MESSAGE_CHARS;
  const characters = [...frame.message].length; // code points, as the server counts them
  const format = (n) => n.toLocaleString("en-US");
  if (characters > limit) {
    return `This message is ${format(characters)} characters long; the limit is ${format(limit)}. Shorten it and send again.`;
  }
  // Room for the conversation's id, which a message waiting for New conversation gets later.
  const sized = { ...frame, conversationId: frame.conversationId || "c_" + "0".repeat(32) };
  const bytes = new TextEncoder().encode(JSON.stringify(sized)).length;
  if (bytes > MAX_FRAME_BYTES) {
    const kb = (bytes / 1024).toFixed(1);
    return `This message is ${kb} KB once encoded; a message must fit in 32 KB (emoji and non-Latin scripts take several bytes a character). Shorten it and send again.`;
  }
  return "";
}

function showComposerNote(text) {
  ui.composerNote.textContent = text;
  ui.composerNote.hidden = !text;
  if (text) ui.message.setAttribute("aria-invalid", "true");
  else ui.message.removeAttribute("aria-invalid");
}

function sendMessage() {
  const text = ui.message.value;
  const hasFiles = attachments.ready().length > 0;
  if ((!text.trim() && !hasFiles) || state.inFlight || ui.send.disabled) return;
  const messageId = newMessageId();
  const frame = { action: "sendMessage", message: text, messageId };
  const ready = attachments.ready();
  if (ready.length) frame.attachments = ready.map((file) => file.uploadId);
  const refusal = tooLong(frame);
  showComposerNote(refusal);
  if (refusal) return; // never sent: the text stays in the box to be shortened
  if (state.newPending) {
    if (!state.connected) return;
    state.queued = frame; // sent by onConversation, with the new conversation's id
  } else {
    if (state.conversationId) frame.conversationId = state.conversationId;
    if (!send(frame)) return;
    state.unaccepted.set(messageId, frame);
  }
  state.openedLatest = true;
  state.historyWanted = null;
  state.inFlight = messageId;
  ui.message.value = "";
  const files = attachments.take(); // out of the composer only once the message is on its way
  addUserMessage(text, messageId, files);
  const current = reply(messageId, true);
  current.item.setAttribute("aria-busy", "true");
  announce("assistant is replying…");
  updateControls();
}

function stopReply() {
  if (!state.inFlight) return;
  if (state.queued?.messageId === state.inFlight) {
    // Still waiting for the new conversation: never sent, so nothing to cancel on the server.
    const queued = state.queued;
    state.queued = null;
    finish(queued.messageId, "cancelled", "Stopped");
    ui.message.focus();
    return;
  }
  if (send({ action: "cancel", messageId: state.inFlight })) {
    ui.stop.disabled = true;
    ui.stop.textContent = "Stopping…";
  }
  ui.message.focus(); // the Stop button is about to be disabled: keep keyboard users in the message box
}

function openDrawer() {
  ui.sidebar.classList.add("open");
  ui.backdrop.hidden = false;
  ui.menu.setAttribute("aria-expanded", "true");
  (ui.sidebar.querySelector("[aria-current='true']") || ui.newConversation).focus();
}

function closeDrawer() {
  if (!ui.sidebar.classList.contains("open")) return;
  ui.sidebar.classList.remove("open");
  ui.backdrop.hidden = true;
  ui.menu.setAttribute("aria-expanded", "false");
  if (PHONE.matches) ui.menu.focus();
}

function signOut(message) {
  revokeRefreshToken(state.auth?.refreshToken);
  state.signedIn = false;
  state.auth = null;
  state.username = null;
  clearSession();
  clearTimeout(state.retryTimer);
  clearTimeout(state.renewTimer);
  clearInterval(state.keepaliveTimer);
  const ws = state.ws;
  state.ws = null;
  state.connected = false;
  if (ws) ws.close(1000, "signed out");
  state.replies.clear();
  state.unaccepted.clear();
  state.resends.clear();
  state.newPending = false;
  state.queued = null;
  state.inFlight = null;
  state.conversationId = null;
  state.openedLatest = false;
  state.historyWanted = null;
  ui.messages.replaceChildren();
  ui.conversations.replaceChildren();
  ui.usage.hidden = true;
  ui.modelBadge.hidden = true;
  closeDrawer();
  ui.chatView.hidden = true;
  ui.signOut.hidden = true;
  ui.menu.hidden = true;
  ui.signInView.hidden = false;
  ui.signInError.textContent = message || "";
  setStatus("Signed out", "signed-out");
  updateControls();
}

function enterChat(username) {
  state.username = username;
  state.signedIn = true;
  state.attempt = 0;
  state.failedOpens = 0;
  saveSession();
  ui.signInView.hidden = true;
  ui.chatView.hidden = false;
  ui.signOut.hidden = false;
  ui.menu.hidden = false;
  updateEmptyState();
  ui.message.focus();
  connect();
}

async function signInWith(attempt) {
  ui.signIn.disabled = true;
  ui.demoSignIn.disabled = true;
  ui.signInError.textContent = "";
  setStatus("Signing in…", "connecting");
  try {
    await attempt();
  } catch (error) {
    ui.signInError.textContent = error.message;
    setStatus("Signed out", "signed-out");
    return false;
  } finally {
    ui.signIn.disabled = false;
    ui.demoSignIn.disabled = false;
  }
  return true;
}

async function onSignIn(event) {
  event.preventDefault();
  const username = ui.username.value;
  const ok = await signInWith(async () => {
    if (!state.config.userPoolId) throw new Error("config.json has no userPoolId, which sign-in needs.");
    const result = await srpSignIn({
      userPoolId: state.config.userPoolId,
      clientId: state.config.userPoolClientId,
      endpoint: cognitoEndpoint(),
      username,
      password: ui.password.value,
    });
    acceptAuthResult({ AuthenticationResult: result });
  });
  if (!ok) return;
  ui.password.value = "";
  enterChat(username);
}

// The local stack's one-click sign-in: its gateway (127.0.0.1 only) signs the demo user in and hands us Cognito's
// answer, so the demo password is never served to the page, not even in config.json.
async function onDemoSignIn() {
  const ok = await signInWith(async () => {
    const { response, body } = await postJson(
      new URL(state.config.demoSignIn, document.baseURI),
      { headers: { "Content-Type": "application/json" }, body: "{}" },
      "the local stack",
    );
    if (!response.ok) throw new Error(`Demo sign-in failed: HTTP ${response.status}`);
    acceptAuthResult(body);
  });
  if (ok) enterChat(state.config.demoUsername);
}

async function start() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    state.config = await response.json();
    if (!state.config.websocketUrl || !state.config.userPoolClientId) {
      throw new Error("websocketUrl or userPoolClientId missing");
    }
  } catch (error) {
    setStatus(`Cannot load config.json (${error.message})`, "error");
    return;
  }
  if (state.config.demoUsername && !ui.username.value) ui.username.value = state.config.demoUsername;
  if (state.config.demoSignIn && state.config.demoUsername) {
    ui.demoSignIn.textContent = `Use the demo account (${state.config.demoUsername})`;
    ui.demo.hidden = false;
  }
  ui.signIn.disabled = false;
  setStatus("Signed out", "signed-out");
  const session = loadSession();
  if (session) {
    // A reload: the access token was in memory only, so the first connect renews it from the refresh token.
    state.auth = { accessToken: null, refreshToken: session.refreshToken, expiresAt: 0 };
    state.conversationId = session.conversationId || null;
    if (session.offlineDemo) ui.modelBadge.hidden = false;
    enterChat(session.username || null);
  }
}

ui.signInForm.addEventListener("submit", onSignIn);
ui.demoSignIn.addEventListener("click", onDemoSignIn);
ui.signOut.addEventListener("click", () => signOut());
ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendMessage();
});
ui.message.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendMessage();
  } else if (event.key === "Escape" && state.inFlight) {
    event.preventDefault();
    stopReply();
  }
});
ui.message.addEventListener("input", () => {
  if (!ui.composerNote.hidden) showComposerNote("");
});
ui.stop.addEventListener("click", stopReply);
$("rename-conversation").addEventListener("click", startRename);
$("rename-form").addEventListener("submit", submitRename);
$("rename-cancel").addEventListener("click", () => ($("rename-form").hidden = true));
$("delete-conversation").addEventListener("click", deleteCurrent);
$("export-conversation").addEventListener("click", exportCurrent);
$("delete-all").addEventListener("click", deleteEverything);

ui.newConversation.addEventListener("click", () => {
  startNewConversation();
  closeDrawer();
  ui.message.focus();
});
for (const button of document.querySelectorAll("#empty-state .suggestion")) {
  button.addEventListener("click", () => {
    ui.message.value = button.textContent;
    ui.message.focus();
  });
}
ui.menu.addEventListener("click", () => (ui.sidebar.classList.contains("open") ? closeDrawer() : openDrawer()));
ui.backdrop.addEventListener("click", closeDrawer);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && ui.sidebar.classList.contains("open")) closeDrawer();
});
PHONE.addEventListener("change", () => closeDrawer());
window.addEventListener("online", retryNow);
window.addEventListener("offline", () => {
  if (state.signedIn && !state.connected) setStatus("Offline; reconnecting when back online…", "reconnecting");
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") retryNow();
});
updateControls();
start();
