"""The reply state machine against scripted model event streams: resume arithmetic, failures, cancel."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from assistant.errors import ModelFailed, ModelIncomplete, ModelUnavailable
from assistant.model_events import (
    ModelEvent,
    ReplyCompleted,
    ResponseStarted,
    ResponseUsage,
    RoundRestarted,
    TextDelta,
    ToolEvent,
    ToolExchange,
    UsageSink,
)
from assistant.push import Broadcaster
from assistant.queue import QueuedMessage
from assistant.reply import DeliveryResult, ReplyHandedBack, ReplyLimits, ReplyService
from assistant.stores.connections import ConnectionStore
from assistant.stores.conversations import ConversationStore
from assistant.stores.messages import (
    MessageRecord,
    MessageStatus,
    MessageStore,
)
from assistant.stores.timestamps import iso_utc
from assistant.stores.turns import MAX_EXCHANGE_BYTES, MAX_TOOL_OUTPUT_BYTES, Turn, TurnStatus, TurnStore
from assistant.stores.usage import Quotas, UsageStore
from tests.frames import assemble
from tests.replies import replaced

USER = "alice"


class RecordingClient:
    """Stands in for the management API client: keeps what each connection was sent."""

    def __init__(self) -> None:
        self.posted: dict[str, list[dict[str, Any]]] = {}

    def post_to_connection(self, *, ConnectionId: str, Data: bytes | str) -> None:
        self.posted.setdefault(ConnectionId, []).append(json.loads(Data))


@dataclass
class ScriptedModel:
    """A model client whose replies are scripted event lists; records how it was called."""

    stream: list[ModelEvent | Exception] = field(default_factory=list)
    resume: list[ModelEvent | Exception] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    resumable: bool = True
    model: str = "scripted-model"
    budget_chars: int = 100_000
    #: The earlier turns each ``stream_reply`` was given.
    histories: list[list[tuple[str, str]]] = field(default_factory=list)

    def history_budget_chars(self, text: str) -> int:
        return max(0, self.budget_chars - len(text))

    def stream_reply(self, *, history: Any = (), usage_sink: UsageSink | None = None, **_: Any) -> Iterator[ModelEvent]:
        self.calls.append("stream_reply")
        self.histories.append(list(history))
        return self._play(self.stream, usage_sink)

    def resume_reply(self, *, response_id: str, usage_sink: UsageSink | None = None, **_: Any) -> Iterator[ModelEvent]:
        self.calls.append(f"resume_reply:{response_id}")
        return self._play(self.resume, usage_sink)

    @staticmethod
    def _play(script: list[ModelEvent | Exception], usage_sink: UsageSink | None) -> Iterator[ModelEvent]:
        for item in script:
            if isinstance(item, Exception):
                raise item
            if isinstance(item, ReplyCompleted) and usage_sink is not None:
                # As the real client does: a response's usage is reported when it ends, before the reply completes.
                usage_sink(ResponseUsage(item.response_id, item.input_tokens, item.output_tokens))
            yield item


@dataclass
class Harness:
    service: ReplyService
    model: ScriptedModel
    client: RecordingClient
    messages: MessageStore
    conversations: ConversationStore

    def queue(self, text: str = "hello") -> QueuedMessage:
        conversation = self.conversations.current(USER, now=1_000.0)
        record, _ = self.messages.create(USER, f"m{len(self.model.calls)}x", conversation.conversation_id, now=1_000.0)
        return QueuedMessage(
            user_id=USER,
            message_id=record.message_id,
            conversation_id=record.conversation_id,
            text=text,
            connection_id="conn-1",
            received_at=1_000.0,
        )

    def frames(self) -> list[dict[str, Any]]:
        return self.client.posted.get("conn-1", [])


@pytest.fixture
def harness(ddb_table: Any) -> Harness:
    connections = ConnectionStore(ddb_table)
    connections.add(USER, "conn-1", now=time.time())
    client = RecordingClient()
    model = ScriptedModel()
    messages, conversations = MessageStore(ddb_table), ConversationStore(ddb_table)
    service = ReplyService(
        messages=messages,
        conversations=conversations,
        turns=TurnStore(ddb_table),
        usage=UsageStore(ddb_table),
        broadcaster=Broadcaster(client, connections, cache_seconds=0),
        model=lambda: model,  # type: ignore[arg-type, return-value]
        limits=ReplyLimits(
            quotas=Quotas(messages=10, input_tokens=1_000_000, output_tokens=10_000),
            flush_interval_s=0,
            flush_max_interval_s=0,
            flush_chars=2_000,
            max_receive_count=3,
        ),
        clock=lambda: 1_001.0,
    )
    return Harness(service, model, client, messages, conversations)


def _turns(ddb_table: Any, queued: QueuedMessage) -> list[Turn]:
    """The conversation's turns, oldest first."""
    return TurnStore(ddb_table).page(USER, queued.conversation_id, limit=200)[0]


