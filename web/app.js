// The assistant's web chat: plain ES module, no build step, no dependencies.
//
// Reads config.json next to the page (websocketUrl, region, userPoolClientId, optional cognitoEndpoint and
// demoUsername), signs in with Cognito's InitiateAuth (USER_PASSWORD_AUTH), keeps the tokens in memory only, and
// talks the WebSocket protocol of docs/protocol.md. Model text is only ever inserted with textContent.

const KEEPALIVE_MS = 5 * 60 * 1000; // API Gateway drops a connection idle for 10 minutes
const BACKOFF_INITIAL_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const TOKEN_MARGIN_MS = 60_000; // renew this long before the access token expires

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  signOut: $("sign-out"),
  signInView: $("sign-in-view"),
  signInForm: $("sign-in-form"),
  username: $("username"),
  password: $("password"),
  signIn: $("sign-in"),
  signInError: $("sign-in-error"),
  chatView: $("chat-view"),
  newConversation: $("new-conversation"),
  conversations: $("conversations"),
  messages: $("messages"),
  composer: $("composer"),
  message: $("message"),
  send: $("send"),
  stop: $("stop"),
};

const state = {
  config: null,
  auth: null, // { accessToken, refreshToken, expiresAt } — memory only, never localStorage
  ws: null,
  connected: false,
  signedIn: false,
  attempt: 0,
  failedOpens: 0,
  retryTimer: null,
  keepaliveTimer: null,
  conversationId: null,
  inFlight: null, // the messageId of our reply still streaming
  replies: new Map(), // messageId -> Reply
  unaccepted: new Map(), // messageId -> sendMessage frame, re-sent after a reconnect (the server dedupes)
};

// --- Status ---------------------------------------------------------------------------------------------------

function setStatus(text, kind) {
  ui.status.textContent = text;
  ui.status.dataset.state = kind;
}

function updateControls() {
  ui.send.disabled = !state.connected || state.inFlight !== null;
  ui.stop.disabled = state.inFlight === null;
  ui.newConversation.disabled = !state.connected;
}

// --- Cognito --------------------------------------------------------------------------------------------------

class SignInError extends Error {}

function cognitoEndpoint() {
  const { cognitoEndpoint, region } = state.config;
  return cognitoEndpoint || `https://cognito-idp.${region}.amazonaws.com/`;
}

async function initiateAuth(authFlow, authParameters) {
  let response;
  try {
    response = await fetch(cognitoEndpoint(), {
      method: "POST",
      headers: {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
      },
      body: JSON.stringify({
        AuthFlow: authFlow,
        ClientId: state.config.userPoolClientId,
        AuthParameters: authParameters,
      }),
    });
  } catch (error) {
    throw new Error(`Cannot reach the sign-in service (${error.message}).`);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const type = String(body.__type || "").split("#").pop();
    const message = body.message || body.Message || `HTTP ${response.status}`;
    if (["NotAuthorizedException", "UserNotFoundException", "UserNotConfirmedException"].includes(type)) {
      throw new SignInError(message);
    }
    throw new Error(`Sign-in failed: ${message}`);
  }
  if (!body.AuthenticationResult) {
    throw new SignInError(`Cognito asks for ${body.ChallengeName || "a challenge"}, which this page does not support.`);
  }
  const result = body.AuthenticationResult;
  state.auth = {
    accessToken: result.AccessToken,
    refreshToken: result.RefreshToken || state.auth?.refreshToken || null,
    expiresAt: Date.now() + (result.ExpiresIn || 3600) * 1000,
  };
  return state.auth.accessToken;
}

/** A valid access token, renewed with the refresh token when it is about to expire (or `force`). */
async function accessToken(force = false) {
  if (!state.auth) throw new SignInError("Not signed in.");
  if (!force && Date.now() < state.auth.expiresAt - TOKEN_MARGIN_MS) return state.auth.accessToken;
  if (!state.auth.refreshToken) throw new SignInError("Your session expired; sign in again.");
  return initiateAuth("REFRESH_TOKEN_AUTH", { REFRESH_TOKEN: state.auth.refreshToken });
}

// --- Connection -----------------------------------------------------------------------------------------------

function send(frame) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
  state.ws.send(JSON.stringify(frame));
  return true;
}

async function connect() {
  clearTimeout(state.retryTimer);
  if (!state.signedIn) return;
  let token;
  try {
    token = await accessToken(state.failedOpens >= 2);
  } catch (error) {
    if (error instanceof SignInError) return signOut(error.message);
    return scheduleReconnect(error.message);
  }
  const url = new URL(state.config.websocketUrl);
  url.searchParams.set("Auth", token);
  setStatus(state.attempt === 0 ? "Connecting…" : "Reconnecting…", "connecting");
  const ws = new WebSocket(url.toString());
  state.ws = ws;
  let opened = false;
  ws.addEventListener("open", () => {
    opened = true;
    state.connected = true;
    state.attempt = 0;
    state.failedOpens = 0;
    setStatus("Connected", "connected");
    updateControls();
    // A message sent just before a drop may never have reached the server; its id makes a re-send safe.
    for (const frame of state.unaccepted.values()) send(frame);
    send({ action: "listConversations" });
    state.keepaliveTimer = setInterval(() => send({ action: "ping" }), KEEPALIVE_MS);
  });
  ws.addEventListener("message", (event) => onFrame(event.data));
  ws.addEventListener("close", (event) => {
    if (state.ws !== ws) return;
    clearInterval(state.keepaliveTimer);
    state.ws = null;
    state.connected = false;
    updateControls();
    // The browser hides a refused handshake's status; after repeated failures to open, renew the token.
    if (!opened) state.failedOpens += 1;
    if (state.signedIn) scheduleReconnect(event.reason || (opened ? "connection lost" : "cannot connect"));
  });
}

