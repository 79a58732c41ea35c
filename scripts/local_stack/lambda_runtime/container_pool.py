"""The parent's side of process isolation: one child process per execution environment, and a function's pool.

A :class:`Container` starts :func:`.execution_environment.main` in a child and talks to it over a pipe; a
:class:`ContainerPool` keeps a function's warm containers and starts new ones on demand, as Lambda does.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from scripts.local_stack.lambda_runtime import execution_environment
from scripts.local_stack.lambda_runtime.execution_environment import ContainerSpec
from scripts.local_stack.lambda_runtime.invocation import FunctionError


class Container:
    """One execution environment: a child process serving one invocation at a time over a pipe."""

    def __init__(self, context: Any, spec: ContainerSpec) -> None:
        self.spec = spec
        ours, theirs = context.Pipe()
        self._connection: Connection = ours
        self._process: BaseProcess = context.Process(
            target=execution_environment.main, args=(theirs, spec), name=f"lambda:{spec.function_name}", daemon=True
        )
        self._process.start()
        # Only the child holds its end now, so its death reads as end-of-file here.
        theirs.close()

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    @property
    def exit_code(self) -> int | None:
        return self._process.exitcode

    def wait_ready(self, timeout: float) -> None:
        """The init phase: the child imports the handler; raises :class:`FunctionError` if that fails."""
        try:
            kind, payload = self.receive(timeout)
        except TimeoutError:
            error = {"errorType": "Runtime.InitTimeout", "errorMessage": f"init took over {timeout:.0f} s"}
            raise FunctionError(self.spec.function_name, error) from None
        except (EOFError, OSError):
            self._process.join(timeout=5)
            error = {"errorType": "Runtime.ExitError", "errorMessage": f"init exited with code {self.exit_code}"}
            raise FunctionError(self.spec.function_name, error) from None
        if kind != execution_environment.READY:
            raise FunctionError(self.spec.function_name, payload)

    def send(self, message: Any) -> None:
        self._connection.send(message)

    def receive(self, timeout: float) -> tuple[str, Any]:
        """The child's next message; ``TimeoutError`` if none in time, ``EOFError`` if the child is gone."""
        if not self._connection.poll(timeout):
            raise TimeoutError
        kind, payload = self._connection.recv()
        return str(kind), payload

    def terminate(self) -> None:
        """Kill the process; safe while another thread waits on the pipe (it then reads end-of-file)."""
        if self._process.is_alive():
            self._process.kill()

    def discard(self) -> None:
        """Kill the process if it still runs, reap it and close the pipe. Only the thread that owns it calls this."""
        self.terminate()
        self._process.join(timeout=5)
        self._connection.close()

    def stop(self) -> None:
        """Ask an idle container to exit, as Lambda shuts a sandbox down; kill it if it does not."""
        with contextlib.suppress(OSError):
            self._connection.send(None)
        self._process.join(timeout=2)
        self.discard()


class ContainerPool:
    """The containers of one function: reused while warm, started on demand up to ``size`` at once."""

    def __init__(self, start: Callable[[], Container], size: int) -> None:
        self._start = start
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[Container] = []
        self._busy: set[Container] = set()
        self._closed = False

    def acquire(self) -> Container:
        """A warm container, or a new one (its init is paid here, like a cold start); waits while all are busy."""
        self._slots.acquire()
        try:
            with self._lock:
                self._raise_if_closed()
                while self._idle:
                    container = self._idle.pop()
                    if container.alive:
                        self._busy.add(container)
                        return container
                    container.discard()
            container = self._start()
            with self._lock:
                if self._closed:
                    container.discard()
                    self._raise_if_closed()
                self._busy.add(container)
            return container
        except BaseException:
            self._slots.release()
            raise

    def release(self, container: Container, *, reusable: bool) -> None:
        with self._lock:
            self._busy.discard(container)
            keep = reusable and not self._closed and container.alive
            if keep:
                self._idle.append(container)
        if not keep:
            container.discard()
        self._slots.release()

    def prewarm(self) -> None:
        self.release(self.acquire(), reusable=True)

    def close(self, grace_s: float) -> None:
        """Stop idle containers; give busy ones ``grace_s`` to finish, then kill them."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for container in idle:
            container.stop()
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._busy:
                    return
            time.sleep(0.05)
        with self._lock:
            busy = list(self._busy)
        for container in busy:
            container.terminate()  # its invocation's thread reads end-of-file, reaps it and releases the slot

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise RuntimeError("the local Lambda runtime is closed")