def _text(frames: list[dict[str, Any]]) -> str:
    deltas = [f for f in frames if f["type"] == "delta"]
    return assemble(frames, deltas[0]["messageId"]) if deltas else ""


def test_resume_resends_from_the_last_checkpoint_and_finishes_the_round(harness: Harness) -> None:
    queued = harness.queue()
    crash = RuntimeError("worker killed")
    harness.model.stream = [ResponseStarted("resp_1"), TextDelta("Hello, "), TextDelta("wor"), crash]
    with pytest.raises(RuntimeError):
        harness.service.handle(queued, attempt=1)
    assert _text(harness.frames()) == "Hello, wor"

    harness.model.resume = [
        ResponseStarted("resp_1"),
        TextDelta("Hello, world!"),
        ReplyCompleted("resp_1", input_tokens=5, output_tokens=4, model="m"),
    ]
    outcome = harness.service.handle(queued, attempt=2)

    assert outcome.result is DeliveryResult.DONE
    assert harness.model.calls[-1] == "resume_reply:resp_1"
    assert harness.model.calls.count("stream_reply") == 1  # the model was not asked again
    deltas = [(f["seq"], f["offset"], f["text"]) for f in harness.frames() if f["type"] == "delta"]
    # Within the first second of the round nothing but the round's start was checkpointed: the resumed delivery
    # re-sends the round from there, and a client placing frames by offset adds only "ld!".
    assert deltas == [(0, 0, "Hello, "), (1, 7, "wor"), (0, 0, "Hello, world!")]
    assert _text(harness.frames()) == "Hello, world!"
    assert harness.frames()[-1]["type"] == "done"


def test_resume_in_a_later_tool_round_does_not_repeat_the_earlier_rounds_text(harness: Harness) -> None:
    queued = harness.queue()
    harness.model.stream = [
        ResponseStarted("resp_1"),
        TextDelta("Let me check. "),
        ToolEvent("current_time", "started"),
        ToolEvent("current_time", "done"),
        ResponseStarted("resp_2"),
        RuntimeError("worker killed before any text of round 2"),
    ]
    with pytest.raises(RuntimeError):
        harness.service.handle(queued, attempt=1)
    record = harness.messages.get(USER, queued.message_id)
    assert record is not None
    assert (record.checkpoint.response_id, record.checkpoint.round_start) == ("resp_2", len("Let me check. "))

    harness.model.resume = [
        ResponseStarted("resp_2"),
        TextDelta("It is noon."),
        ReplyCompleted("resp_2", input_tokens=9, output_tokens=7, model="m"),
    ]
    assert harness.service.handle(queued, attempt=2).result is DeliveryResult.DONE
    assert _text(harness.frames()) == "Let me check. It is noon."
    assert [f["seq"] for f in harness.frames() if f["type"] == "delta"] == [0, 1]