function scheduleReconnect(reason) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** state.attempt);
  const delay = base * (1 - 0.25 * Math.random());
  state.attempt += 1;
  setStatus(`Disconnected (${reason}); reconnecting in ${Math.ceil(delay / 1000)} s…`, "reconnecting");
  state.retryTimer = setTimeout(connect, delay);
}

// --- Replies --------------------------------------------------------------------------------------------------

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function scrollToEnd() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function addUserMessage(text, messageId) {
  const item = element("li", "message user");
  if (messageId) item.dataset.messageId = messageId;
  item.append(element("span", "role", "You"), element("div", "text", text));
  ui.messages.append(item);
  scrollToEnd();
}

/** One assistant reply: its bubble and the frames assembled so far. */
function reply(messageId, own = false) {
  let current = state.replies.get(messageId);
  if (current) return current;
  const item = element("li", "message assistant" + (own ? "" : " other-tab"));
  item.dataset.messageId = messageId;
  item.dataset.state = "streaming";
  const tools = element("ul", "tools");
  tools.setAttribute("aria-label", "Tool activity");
  const text = element("div", "text");
  const meta = element("div", "meta");
  item.append(element("span", "role", own ? "Assistant" : "Assistant (another tab)"), tools, text, meta);
  ui.messages.append(item);
  current = { messageId, own, nextSeq: 0, early: new Map(), text: "", finished: false, item, tools, textEl: text, meta };
  state.replies.set(messageId, current);
  scrollToEnd();
  return current;
}

function onDelta(frame) {
  const current = reply(frame.messageId);
  const seq = Number(frame.seq);
  // A frame we already have (after a worker crash the server re-sends its last one) changes nothing.
  if (current.finished || seq < current.nextSeq || current.early.has(seq)) return;
  current.early.set(seq, String(frame.text));
  let added = "";
  while (current.early.has(current.nextSeq)) {
    added += current.early.get(current.nextSeq);
    current.early.delete(current.nextSeq);
    current.nextSeq += 1;
  }
  if (added) {
    current.text += added;
    current.textEl.textContent = current.text;
    scrollToEnd();
  }
}

function onTool(frame) {
  const current = reply(frame.messageId);
  let entry = current.tools.querySelector(`li[data-tool="${CSS.escape(String(frame.name))}"][data-status="started"]`);
  if (!entry || frame.status === "started") {
    entry = element("li");
    entry.dataset.tool = String(frame.name);
    current.tools.append(entry);
  }
  entry.dataset.status = String(frame.status);
  const label = { started: "running…", done: "done", failed: "failed" }[frame.status] || String(frame.status);
  entry.textContent = `Tool ${frame.name}: ${label}`;
}

function finish(messageId, outcome, note) {
  const current = reply(messageId);
  if (current.finished) return;
  current.finished = true;
  // Frames held behind a gap that will never fill (sent while we were reconnecting): show them anyway.
  if (current.early.size) {
    const seqs = [...current.early.keys()].sort((a, b) => a - b);
    current.text += seqs.map((seq) => current.early.get(seq)).join("");
    current.textEl.textContent = current.text;
    current.early.clear();
    note = `${note ? note + " · " : ""}part of this reply was missed while reconnecting`;
  }
  current.item.dataset.state = outcome;
  current.item.removeAttribute("aria-busy");
  current.meta.textContent = note || "";
  state.unaccepted.delete(messageId);
  if (state.inFlight === messageId) {
    state.inFlight = null;
    ui.stop.textContent = "Stop";
    updateControls();
  }
}

function showError(frame) {
  const item = element("li", "message error");
  item.setAttribute("role", "alert");
  item.dataset.code = String(frame.code);
  item.textContent = `Error (${frame.code}): ${frame.message}`;
  ui.messages.append(item);
  scrollToEnd();
}

// --- Conversations --------------------------------------------------------------------------------------------

function renderConversations(items) {
  ui.conversations.replaceChildren(
    ...items.map((item) => {
      const li = element("li");
      const button = element("button", "conversation");
      button.type = "button";
      button.dataset.conversationId = item.conversationId;
      button.setAttribute("aria-current", String(item.conversationId === state.conversationId));
      button.append(
        element("span", "title", item.title || "Untitled"),
        element("span", "updated", item.updatedAt ? new Date(item.updatedAt).toLocaleString() : ""),
      );
      button.addEventListener("click", () => send({ action: "getHistory", conversationId: item.conversationId }));
      li.append(button);
      return li;
    }),
  );
}

