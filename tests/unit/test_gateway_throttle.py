"""The local gateway applies the stage's API Gateway throttles: token buckets shared by every user, a pool for the
stage and one for each route with settings of its own; a throttled `$connect` is a 429, a throttled frame gets
API Gateway's error frame and the connection stays open."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from websockets.exceptions import InvalidStatus

from assistant.stage_throttles import StageThrottles, Throttle
from scripts.local_stack.gateway.server import Gateway
from scripts.local_stack.gateway.throttle import TOO_MANY_REQUESTS, StageThrottle, TokenBucket
from scripts.local_stack.lambda_runtime.threads import LambdaRuntime
from tests.unit.test_gateway import FakeHandlers, _open, _reply

#: Slow enough to refill nothing during a test: a pool holds exactly its burst.
SLOW = 0.001


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_its_burst_through_then_refills_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(Throttle(rate_limit=2.0, burst_limit=3), clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now = 0.4  # 0.8 of a token
    assert not bucket.take()
    clock.now = 0.5  # one token
    assert bucket.take()
    assert not bucket.take()
    clock.now = 100.0  # never more than the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_routes_with_settings_have_pools_of_their_own_and_the_rest_share_the_stage_pool() -> None:
    clock = FakeClock()
    throttles = StageThrottles(
        stage=Throttle(SLOW, 2), routes=(("$connect", Throttle(SLOW, 1)), ("sendMessage", Throttle(SLOW, 3)))
    )
    throttle = StageThrottle(throttles, clock)
    assert [throttle.allow("ping"), throttle.allow("getUsage")] == [True, True]
    assert not throttle.allow("cancel")  # ping and getUsage spent the stage's pool
    assert not throttle.allow("$default")
    assert [throttle.allow("sendMessage") for _ in range(4)] == [True, True, True, False]
    assert [throttle.allow("$connect") for _ in range(2)] == [True, False]


@pytest.fixture
async def throttled_gateway(handlers: FakeHandlers) -> AsyncIterator[Gateway]:
    runtime = LambdaRuntime(handlers.resolve)
    throttles = StageThrottles(
        stage=Throttle(SLOW, 3), routes=(("$connect", Throttle(SLOW, 2)), ("sendMessage", Throttle(SLOW, 2)))
    )
    gateway = Gateway(runtime, throttles=throttles)
    await gateway.start("127.0.0.1", 0)
    try:
        yield gateway
    finally:
        await gateway.stop()
        await asyncio.to_thread(runtime.close)


@pytest.fixture
def handlers() -> FakeHandlers:
    return FakeHandlers()


async def test_a_throttled_connect_is_a_429_and_no_authorizer_runs(
    throttled_gateway: Gateway, handlers: FakeHandlers
) -> None:
    async with _open(throttled_gateway), _open(throttled_gateway):
        with pytest.raises(InvalidStatus) as refused:
            async with _open(throttled_gateway):
                pass
    assert refused.value.response.status_code == 429
    assert json.loads(refused.value.response.body or b"{}") == {"message": TOO_MANY_REQUESTS}
    assert len(handlers.of("authorizer")) == 2
    assert len(handlers.of("connect")) == 2


async def test_a_throttled_frame_gets_api_gateways_error_frame_and_the_connection_stays_open(
    throttled_gateway: Gateway, handlers: FakeHandlers
) -> None:
    async with _open(throttled_gateway) as ws:
        for _ in range(3):
            await ws.send(json.dumps({"action": "ping"}))
            assert (await _reply(ws))["route"] == "ping"
        await ws.send(json.dumps({"action": "getUsage"}))
        refused = await _reply(ws)
        assert refused["message"] == TOO_MANY_REQUESTS
        assert set(refused) == {"message", "connectionId", "requestId"}
        # The stage's pool is spent; sendMessage's own pool is not.
        await ws.send(json.dumps({"action": "sendMessage", "message": "hi"}))
        assert (await _reply(ws))["route"] == "sendMessage"
    assert len(handlers.of("commands")) == 3