def test_an_incomplete_reply_ends_in_an_error_frame_without_a_retry(harness: Harness) -> None:
    queued = harness.queue()
    harness.model.stream = [
        ResponseStarted("resp_1"),
        TextDelta("Partial"),
        ModelIncomplete("The reply hit the output limit.", reason="max_output_tokens"),
    ]
    outcome = harness.service.handle(queued, attempt=1)
    assert outcome.result is DeliveryResult.FAILED
    assert harness.frames()[-1] == {
        "type": "error",
        "messageId": queued.message_id,
        "code": "model_unavailable",
        "message": "The reply hit the output limit.",
    }
    record = harness.messages.get(USER, queued.message_id)
    assert record is not None
    assert record.status is MessageStatus.FAILED


def test_a_transient_failure_is_retried_silently_until_the_last_attempt(harness: Harness) -> None:
    queued = harness.queue()
    harness.model.stream = [ModelUnavailable("The model is busy.")]
    with pytest.raises(ModelUnavailable):
        harness.service.handle(queued, attempt=1)
    assert harness.frames() == []
    with pytest.raises(ModelUnavailable):
        harness.service.handle(queued, attempt=3)
    assert [f["type"] for f in harness.frames()] == ["error"]
    # and a later redelivery (from the dead-letter queue redrive, say) answers nothing twice
    assert harness.service.handle(queued, attempt=4).result is DeliveryResult.DUPLICATE
    assert len(harness.frames()) == 1


def test_a_cancel_between_rounds_stops_before_the_next_round_streams(harness: Harness) -> None:
    queued = harness.queue()

    def script() -> Iterator[ModelEvent]:
        yield ResponseStarted("resp_1")
        yield ToolEvent("calculate", "started")
        harness.messages.request_cancel(USER, queued.message_id)  # the user presses Stop during the tool call
        yield ToolEvent("calculate", "done")
        yield ResponseStarted("resp_2")
        yield TextDelta("never shown")

    harness.model.stream_reply = lambda **_: script()  # type: ignore[method-assign]
    assert harness.service.handle(queued, attempt=1).result is DeliveryResult.CANCELLED
    assert [f["type"] for f in harness.frames()] == ["tool", "tool", "cancelled"]


# --- Two deliveries of one queued message ---------------------------------------------------------------------
#
# What moto cannot catch: moto applies a transaction's condition checks and writes under no lock, so two threads can
# both pass ``#status = :queued`` before either writes, which DynamoDB never allows (it serializes conditional
# writes on an item). So the race is interleaved by hand: both deliveries *read* ``queued`` (the race that matters),
# then claim one after the other, as DynamoDB would order them; the claim's condition must make the second a no-op.


def _rebuilt(
    harness: Harness, *, messages: MessageStore | None = None, clock: Callable[[], float] | None = None
) -> ReplyService:
    """The harness's service with another message store (a second worker's view) or clock."""
    return replaced(harness.service, messages=messages or harness.messages, clock=clock or harness.service._clock)


def _completed(text: str = "Hi there.") -> list[ModelEvent | Exception]:
    return [
        ResponseStarted("resp_1"),
        TextDelta(text),
        ReplyCompleted("resp_1", input_tokens=3, output_tokens=2, model="m"),
    ]


def test_a_second_delivery_of_an_answered_message_does_not_answer_again(harness: Harness, ddb_table: Any) -> None:
    """SQS delivers the message twice; the first delivery claims and answers; the second's claim must fail.

    The worker claims without reading the record, expecting it ``queued`` (as the queue message describes it), so
    the claim's condition is all that stands between a redelivery and a second answer. Without it the second
    delivery would move the ``done`` message back to ``streaming``, count it again and ask the model for a second
    turn.
    """
    queued = harness.queue()
    harness.model.stream = _completed()

    first = harness.service.handle(queued, attempt=1)
    harness.model.stream = _completed("A second answer.")
    second = harness.service.handle(queued, attempt=1)

    assert (first.result, second.result) == (DeliveryResult.DONE, DeliveryResult.DUPLICATE)
    assert harness.model.calls.count("stream_reply") == 1
    assert [f["type"] for f in harness.frames()].count("done") == 1
    assert _text(harness.frames()) == "Hi there."
    usage = UsageStore(ddb_table).today(USER, now=1_001.0)
    assert (usage.messages, usage.output_tokens) == (1, 2)
    record = harness.messages.get(USER, queued.message_id)
    assert record is not None
    assert record.status is MessageStatus.DONE