function markCurrentConversation() {
  for (const button of ui.conversations.querySelectorAll("button.conversation")) {
    button.setAttribute("aria-current", String(button.dataset.conversationId === state.conversationId));
  }
}

function renderHistory(frame) {
  state.conversationId = frame.conversationId;
  ui.messages.replaceChildren();
  for (const message of frame.messages) {
    if (message.role === "user") {
      addUserMessage(message.text, message.messageId);
    } else {
      const item = element("li", "message assistant");
      item.dataset.state = "done";
      if (message.messageId) item.dataset.messageId = message.messageId;
      item.append(element("span", "role", "Assistant"), element("div", "text", message.text));
      ui.messages.append(item);
    }
  }
  markCurrentConversation();
  scrollToEnd();
}

// --- Frames ---------------------------------------------------------------------------------------------------

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
      if (current.own) {
        state.conversationId = frame.conversationId;
        markCurrentConversation();
      }
      break;
    }
    case "delta":
      onDelta(frame);
      break;
    case "tool":
      onTool(frame);
      break;
    case "done": {
      const usage = frame.usage || {};
      const model = frame.model ? ` · ${frame.model}` : "";
      finish(frame.messageId, "done", `${usage.inputTokens ?? 0} in / ${usage.outputTokens ?? 0} out tokens${model}`);
      if (reply(frame.messageId).own) send({ action: "listConversations" });
      break;
    }
    case "cancelled":
      finish(frame.messageId, "cancelled", "Stopped");
      break;
    case "error": {
      showError(frame);
      // An error without an id answers a sendMessage the server could not read: the one still unaccepted.
      const target = frame.messageId || (state.inFlight && state.unaccepted.has(state.inFlight) ? state.inFlight : null);
      if (target && (state.replies.has(target) || target === state.inFlight)) {
        finish(target, "failed", `Failed: ${frame.message}`);
      }
      break;
    }
    case "conversation":
      state.conversationId = frame.conversationId;
      ui.messages.replaceChildren();
      send({ action: "listConversations" });
      break;
    case "conversations":
      renderConversations(frame.items || []);
      break;
    case "history":
      renderHistory(frame);
      break;
    case "pong":
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

function sendMessage() {
  const text = ui.message.value;
  if (!text.trim() || state.inFlight) return;
  const messageId = newMessageId();
  const frame = { action: "sendMessage", message: text, messageId };
  if (state.conversationId) frame.conversationId = state.conversationId;
  if (!send(frame)) return;
  state.unaccepted.set(messageId, frame);
  state.inFlight = messageId;
  ui.message.value = "";
  addUserMessage(text, messageId);
  const current = reply(messageId, true);
  current.item.setAttribute("aria-busy", "true");
  updateControls();
}

function stopReply() {
  if (!state.inFlight) return;
  if (send({ action: "cancel", messageId: state.inFlight })) {
    ui.stop.disabled = true;
    ui.stop.textContent = "Stopping…";
  }
}

function signOut(message) {
  state.signedIn = false;
  state.auth = null;
  clearTimeout(state.retryTimer);
  clearInterval(state.keepaliveTimer);
  const ws = state.ws;
  state.ws = null;
  state.connected = false;
  if (ws) ws.close(1000, "signed out");
  state.replies.clear();
  state.unaccepted.clear();
  state.inFlight = null;
  state.conversationId = null;
  ui.messages.replaceChildren();
  ui.conversations.replaceChildren();
  ui.chatView.hidden = true;
  ui.signOut.hidden = true;
  ui.signInView.hidden = false;
  ui.signInError.textContent = message || "";
  setStatus("Signed out", "signed-out");
  updateControls();
}

async function onSignIn(event) {
  event.preventDefault();
  ui.signIn.disabled = true;
  ui.signInError.textContent = "";
  setStatus("Signing in…", "connecting");
  try {
    await initiateAuth("USER_PASSWORD_AUTH", { USERNAME: ui.username.value, PASSWORD: ui.password.value });
  } catch (error) {
    ui.signInError.textContent = error.message;
    setStatus("Signed out", "signed-out");
    return;
  } finally {
    ui.signIn.disabled = false;
  }
  ui.password.value = "";
  state.signedIn = true;
  state.attempt = 0;
  state.failedOpens = 0;
  ui.signInView.hidden = true;
  ui.chatView.hidden = false;
  ui.signOut.hidden = false;
  ui.message.focus();
  connect();
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
  ui.signIn.disabled = false;
  setStatus("Signed out", "signed-out");
}

ui.signInForm.addEventListener("submit", onSignIn);
ui.signOut.addEventListener("click", () => signOut());
ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendMessage();
});
ui.message.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendMessage();
  }
});
ui.stop.addEventListener("click", stopReply);
ui.newConversation.addEventListener("click", () => send({ action: "newConversation" }));
updateControls();
start();
