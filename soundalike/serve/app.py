"""The FastAPI application: security middleware, JSON errors, the API and the static web app.

``create_app(library)`` builds it; ``soundalike serve`` runs it with uvicorn.

- API key: when set, every ``/api`` route needs it, in the ``X-API-Key``
  header or (for ``<audio>`` elements, which cannot send headers) the
  ``soundalike_key`` cookie, which the web app sets with ``SameSite=Strict``.
- Upload limit: a request body over ``max_upload_mb`` is refused with 413,
  from its Content-Length before anything is read, or as soon as the
  streamed body passes the limit.
- Decoded length: an uploaded file may decode to at most ``max_upload_seconds``
  of audio (413 otherwise; checked from the header, then while decoding), and
  waveform peaks are computed while decoding, in memory bounded by the points.
- Slow bodies: a body that pauses longer than ``read_timeout`` seconds, or
  takes longer than ``20 * read_timeout`` in all, is answered 408 (uvicorn
  has no body timeout of its own; a trickled upload held a worker forever).
- CORS is off unless origins are given.
- Every error is JSON ``{"error": message, "status": code}``, never a traceback, and
  leaves the keep-alive connection open (an unexpected exception is answered
  by ``SecurityMiddleware``, not re-raised to the server).
- Every number a client sends is bounded (routes.py), so out-of-range input is
  a 422 naming the field.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from contextlib import asynccontextmanager
from importlib import resources

from ..errors import DecodeError, FilterError, SoundalikeError, UserError

log = logging.getLogger("soundalike.serve")

KEY_HEADER = "x-api-key"
KEY_COOKIE = "soundalike_key"


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


#: a body may take at most this many read timeouts in all
_BODY_TIMEOUTS = 20


def _json_response(status: int, message: str, headers: dict | None = None):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


class SecurityMiddleware:
    """Pure ASGI: the API key check and the upload size limit, before any route runs."""

    def __init__(self, app, *, api_key: str | None, max_upload: int, read_timeout: float = 30.0) -> None:
        self.app = app
        self.api_key = api_key or None
        self.max_upload = max_upload
        self.read_timeout = read_timeout

    def _authorised(self, scope) -> bool:
        if self.api_key is None:
            return True
        from starlette.requests import HTTPConnection

        conn = HTTPConnection(scope)
        given = conn.headers.get(KEY_HEADER) or conn.cookies.get(KEY_COOKIE) or ""
        return hmac.compare_digest(given.encode(), self.api_key.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path == "/api" or path.startswith("/api/"):
            if not self._authorised(scope):
                resp = _json_response(401, "missing or wrong API key (send it in the X-API-Key header)",
                                      {"WWW-Authenticate": "X-API-Key"})
                return await resp(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        limit = self.max_upload
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                return await _json_response(400, "bad Content-Length header")(scope, receive, send)
            if too_big:
                return await _json_response(413, f"upload too large: the limit is {_mb(limit)}")(scope, receive, send)

        received = 0
        started = exceeded = slow = body_done = False
        deadline = time.monotonic() + _BODY_TIMEOUTS * self.read_timeout

        async def limited_receive():
            nonlocal received, exceeded, slow, body_done
            if body_done:  # only the body is timed: later receives wait for a disconnect, as long as a response lasts
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), min(self.read_timeout, max(deadline - time.monotonic(), 0)))
            except asyncio.TimeoutError:
                slow = True
                raise _TooSlow() from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    exceeded = True
                    raise _TooLarge()
            return message

        async def guarded_send(message):
            # The form parser may turn our exception into its own 400; the real reason is the size or the pace.
            nonlocal started
            if exceeded or slow:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await (too_large(send) if exceeded else too_slow(send))
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def too_large(send_to):
            await _json_response(413, f"upload too large: the limit is {_mb(limit)}")(scope, receive, send_to)

        async def too_slow(send_to):
            log.warning("%s %s: request body too slow; closing the connection", scope.get("method"), path)
            await _json_response(408, f"request body too slow (more than {self.read_timeout:g} s without data, "
                                      f"or {_BODY_TIMEOUTS * self.read_timeout:g} s in all)",
                                 {"Connection": "close"})(scope, receive, send_to)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not started:
                await too_large(send)
        except _TooSlow:
            if not started:
                await too_slow(send)
        except Exception as exc:
            # Answered here rather than by Starlette's outermost handler, which re-raises after its 500 and so
            # makes uvicorn drop the keep-alive connection. A response already under way cannot be mended.
            if started:
                raise
            log.exception("unexpected error on %s %s", scope.get("method"), path)
            await _json_response(500, f"internal error ({type(exc).__name__}); see the server log")(scope, receive, send)


def _mb(n: int) -> str:
    return f"{n / 1e6:g} MB"


def create_app(
    library,
    *,
    api_key: str | None = None,
    max_upload_mb: float = 100.0,
    cors_origins: list[str] | None = None,
    model=None,
    threads: int = 4,
    warm_up: bool = False,
    read_timeout: float = 30.0,
    max_upload_seconds: float = 7200.0,
):
    """The web app and REST API over the library folder ``library``.

    ``model``: an ``Embedder`` to use instead of loading the library's model
    (tests pass a fake); ``warm_up``: load the model at startup.
    """
    try:
        from fastapi import FastAPI
        from fastapi.exceptions import RequestValidationError
        from fastapi.staticfiles import StaticFiles
        from starlette.exceptions import HTTPException as StarletteHTTPException
    except ImportError:
        raise UserError("the web server needs the serve extra: pip install 'soundalike[serve]'") from None

    from .. import __version__
    from .engine import Engine
    from .routes import router
    from .routes_radio import router as radio_router
    from .routes_duplicates import router as duplicates_router
    from .routes_classify import router as classify_router
    from .routes_map import router as map_router

    if not 0 < max_upload_mb < float("inf"):
        raise UserError("max_upload_mb: must be positive")
    if not 0 < read_timeout < float("inf"):
        raise UserError("read_timeout: must be a positive number of seconds")
    if not 0 < max_upload_seconds < float("inf"):
        raise UserError("max_upload_seconds: must be a positive number of seconds")
    engine = Engine(library, model=model, threads=threads)

    @asynccontextmanager
    async def lifespan(app):
        if warm_up:
            import asyncio

            await asyncio.get_running_loop().run_in_executor(engine.executor, engine.warm_up)
        try:
            yield
        finally:
            engine.close()

    try:  # the API docs page from the Swagger UI files fastapi-offline ships, so that /docs works offline
        swagger_ui_path = resources.files("fastapi_offline") / "static"
    except ImportError:  # FastAPI's default page, which loads Swagger UI from a CDN
        swagger_ui_path = None
    app = FastAPI(
        title="soundalike",
        version=__version__,
        description="Find audio that sounds like other audio. Every `/api` route needs the API key when the "
        "server has one (header `X-API-Key`).",
        lifespan=lifespan,
        docs_url=None if swagger_ui_path else "/docs",
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.api_key_required = bool(api_key)
    app.state.max_upload = int(max_upload_mb * 1e6)
    app.state.max_upload_seconds = float(max_upload_seconds)

    @app.exception_handler(SoundalikeError)
    async def _soundalike_error(request, exc: SoundalikeError):
        from .media import NotServable, RangeNotSatisfiable

        if isinstance(exc, RangeNotSatisfiable):
            return _json_response(416, str(exc), {"Content-Range": f"bytes */{exc.size}"})
        if isinstance(exc, NotServable):
            return _json_response(410, str(exc))
        if isinstance(exc, DecodeError):
            return _json_response(422, str(exc))
        if isinstance(exc, FilterError):  # every route's filter is its ``where`` field, named as validation errors are
            return _json_response(400, f"where: {exc}")
        if isinstance(exc, UserError):
            return _json_response(getattr(exc, "status", 400), str(exc))
        log.error("%s: %s", type(exc).__name__, exc)
        return _json_response(500, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return _json_response(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        parts = []
        for e in exc.errors():
            loc = [str(x) for x in e.get("loc", ())]
            if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
                loc = loc[1:]  # where it came from; the rest names the field
            parts.append(f"{'.'.join(loc) or 'request'}: {e.get('msg', 'invalid')}")
        return _json_response(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(request, exc):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _json_response(500, f"internal error ({type(exc).__name__}); see the server log")

    app.include_router(router, prefix="/api")
    app.include_router(radio_router, prefix="/api")
    app.include_router(duplicates_router, prefix="/api")
    app.include_router(classify_router, prefix="/api")
    app.include_router(map_router, prefix="/api")
    if swagger_ui_path:
        from fastapi.openapi.docs import get_swagger_ui_html

        app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

        @app.get("/docs", include_in_schema=False)
        async def docs():
            return get_swagger_ui_html(
                openapi_url=app.openapi_url, title="soundalike API", swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                swagger_css_url="/docs-assets/swagger-ui.css", swagger_favicon_url="/docs-assets/favicon.png",
            )
    static = resources.files("soundalike.serve") / "static"
    app.mount("/", StaticFiles(directory=str(static), html=True), name="static")

    app.add_middleware(SecurityMiddleware, api_key=api_key, max_upload=app.state.max_upload, read_timeout=read_timeout)
    if cors_origins:  # outermost, so that preflight requests (which carry no key) are answered
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["X-API-Key", "Content-Type", "Range"], allow_credentials=False)
    return app
