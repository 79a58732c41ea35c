"""The offline model: a local server that speaks the OpenAI Responses API without a model.

It is the local stack's model when there is no OpenAI key, and the fake server behind the model client's tests.
Every response says what it is (``model="offline-demo"``, ``metadata["offline"] == "true"``). Point the real
``openai`` SDK at :attr:`OfflineModelServer.base_url` and it works unchanged.

Three ways to run it:

- in a test: ``with OfflineModelServer(pace=Pace.instant()) as server: ...`` (own event loop in a daemon thread);
- inside another asyncio program: ``running = await start_async(...)``, or mount :func:`create_app` yourself;
- on its own: ``python -m scripts.local_stack.offline_model --port 8765``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web

from scripts.local_stack.offline_model.app import create_app
from scripts.local_stack.offline_model.faults import AnyFault, Fault, FaultPlan, Pace
from scripts.local_stack.offline_model.schema import OFFLINE_MODEL_NAME
from scripts.local_stack.offline_model.store import PROFILES, OfflineModelState, Profile, RecordedRequest

__all__ = [
    "OFFLINE_MODEL_NAME",
    "AnyFault",
    "Fault",
    "FaultPlan",
    "OfflineModelServer",
    "OfflineModelState",
    "Pace",
    "Profile",
    "RecordedRequest",
    "RunningOfflineModel",
    "create_app",
    "start_async",
]

logger = logging.getLogger(__name__)

#: Streams in flight when the server stops are cut rather than awaited: the server is a test fixture or a demo.
_SHUTDOWN_TIMEOUT_S = 1.0


@dataclass
class RunningOfflineModel:
    """A server listening inside the caller's event loop."""

    runner: web.AppRunner
    state: OfflineModelState
    host: str
    port: int

    @property
    def base_url(self) -> str:
        """What to give ``openai.OpenAI(base_url=...)`` (or ``OPENAI_BASE_URL``)."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """Where ``/_control/...`` lives."""
        return f"http://{self.host}:{self.port}"

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_async(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    pace: Pace | None = None,
    state: OfflineModelState | None = None,
    profile: Profile | None = None,
) -> RunningOfflineModel:
    """Start listening in the running event loop; ``port=0`` picks a free port. ``profile="stateless"`` serves
    only ``POST /v1/responses``, as the self-hosted servers do (see :mod:`.app`)."""
    state = state or OfflineModelState()
    if pace is not None:
        state.pace = pace
    if profile is not None:
        state.profile = profile
    runner = web.AppRunner(create_app(state), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = int(runner.addresses[0][1])
    return RunningOfflineModel(runner=runner, state=state, host=host, port=bound_port)


class OfflineModelServer:
    """The offline model on its own event loop in a daemon thread, for synchronous callers such as tests."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, pace: Pace | None = None, profile: Profile = "openai"
    ) -> None:
        self.host = host
        self.state = OfflineModelState(pace=pace or Pace(), profile=profile)
        self._requested_port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running: RunningOfflineModel | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def faults(self) -> FaultPlan:
        return self.state.faults

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.state.requests

    @property
    def pace(self) -> Pace:
        return self.state.pace

    @pace.setter
    def pace(self, pace: Pace) -> None:
        self.state.pace = pace

    @property
    def running(self) -> RunningOfflineModel:
        if self._running is None:
            raise RuntimeError("the offline model server is not running")
        return self._running

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def base_url(self) -> str:
        return self.running.base_url

    @property
    def root_url(self) -> str:
        return self.running.root_url

    def start(self) -> OfflineModelServer:
        """Start listening; returns once the port is bound (or raises what binding raised)."""
        if self._thread is not None:
            raise RuntimeError("the offline model server is already running")
        started: Future[RunningOfflineModel] = Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(self._loop, started), name="offline-model", daemon=True
        )
        self._thread.start()
        try:
            self._running = started.result()
        except BaseException:
            self._thread.join()
            self._thread = None
            raise
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join()
        self._thread = None
        self._running = None

    def _serve(self, loop: asyncio.AbstractEventLoop, started: Future[RunningOfflineModel]) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(started))
        finally:
            loop.close()

    async def _main(self, started: Future[RunningOfflineModel]) -> None:
        self._stopped = asyncio.Event()
        try:
            running = await start_async(self.host, self._requested_port, state=self.state)
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(running)
        try:
            await self._stopped.wait()
        finally:
            await running.close()

    def __enter__(self) -> OfflineModelServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.local_stack.offline_model",
        description="Serve the offline demo model (OpenAI Responses API, no model).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    demo = Pace.demo()
    parser.add_argument("--first-token-s", type=float, default=demo.first_token_s, help="0 for no pause")
    parser.add_argument("--tokens-per-s", type=float, default=demo.tokens_per_s, help="0 for no pause")
    parser.add_argument(
        "--reasoning-s", type=float, default=demo.reasoning_s, help="silence of a reasoning request; 0 for none"
    )
    parser.add_argument("--profile", choices=PROFILES, default="openai", help="stateless: POST /v1/responses only")
    return parser.parse_args(argv)


async def _serve_forever(args: argparse.Namespace) -> None:
    pace = Pace(first_token_s=args.first_token_s, tokens_per_s=args.tokens_per_s, reasoning_s=args.reasoning_s)
    running = await start_async(args.host, args.port, pace=pace, profile=args.profile)
    # A line on stdout, not a log record: a parent process (the local stack, a test) reads the URL from it.
    print(f"offline model listening at {running.base_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await running.close()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(_serve_forever(_parse_args(argv)))
    except KeyboardInterrupt:
        logger.info("offline model stopped")
