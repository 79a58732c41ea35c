"""Chat with the deployed (or local) assistant from a terminal.

    python -m scripts.chat                                   # the local stack (.local/stack.json), demo user
    python -m scripts.chat --outputs-file cdk-outputs.json --stage dev --username alice

Three layers, so the part that can be wrong is testable without a terminal or a network:

- :class:`ChatSession` is the protocol: it builds client frames and turns server frames into :data:`ChatEvent` s,
  assembling each reply from its ``delta`` frames (by ``seq``, ignoring a frame it already has, holding back one
  that arrives early). No I/O.
- :class:`ChatClient` is the connection: it signs in through a :class:`TokenSource`, keeps one WebSocket open,
  reconnects with exponential backoff when it drops (signing in again when the server refuses the token) and feeds
  every frame to the session.
- :class:`TerminalChat` is the terminal: prompt, slash commands, streamed output, Ctrl-C.

The client needs no AWS credentials: Cognito's ``InitiateAuth`` is a public API, so it is called unsigned.

Modules: :mod:`~scripts.chat.events` (what the session reports), :mod:`~scripts.chat.session` (the protocol),
:mod:`~scripts.chat.signin` (Cognito sign-in), :mod:`~scripts.chat.client` (the connection),
:mod:`~scripts.chat.connection_info` (where to connect), :mod:`~scripts.chat.terminal` (the terminal, with
:mod:`~scripts.chat.console` reading lines and wrapping words, :mod:`~scripts.chat.limits` what a message may be and
:mod:`~scripts.chat.upload` the file POST of ``/attach``) and :mod:`~scripts.chat.cli` (the command line;
``__main__`` runs it). Everything public is re-exported here.
"""

from __future__ import annotations

from scripts.chat.cli import main, parse_args
from scripts.chat.client import AUTH_QUERY_PARAMETER, Backoff, ChatClient, with_auth
from scripts.chat.connection_info import (
    DEFAULT_STACK_FILE,
    ConnectionInfo,
    load_deployed_stage,
    load_outputs_file,
    load_stack_file,
    outputs_to_info,
    resolve_connection,
)
from scripts.chat.events import (
    ChatEvent,
    Connected,
    ConversationItem,
    ConversationList,
    ConversationStarted,
    Disconnected,
    Fatal,
    HistoryMessage,
    HistoryReceived,
    PongReceived,
    ProtocolProblem,
    ReplyAccepted,
    ReplyFinished,
    ReplyOutcome,
    ServerError,
    TextReceived,
    TextReset,
    ToolUpdate,
    Usage,
)
from scripts.chat.session import ChatSession, Reply, new_message_id
from scripts.chat.signin import AuthenticationFailed, CognitoSignIn, TokenSource
from scripts.chat.terminal import HELP, LineReader, TerminalChat

__all__ = [
    "AUTH_QUERY_PARAMETER",
    "DEFAULT_STACK_FILE",
    "HELP",
    "AuthenticationFailed",
    "Backoff",
    "ChatClient",
    "ChatEvent",
    "ChatSession",
    "CognitoSignIn",
    "Connected",
    "ConnectionInfo",
    "ConversationItem",
    "ConversationList",
    "ConversationStarted",
    "Disconnected",
    "Fatal",
    "HistoryMessage",
    "HistoryReceived",
    "LineReader",
    "PongReceived",
    "ProtocolProblem",
    "Reply",
    "ReplyAccepted",
    "ReplyFinished",
    "ReplyOutcome",
    "ServerError",
    "TerminalChat",
    "TextReceived",
    "TextReset",
    "TokenSource",
    "ToolUpdate",
    "Usage",
    "load_deployed_stage",
    "load_outputs_file",
    "load_stack_file",
    "main",
    "new_message_id",
    "outputs_to_info",
    "parse_args",
    "resolve_connection",
    "with_auth",
]
