"""The console's two halves: lines read from stdin (:class:`LineReader`) and text written word-wrapped
(:class:`WordWrapper`)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from typing import TextIO


class LineReader:
    """Reads stdin lines in a daemon thread, one per request, so a prompt can be abandoned at exit.

    On a terminal, through GNU readline: without it a terminal in its line mode cuts a line at 4,095 characters
    (a long paste was sent cut, silently) and sends each line of a multi-line paste as a message of its own.
    Readline (8.1 and later) reads the terminal's bracketed paste, so a pasted text of any length and any number of
    lines is one message, sent whole.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, stream: TextIO = sys.stdin) -> None:
        self._loop = loop
        self._stream = stream
        if stream is sys.stdin and stream.isatty():
            with contextlib.suppress(ImportError):  # a Python built without readline reads as before
                import readline  # noqa: F401  (importing it is what makes input() use it)
        self._requests: list[tuple[str, asyncio.Future[str | None]]] = []
        self._wake = threading.Condition()
        threading.Thread(target=self._serve, name="stdin", daemon=True).start()

    async def read(self, prompt: str) -> str | None:
        future: asyncio.Future[str | None] = self._loop.create_future()
        with self._wake:
            self._requests.append((prompt, future))
            self._wake.notify()
        return await future

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not self._requests:
                    self._wake.wait()
                prompt, future = self._requests.pop(0)
            try:
                line: str | None = input(prompt) if self._stream is sys.stdin else self._stream.readline() or None
            except EOFError:
                line = None
            self._loop.call_soon_threadsafe(_resolve, future, line)


def _resolve(future: asyncio.Future[str | None], value: str | None) -> None:
    if not future.done():
        future.set_result(value)


class WordWrapper:
    """Streams text to a terminal of ``width`` columns, breaking lines between words, never inside one.

    A reply arrives in pieces that may end mid-word ("Tok" + "yo"), so the word being written is held until the
    space after it (or :meth:`finish`) shows whether it still fits on the line. A word longer than a line is written
    as is; newlines and a line's leading indentation (lists, code) are kept.
    """

    def __init__(self, width: int) -> None:
        self.width = max(20, width)
        self.column = 0
        self._word = ""
        self._space = ""

    def start(self, column: int) -> None:
        """A new line of output begins at ``column`` (after a prefix such as ``assistant> ``)."""
        self.column = column
        self._word = ""
        self._space = ""

    def feed(self, text: str) -> str:
        out: list[str] = []
        for char in text:
            if char == "\n":
                out.append(self._flush_word())
                out.append("\n")
                self.column = 0
                self._space = ""
            elif char.isspace():
                out.append(self._flush_word())
                self._space += char
            else:
                self._word += char
        return "".join(out)

    def finish(self) -> str:
        """What is still held (the last word); the next output starts a new line."""
        out = self._flush_word()
        self._space = ""
        return out

    def _flush_word(self) -> str:
        if not self._word:
            return ""
        space, word = self._space, self._word
        self._space = self._word = ""
        if self.column > 0 and self.column + len(space) + len(word) > self.width:
            self.column = len(word)
            return "\n" + word
        self.column += len(space) + len(word)
        return space + word
