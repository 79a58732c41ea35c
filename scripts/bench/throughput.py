"""N users x M messages at once through the local stack: rate, time to first text, and an exact delivery audit.

Each user opens one socket and sends its M messages back to back; all users start together. The rate is the
messages answered divided by the time from the first send to the last ``done``. The audit checks, per user, what
the protocol promises: every accepted ``messageId`` gets exactly one ``done``; its ``delta`` frames carry ``seq``
0, 1, 2, ... with no gap or repeat and add up to the reply's ``outputTokens``; and replies finish in the order the
messages were sent, one at a time (FIFO per user: no delta of a later reply before the earlier reply's ``done``).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scripts.bench.frames import reported_output_tokens
from scripts.bench.harness import ChatClient, Received, RunningStack, chat_client, new_users
from scripts.bench.markdown import markdown_table, ms, times
from scripts.bench.stats import Summary, ratio
from scripts.bench.streaming import SHORT_PROMPTS

if TYPE_CHECKING:
    from scripts.bench.report import Results


@dataclass(frozen=True)
class Audit:
    """What went wrong in delivery, counted over all users; every field must be 0."""

    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    incomplete: int = 0

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.reordered or self.incomplete)

    def __add__(self, other: Audit) -> Audit:
        return Audit(
            lost=self.lost + other.lost,
            duplicated=self.duplicated + other.duplicated,
            reordered=self.reordered + other.reordered,
            incomplete=self.incomplete + other.incomplete,
        )


def audit_user(sent_ids: list[str], received: list[Received]) -> Audit:
    """Check one user's frames (in arrival order) against the ids it sent (in send order)."""
    lost = duplicated = reordered = incomplete = 0
    done_order: list[str] = []
    finished: set[str] = set()
    for message_id in sent_ids:
        frames = [f.body for f in received if f.body.get("messageId") == message_id]
        accepted = sum(1 for b in frames if b.get("type") == "accepted")
        dones = [b for b in frames if b.get("type") == "done"]
        if accepted != 1 or not dones or any(b.get("type") in ("error", "cancelled") for b in frames):
            lost += 1
            continue
        duplicated += len(dones) - 1
        seqs = [int(b["seq"]) for b in frames if b.get("type") == "delta"]
        duplicated += len(seqs) - len(set(seqs))
        if seqs != list(range(len(seqs))) and sorted(set(seqs)) == list(range(len(set(seqs)))):
            reordered += 1  # all there, arrived out of order
        elif sorted(set(seqs)) != list(range(len(set(seqs)))):
            incomplete += 1  # a gap
        else:
            text = "".join(str(b["text"]) for b in frames if b.get("type") == "delta")
            if reported_output_tokens(text) != int(dones[0]["usage"]["outputTokens"]):
                incomplete += 1
    for frame in received:
        body = frame.body
        message_id = str(body.get("messageId"))
        if message_id not in sent_ids or body.get("type") == "accepted":
            continue
        if body.get("type") == "done":
            if message_id not in finished:
                done_order.append(message_id)
                finished.add(message_id)
        elif body.get("type") == "delta" and message_id in finished:
            reordered += 1  # text after its own done
        elif body.get("type") == "delta":
            # FIFO per user: a later reply must not stream before every earlier one is done.
            earlier = sent_ids[: sent_ids.index(message_id)]
            if any(e not in finished for e in earlier):
                reordered += 1
    expected_order = [m for m in sent_ids if m in finished]
    if done_order != expected_order:
        reordered += 1
    return Audit(lost=lost, duplicated=duplicated, reordered=reordered, incomplete=incomplete)


@dataclass(frozen=True)
class ThroughputRun:
    users: int
    messages_per_user: int
    poller_concurrency: int
    answered: int
    elapsed_s: float
    #: Send to first ``delta``, every message / only each user's first (the others queue behind it by design).
    first_text_s: tuple[float, ...]
    first_text_first_message_s: tuple[float, ...]
    audit: Audit
    timed_out: bool
    delta_frames: int = 0

    @property
    def frames_per_reply(self) -> float:
        return self.delta_frames / self.answered if self.answered else 0.0

    @property
    def messages_per_s(self) -> float:
        return self.answered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def first_text(self) -> Summary:
        return Summary.of(self.first_text_s)


_ACCEPT_TIMEOUT_S = 30.0