def test_a_record_older_than_its_queue_message_is_claimed_as_found(harness: Harness, ddb_table: Any) -> None:
    """A client's retry re-enqueues a record written earlier (its first enqueue failed): the queue message then
    carries a later time than the record's. The claim expecting the later time fails and returns the real record,
    which is claimed in turn: answered once, with the turn filed under the record's own time."""
    queued = harness.queue()
    retried = queued.model_copy(update={"received_at": queued.received_at + 90})
    harness.model.stream = _completed()

    outcome = harness.service.handle(retried, attempt=1)

    assert outcome.result is DeliveryResult.DONE
    assert harness.model.calls.count("stream_reply") == 1
    turns = _turns(ddb_table, queued)
    assert [turn.created_at for turn in turns] == [iso_utc(queued.received_at)]


class _Clock:
    """The service's clock, moved by the scripted model so a deadline can pass in the middle of a reply."""

    def __init__(self) -> None:
        self.now = 1_001.0

    def __call__(self) -> float:
        return self.now


def _slow_reply(clock: _Clock) -> Iterator[ModelEvent]:
    """A reply whose second delta arrives a minute after the first: long after the deadline below."""
    yield ResponseStarted("resp_1")
    yield TextDelta("Hello, ")
    clock.now += 60
    yield TextDelta("world")
    yield ReplyCompleted("resp_1", input_tokens=3, output_tokens=2, model="m")


@pytest.mark.parametrize("resumable", [True, False])
def test_a_reply_near_the_workers_timeout_is_handed_back_or_failed_cleanly(harness: Harness, resumable: bool) -> None:
    harness.model.resumable = resumable
    queued = harness.queue()
    clock = _Clock()
    service = _rebuilt(harness, clock=clock)
    harness.model.stream_reply = lambda **_: _slow_reply(clock)  # type: ignore[method-assign]

    if resumable:
        # Handed back: the record stays streaming with its checkpoint, for the next delivery to resume.
        with pytest.raises(ReplyHandedBack):
            service.handle(queued, attempt=1, deadline=1_030.0)
        record = harness.messages.get(USER, queued.message_id)
        assert record is not None
        assert record.status is MessageStatus.STREAMING
        assert record.checkpoint.response_id == "resp_1"
        assert record.checkpoint.seq == 0
    else:
        # The response stopped with its stream, so nothing could resume it: fail now, with an error frame.
        outcome = service.handle(queued, attempt=1, deadline=1_030.0)
        assert outcome.result is DeliveryResult.FAILED
        assert harness.frames()[-1]["type"] == "error"


def test_on_the_last_attempt_the_deadline_fails_the_reply_with_an_error_frame(harness: Harness) -> None:
    queued = harness.queue()
    clock = _Clock()
    service = _rebuilt(harness, clock=clock)
    harness.model.stream_reply = lambda **_: _slow_reply(clock)  # type: ignore[method-assign]
    outcome = service.handle(queued, attempt=3, deadline=1_030.0)
    assert outcome.result is DeliveryResult.FAILED
    assert harness.frames()[-1]["type"] == "error"
    record = harness.messages.get(USER, queued.message_id)
    assert record is not None
    assert record.status is MessageStatus.FAILED


def test_a_stream_ended_by_a_cancel_is_a_cancel_not_a_failure(harness: Harness) -> None:
    """The cancel route stops the model response while the model is silent; its stream then ends in an error."""
    queued = harness.queue()

    def cancelled_meanwhile() -> Iterator[ModelEvent]:
        yield ResponseStarted("resp_1")
        assert harness.messages.request_cancel(USER, queued.message_id) is not None
        raise ModelFailed("The model response was cancelled.")

    harness.model.stream_reply = lambda **_: cancelled_meanwhile()  # type: ignore[method-assign]

    outcome = harness.service.handle(queued, attempt=1)

    assert outcome.result is DeliveryResult.CANCELLED
    assert harness.frames()[-1]["type"] == "cancelled"


