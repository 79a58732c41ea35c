"""Try the assistant's definition (``shared/assistant/assistant.toml``) in the terminal, with no AWS at all.

    OPENAI_API_KEY=sk-... python -m scripts.try_assistant          # the configured model
    OPENAI_BASE_URL=http://127.0.0.1:8765/v1 python -m scripts.try_assistant
    python -m scripts.try_assistant --offline                     # the built-in offline model, in-process
    ASSISTANT_FILE=my-assistant.toml python -m scripts.try_assistant --offline   # another definition

It runs the same :class:`assistant.model.ModelClient` and tools the worker runs, in one conversation, so an edit to
the instructions or the tool list can be tried before deploying. The definition's MCP servers are called as the
worker calls them; a server's ``secret`` is read from ``MCP_SECRET_<NAME>`` (there is no Secrets Manager here).
``/new`` starts a new conversation, ``/quit`` (or Ctrl-D) leaves, Ctrl-C stops a reply.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

if TYPE_CHECKING:
    from assistant.definition import AssistantDefinition
    from assistant.model import ModelClient

#: The offline model ignores the key, but the SDK insists on one.
OFFLINE_API_KEY = "offline"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.try_assistant", description=__doc__.split("\n\n")[0])
    parser.add_argument("--offline", action="store_true", help="start the built-in offline model in this process")
    parser.add_argument(
        "--definition",
        type=Path,
        default=Path(os.environ["ASSISTANT_FILE"]) if os.environ.get("ASSISTANT_FILE") else None,
        help="another definition file (default: $ASSISTANT_FILE, else the packaged one)",
    )
    parser.add_argument("--model", help="override the definition's model (e.g. a cheaper one)")
    parser.add_argument("--user-id", default="try-assistant", help="the user id tools see (default: try-assistant)")
    parser.add_argument("-m", "--message", action="append", help="send this message (repeatable) instead of asking")
    return parser.parse_args(argv)


def build_client(
    definition: AssistantDefinition, *, api_key: str, base_url: str | None, model: str | None = None
) -> ModelClient:
    from assistant.model import ModelClient
    from assistant.tools.builtin import default_registry

    mcp_tools = None
    if definition.mcp_servers:
        from assistant.tools.mcp_tools import McpTools, env_secret

        mcp_tools = McpTools(definition.mcp_servers, secret=env_secret(os.environ))
    return ModelClient.create(
        api_key=api_key,
        base_url=base_url,
        definition=definition,
        tools=default_registry(),
        model_override=model,
        mcp_tools=mcp_tools,
    )


class AssistantTrial:
    """One conversation with the model; prints replies as they stream."""

    def __init__(self, client: ModelClient, *, user_id: str, out: TextIO = sys.stdout) -> None:
        self.client = client
        self.user_id = user_id
        self.out = out
        self.conversation_id: str | None = None
        #: The conversation is ours, as in the worker: every message is sent with the turns before it.
        self.history: list[tuple[Literal["user", "assistant"], str]] = []

    def new_conversation(self) -> str:
        self.conversation_id = f"try-{uuid.uuid4().hex[:12]}"
        self.history = []
        return self.conversation_id

    def ask(self, text: str) -> str:
        """Send one message, print the reply as it streams, return the reply's text."""
        from assistant.model_events import ReplyCompleted, TextDelta, ToolEvent
        from assistant.tools.registry import ToolContext

        conversation_id = self.conversation_id or self.new_conversation()
        context = ToolContext(user_id=self.user_id, conversation_id=conversation_id)
        parts: list[str] = []
        at_line_start = True
        self._write("assistant> ")
        events: Iterator[object] = self.client.stream_reply(text=text, history=self.history, context=context)
        try:
            for event in events:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    self._write(event.text)
                    at_line_start = event.text.endswith("\n")
                elif isinstance(event, ToolEvent):
                    self._write(("" if at_line_start else "\n") + f"  [tool {event.name}: {event.status}]\n")
                    at_line_start = True
                elif isinstance(event, ReplyCompleted):
                    self._write(
                        ("" if at_line_start else "\n")
                        + f"  [{event.input_tokens} in / {event.output_tokens} out tokens, {event.model}]\n"
                    )
                    at_line_start = True
        except KeyboardInterrupt:
            # Closing the generator closes the HTTP stream: the model stops producing (and billing) the reply.
            with contextlib.suppress(Exception):
                close = getattr(events, "close", None)
                if close is not None:
                    close()
            self._write(("" if at_line_start else "\n") + "  [stopped]\n")
        reply = "".join(parts)
        self.history += [("user", text), ("assistant", reply)]
        return reply

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()


def _lines(messages: list[str] | None) -> Iterator[str]:
    if messages:
        for message in messages:
            print(f"you> {message}")
            yield message
        return
    while True:
        try:
            yield input("you> ")
        except EOFError:
            return


def run(trial: AssistantTrial, messages: list[str] | None) -> int:
    from assistant.errors import AssistantError

    lines = _lines(messages)
    while True:
        try:
            line = next(lines, None)
        except KeyboardInterrupt:  # Ctrl-C at the prompt leaves
            trial.out.write("\n")
            return 0
        if line is None:
            return 0
        line = line.strip()
        if not line:
            continue
        if line in {"/quit", "/exit"}:
            return 0
        try:
            if line == "/new":
                trial.out.write(f"New conversation {trial.new_conversation()}.\n")
                continue
            trial.ask(line)
        except AssistantError as exc:
            trial.out.write(f"\nerror ({exc.code.value}): {exc.public_message}\n")
            if messages:
                return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from assistant.definition import DefinitionError, load_definition

    try:
        definition = load_definition(args.definition)
    except DefinitionError as exc:
        print(exc, file=sys.stderr)
        return 2
    base_url: str | None
    with contextlib.ExitStack() as stack:
        if args.offline:
            from scripts.local_stack.offline_model import OfflineModelServer

            server = stack.enter_context(OfflineModelServer())
            api_key, base_url = OFFLINE_API_KEY, server.base_url
        else:
            base_url = os.environ.get("OPENAI_BASE_URL") or None
            api_key = os.environ.get("OPENAI_API_KEY") or (OFFLINE_API_KEY if base_url else "")
            if not api_key:
                print("Set OPENAI_API_KEY (or OPENAI_BASE_URL), or pass --offline.", file=sys.stderr)
                return 2
        client = build_client(definition, api_key=api_key, base_url=base_url, model=args.model)
        where = "the offline model" if args.offline else (base_url or "OpenAI")
        print(f"{definition.name} — {client.model} via {where}. /new, /quit; Ctrl-C stops a reply.")
        return run(AssistantTrial(client, user_id=args.user_id), args.message)


if __name__ == "__main__":
    sys.exit(main())