async def _send_all(client: ChatClient, user: int, messages: int, run_id: str) -> list[str]:
    """Send the user's messages, each after the previous one's ``accepted`` (milliseconds, long before any reply).

    API Gateway runs the route integrations of one connection concurrently, so messages sent back to back may be
    accepted, and therefore answered, in another order than sent; the protocol promises the accepted order.
    """
    ids = [f"{run_id}-u{user}-m{m}" for m in range(messages)]
    for m, message_id in enumerate(ids):
        await client.send_message(SHORT_PROMPTS[(user + m) % len(SHORT_PROMPTS)], message_id)
        await client.wait_accepted(message_id, _ACCEPT_TIMEOUT_S)
    return ids


async def run_throughput(stack: RunningStack, users: int, messages: int, *, timeout_s: float) -> ThroughputRun:
    """One load step: ``users`` fresh users, ``messages`` each, all at once; stops by itself after ``timeout_s``."""
    run_id = f"tp{users}x{messages}-{int(time.time() * 1000) % 10**8}"
    tokens = await new_users(stack.info, users, run_id)
    async with AsyncExitStack() as sockets:
        clients = [await sockets.enter_async_context(chat_client(stack.info, token)) for token in tokens]
        started = time.perf_counter()
        sent_ids = await asyncio.gather(*(_send_all(c, u, messages, run_id) for u, c in enumerate(clients)))
        waits = [
            c.wait_finished(message_id, max(0.0, started + timeout_s - time.perf_counter()))
            for c, ids in zip(clients, sent_ids, strict=True)
            for message_id in ids
        ]
        finished = await asyncio.gather(*waits)
        last_done = max(
            (f.at for c in clients for f in c.received if f.body.get("type") == "done"), default=time.perf_counter()
        )
        first_text: list[float] = []
        first_text_first: list[float] = []
        audit = Audit()
        delta_frames = sum(1 for c in clients for f in c.received if f.body.get("type") == "delta")
        for client, ids in zip(clients, sent_ids, strict=True):
            audit += audit_user(ids, list(client.received))
            for index, sent in enumerate(client.sent):
                delta = next((f.at for f in client.frames_for(sent.message_id) if f.body.get("type") == "delta"), None)
                if delta is None:
                    continue
                first_text.append(delta - sent.at)
                if index == 0:
                    first_text_first.append(delta - sent.at)
    answered = sum(1 for ok in finished if ok)
    return ThroughputRun(
        users=users,
        messages_per_user=messages,
        poller_concurrency=stack.settings.poller_concurrency,
        answered=answered,
        elapsed_s=last_done - started,
        first_text_s=tuple(first_text),
        first_text_first_message_s=tuple(first_text_first),
        audit=audit,
        timed_out=answered < users * messages,
        delta_frames=delta_frames,
    )


def throughput_section(results: Results) -> list[str]:
    runs = results.throughput
    base = next((r for r in runs if r.users == 1), runs[0])
    rows = []
    for run in runs:
        first = run.first_text()
        first_message = Summary.of(run.first_text_first_message_s) if run.first_text_first_message_s else first
        audit = run.audit
        rows.append(
            [
                f"{run.users} x {run.messages_per_user}",
                f"{run.answered}/{run.users * run.messages_per_user}",
                f"{run.messages_per_s:.2f}",
                times(ratio(run.messages_per_s, base.messages_per_s)),
                f"{ms(first_message.p50)} / {ms(first_message.p95)}",
                f"{ms(first.p50)} / {ms(first.p95)}",
                f"{run.frames_per_reply:.1f}",
                f"{audit.lost} / {audit.duplicated} / {audit.reordered} / {audit.incomplete}",
            ]
        )
    headers = [
        "users x messages",
        "answered",
        "messages/s",
        "÷ 1 user",
        "first text, 1st message p50 / p95",
        "first text, all p50 / p95",
        "frames / reply",
        "lost / dup / reordered / incomplete",
    ]
    pace = results.throughput_pace
    return [
        "## Throughput",
        "",
        f"All users send their messages at once (each waits only for `accepted` before its next one, so the send "
        f"order is the accepted order). Model pace here: first token after {pace.first_token_s:g} s, then "
        f"{pace.tokens_per_s:g} tokens/s, faster than the latency run so the steps measure the pipeline rather "
        f"than the model typing. Poller concurrency (`LocalStackSettings.poller_concurrency`, Lambda's concurrent "
        f"FIFO batches): **{base.poller_concurrency}**. A fresh stack per step. The audit checks, per user, one "
        "`done` per accepted `messageId`, `seq` 0..n without gap or repeat adding up to `outputTokens`, and "
        "replies in send order, one at a time.",
        "",
        markdown_table(headers, rows),
        "",
    ]