def test_a_stopped_reply_is_recorded_under_the_model_that_wrote_it(harness: Harness, ddb_table: Any) -> None:
    """The model that answers may not be the one asked for (the offline model, a provider's alias): a reply stopped
    before it completed keeps the name the server gave when the response started, as `done` would have."""
    queued = harness.queue()

    def stopped_mid_reply() -> Iterator[ModelEvent]:
        yield ResponseStarted("resp_1", model="offline-demo")
        yield TextDelta("Once upon a time")
        assert harness.messages.request_cancel(USER, queued.message_id) is not None
        raise ModelFailed("The model response was cancelled.")

    harness.model.stream_reply = lambda **_: stopped_mid_reply()  # type: ignore[method-assign]

    assert harness.service.handle(queued, attempt=1).result is DeliveryResult.CANCELLED
    [turn] = _turns(ddb_table, queued)
    assert turn.status is TurnStatus.CANCELLED
    assert turn.model == "offline-demo", "not the model that was asked for (scripted-model)"


def test_a_redelivery_after_a_cancel_starts_no_new_turn(harness: Harness) -> None:
    queued = harness.queue()
    harness.model.stream = [ResponseStarted("resp_1"), TextDelta("Hel"), RuntimeError("worker killed")]
    with pytest.raises(RuntimeError):
        harness.service.handle(queued, attempt=1)
    assert harness.messages.request_cancel(USER, queued.message_id) is not None  # Stop while the worker was dead

    outcome = harness.service.handle(queued, attempt=2)

    assert outcome.result is DeliveryResult.CANCELLED
    assert harness.model.calls == ["stream_reply"]  # no resume, no new response
    assert harness.frames()[-1]["type"] == "cancelled"


class _CountingStore(MessageStore):
    def __init__(self, table: Any) -> None:
        super().__init__(table)
        self.writes: list[str] = []

    def checkpoint_frame(self, record: MessageRecord, *, seq: int, frame_start: int, frame_end: int) -> bool:
        self.writes.append(f"frame {seq}")
        return super().checkpoint_frame(record, seq=seq, frame_start=frame_start, frame_end=frame_end)


def test_checkpoints_are_written_about_once_a_second_not_once_a_frame(harness: Harness, ddb_table: Any) -> None:
    clock = _Clock()
    counting = _CountingStore(ddb_table)
    service = _rebuilt(harness, messages=counting, clock=clock)
    queued = harness.queue()

    def steady() -> Iterator[ModelEvent]:
        yield ResponseStarted("resp_1")
        for i in range(40):  # ten seconds of text, a frame every quarter of a second
            yield TextDelta(f"word{i} ")
            clock.now += 0.25
        yield ReplyCompleted("resp_1", input_tokens=3, output_tokens=40, model="m")

    harness.model.stream_reply = lambda **_: steady()  # type: ignore[method-assign]
    outcome = service.handle(queued, attempt=1)

    assert outcome.result is DeliveryResult.DONE
    assert outcome.frames == 40
    # About one a second over ten seconds (the round's start is a write too, not counted here), and none for the
    # last frames before `done`: the finish records the reply.
    assert 9 <= len(counting.writes) <= 10
    assert counting.writes[-1] != "frame 39"
    assert _text(harness.frames()) == "".join(f"word{i} " for i in range(40))


# --- A round asked again, a resumed round streamed again ---------------------------------------------------------


def _turn_texts(ddb_table: Any, queued: QueuedMessage) -> list[str]:
    return [t.assistant_text for t in _turns(ddb_table, queued)]


