"""The web page on the gateway's origin: its files, its ``config.json``, and its one-click demo sign-in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

#: Where the page's one-click demo sign-in posts (relative to the page; named in ``config.json`` as ``demoSignIn``).
DEMO_SIGN_IN_PATH = "demo-sign-in"


class WebPage:
    """Serves ``web_dir`` (if it exists), ``/config.json`` from ``public_config`` and, if given, the demo sign-in.

    ``origin`` is the gateway's own origin (known once it listens): the only one the demo sign-in answers.
    """

    def __init__(
        self,
        *,
        origin: Callable[[], str],
        web_dir: Path | None = None,
        public_config: Callable[[], Mapping[str, Any]] | None = None,
        demo_sign_in: Callable[[], Awaitable[Mapping[str, Any]]] | None = None,
    ) -> None:
        self._origin = origin
        self._web_dir = web_dir if web_dir is not None and web_dir.is_dir() else None
        self._public_config = public_config
        self._demo_sign_in = demo_sign_in

    def add_routes(self, app: web.Application) -> None:
        """Added after every other route: the static files are served from ``/`` and would shadow them."""
        app.router.add_get("/config.json", self._config)
        if self._demo_sign_in is not None:
            app.router.add_post(f"/{DEMO_SIGN_IN_PATH}", self._demo_sign_in_handler)
        if self._web_dir is not None:
            app.router.add_get("/", self._index)
            app.router.add_static("/", self._web_dir, show_index=False, follow_symlinks=False)

    async def _config(self, request: web.Request) -> web.Response:
        if self._public_config is None:
            raise web.HTTPNotFound()
        return web.json_response(dict(self._public_config()), headers={"Cache-Control": "no-store"})

    async def _demo_sign_in_handler(self, request: web.Request) -> web.Response:
        """The page's one-click demo sign-in: Cognito's InitiateAuth answer for the demo user, so the page gets the
        demo user's tokens without the password ever being served (it stays in ``.local/stack.json``). Only on this
        loopback-only gateway, and only for a request from the page's own origin (another site open in the same
        browser cannot read the answer anyway, having no CORS grant, but it need not even cause a sign-in)."""
        assert self._demo_sign_in is not None
        origin = request.headers.get("Origin")
        if origin is not None and origin != self._origin():
            raise web.HTTPForbidden(text="demo sign-in is for the page served here only")
        result = await self._demo_sign_in()
        return web.json_response(dict(result), headers={"Cache-Control": "no-store"})

    async def _index(self, request: web.Request) -> web.StreamResponse:
        assert self._web_dir is not None
        index = self._web_dir / "index.html"
        if not index.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(index, headers={"Cache-Control": "no-store"})