def test_a_round_asked_again_resets_the_text_and_the_user_gets_one_answer(harness: Harness, ddb_table: Any) -> None:
    queued = harness.queue()
    harness.model.stream = [
        ResponseStarted("resp_1"),
        TextDelta("Let me check. "),
        ToolEvent("current_time", "started"),
        ToolEvent("current_time", "done"),
        ResponseStarted("resp_2"),
        TextDelta("It is"),
        TextDelta(" half"),
        RoundRestarted(),  # the stream of resp_2 dropped; the round is asked again
        ResponseStarted("resp_3"),
        TextDelta("It is "),
        TextDelta("noon."),
        ReplyCompleted("resp_3", input_tokens=9, output_tokens=7, model="m"),
    ]

    outcome = harness.service.handle(queued, attempt=1)

    assert outcome.result is DeliveryResult.DONE
    frames = harness.frames()
    [reset] = [f for f in frames if f["type"] == "reset"]
    # Only the dropped round's text is void: the first round's stays.
    assert reset == {"type": "reset", "messageId": queued.message_id, "offset": len("Let me check. ")}
    after = frames[frames.index(reset) + 1 :]
    assert [(f["seq"], f["offset"]) for f in after if f["type"] == "delta"] == [(0, 14), (1, 20)]
    assert _text(frames) == "Let me check. It is noon."
    assert _turn_texts(ddb_table, queued) == ["Let me check. It is noon."]  # one turn, one answer
    assert harness.model.calls == ["stream_reply"]


def test_a_resumed_round_that_streams_again_posts_only_from_the_last_checkpoint(
    harness: Harness, ddb_table: Any
) -> None:
    clock = _Clock()
    service = _rebuilt(harness, clock=clock)
    queued = harness.queue()

    def dies_after_two_seconds() -> Iterator[ModelEvent]:
        yield ResponseStarted("resp_1")
        for word in ("One ", "two ", "three "):
            yield TextDelta(word)
            clock.now += 1.1  # each frame is checkpointed
        raise RuntimeError("worker killed")

    harness.model.stream_reply = lambda **_: dies_after_two_seconds()  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        service.handle(queued, attempt=1)
    record = harness.messages.get(USER, queued.message_id)
    assert record is not None
    assert (record.checkpoint.seq, record.checkpoint.frame_start, record.checkpoint.frame_end) == (2, 8, 14)

    # The model re-streams the round from its start, in other pieces than the first time.
    harness.model.resume = [
        ResponseStarted("resp_1"),
        TextDelta("One two"),
        TextDelta(" thr"),
        TextDelta("ee four "),
        TextDelta("five."),
        ReplyCompleted("resp_1", input_tokens=5, output_tokens=5, model="m"),
    ]
    assert service.handle(queued, attempt=2).result is DeliveryResult.DONE

    resumed = [(f["seq"], f["offset"], f["text"]) for f in harness.frames() if f["type"] == "delta"][3:]
    # The last checkpointed frame again (it may never have been posted), then only what is new.
    assert resumed[0] == (2, 8, "three ")
    assert "".join(text for _, _, text in resumed[1:]) == "four five."
    assert _text(harness.frames()) == "One two three four five."
    assert _turn_texts(ddb_table, queued) == ["One two three four five."]


def test_a_conversation_longer_than_the_budget_is_still_answered_with_its_newest_turns(harness: Harness) -> None:
    harness.model.budget_chars = 1_000
    for i in range(6):  # six turns of 300 characters each (100 asked, 200 answered): 1800 in all
        queued = harness.queue(f"question {i} ".ljust(100, "?"))
        harness.model.stream = _completed(f"answer {i} ".ljust(200, "!"))
        assert harness.service.handle(queued, attempt=1).result is DeliveryResult.DONE

    last = harness.queue("and now?")
    harness.model.stream = _completed("Here you are.")
    assert harness.service.handle(last, attempt=1).result is DeliveryResult.DONE

    sent = harness.model.histories[-1]
    # The newest three turns fit (900 characters of 992); the oldest three are left out, never half a turn.
    assert [text.split()[1] for _, text in sent] == ["3", "3", "4", "4", "5", "5"]
    assert [role for role, _ in sent] == ["user", "assistant"] * 3


# --- Tool exchanges kept with the turn ---------------------------------------------------------------------------


def test_a_turns_tool_calls_and_outputs_go_to_the_model_with_the_next_message(harness: Harness, ddb_table: Any) -> None:
    first = harness.queue("what is 2+3*4?")
    harness.model.stream = [
        ResponseStarted("resp_1"),
        ToolEvent("calculate", "started"),
        ToolEvent("calculate", "done"),
        ToolExchange("call_1", "calculate", '{"expression": "2+3*4"}', "14"),
        ResponseStarted("resp_2"),
        TextDelta("It is 14."),
        ReplyCompleted("resp_2", input_tokens=9, output_tokens=4, model="m"),
    ]
    assert harness.service.handle(first, attempt=1).result is DeliveryResult.DONE
    [turn] = _turns(ddb_table, first)
    assert turn.exchanges == (ToolExchange("call_1", "calculate", '{"expression": "2+3*4"}', "14"),)
    # The frames a client sees are unchanged: tool activity by name and status.
    assert [f for f in harness.frames() if f["type"] == "tool"][-1] == {
        "type": "tool",
        "messageId": first.message_id,
        "name": "calculate",
        "status": "done",
    }

    second = harness.queue("and doubled?")
    harness.model.stream = _completed("28.")
    assert harness.service.handle(second, attempt=1).result is DeliveryResult.DONE

    assert harness.model.histories[-1] == [
        ("user", "what is 2+3*4?"),
        ToolExchange("call_1", "calculate", '{"expression": "2+3*4"}', "14"),
        ("assistant", "It is 14."),
    ]


def test_tool_exchanges_are_kept_within_the_item_budget_and_never_cut_in_half() -> None:
    big = "x" * (MAX_TOOL_OUTPUT_BYTES * 2)
    exchanges = tuple(ToolExchange(f"call_{i}", "lookup", "{}", big) for i in range(20))
    turn = Turn(
        conversation_id="c_1",
        message_id="m_1",
        created_at="2026-11-29T21:00:00.000Z",
        user_text="look everything up",
        assistant_text="Done.",
        status=TurnStatus.DONE,
        exchanges=(ToolExchange("call_args", "lookup", '{"q": "' + "y" * MAX_EXCHANGE_BYTES + '"}', "ok"), *exchanges),
    )

    item = turn.to_item(USER)

    # The first exchange's arguments alone are over the budget: it is left out whole, and so is what follows it,
    # rather than sending the model a call whose JSON was cut.
    assert "toolCalls" not in item
    kept = Turn.from_item(replace(turn, exchanges=exchanges).to_item(USER)).exchanges
    assert 0 < len(kept) < len(exchanges)
    assert [e.call_id for e in kept] == [f"call_{i}" for i in range(len(kept))]
    assert all(len(e.output.encode()) <= MAX_TOOL_OUTPUT_BYTES for e in kept)
    assert sum(len(e.output.encode()) + len(e.arguments) for e in kept) <= MAX_EXCHANGE_BYTES


class _ListingConnections(ConnectionStore):
    def __init__(self, table: Any) -> None:
        super().__init__(table)
        self.lists = 0

    def list_ids(self, user_id: str) -> list[str]:
        self.lists += 1
        return super().list_ids(user_id)


def test_the_tabs_are_listed_while_the_model_works_toward_its_first_token(harness: Harness, ddb_table: Any) -> None:
    connections = _ListingConnections(ddb_table)
    service = replaced(harness.service, broadcaster=Broadcaster(harness.client, connections, cache_seconds=2.0))
    queued = harness.queue()
    lists_when_text_came: list[int] = []

    def reply() -> Iterator[ModelEvent]:
        yield ResponseStarted("resp_1")
        lists_when_text_came.append(connections.lists)
        yield TextDelta("Hello.")
        yield ReplyCompleted("resp_1", input_tokens=3, output_tokens=2, model="m")

    harness.model.stream_reply = lambda **_: reply()  # type: ignore[method-assign]
    assert service.handle(queued, attempt=1).result is DeliveryResult.DONE

    # Read when the response started, before its first token; the text's frame and `done` used that list.
    assert lists_when_text_came == [1]
    assert connections.lists == 1
    assert _text(harness.frames()) == "Hello."
