"""soundalike serve"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import settings
from ..errors import UserError
from . import app
from .common import LibraryOpt, err_console


@app.command("serve")
def serve_cmd(
    library: LibraryOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for the whole LAN: set an API key).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    api_key: Annotated[
        Optional[str],
        typer.Option(help="Require this key on every /api route (default: SOUNDALIKE_API_KEY). Visible to other "
                          "users in `ps`: prefer --api-key-file or the environment variable.", show_default=False),
    ] = None,
    api_key_file: Annotated[
        Optional[Path],
        typer.Option(help="Read the API key from this file's first line (default: SOUNDALIKE_API_KEY_FILE); "
                          "the recommended way.", show_default=False),
    ] = None,
    read_timeout: Annotated[Optional[float], typer.Option(help="Seconds a request body may pause before a 408 (default: SOUNDALIKE_READ_TIMEOUT, else 30).", show_default=False)] = None,
    max_upload_mb: Annotated[Optional[float], typer.Option(help="Largest upload in MB (default: SOUNDALIKE_MAX_UPLOAD_MB, else 100).", show_default=False)] = None,
    cors_origin: Annotated[
        Optional[list[str]],
        typer.Option("--cors-origin", help="Allow API calls from this origin (repeatable). CORS is off by default.", show_default=False),
    ] = None,
    threads: Annotated[Optional[int], typer.Option(help="Worker threads for searches (default: SOUNDALIKE_SERVE_THREADS, else 4).", show_default=False)] = None,
    preload: Annotated[bool, typer.Option(help="Load the model at startup rather than on the first search.")] = True,
) -> None:
    """Run the web app and REST API over a library.

    Open http://HOST:PORT/ for the search page, /docs for the API documentation,
    /openapi.json for the schema. Stop with Ctrl-C.

    [b]Examples[/b]

      soundalike serve -L ~/music-lib

      soundalike serve --host 0.0.0.0 --port 8080 --api-key-file ~/.config/soundalike/key
    """
    try:
        import uvicorn
    except ImportError:
        raise UserError("soundalike serve needs the serve extra: pip install 'soundalike[serve]'") from None
    from ..serve import create_app

    if api_key and api_key_file:
        raise UserError("--api-key and --api-key-file: give one of them")
    # an option overrides the environment; a key file overrides a key
    key_file = None if api_key else api_key_file or settings.get("api_key_file")
    key = api_key or (read_key_file(Path(key_file)) if key_file else None) or settings.get("api_key")
    if api_key:
        err_console.print("[yellow]warning:[/] --api-key is visible to other users of this machine (ps); "
                          "prefer --api-key-file or SOUNDALIKE_API_KEY")
    origins = list(cors_origin or []) or [o.strip() for o in (settings.get("cors_origins") or "").split(",") if o.strip()]
    if not 0 < port < 65536:
        raise UserError(f"--port: {port} is not a port number")
    web = create_app(
        library or settings.get("library"),
        api_key=key,
        max_upload_mb=max_upload_mb if max_upload_mb is not None else settings.get("max_upload_mb"),
        cors_origins=origins,
        threads=threads or settings.get("serve_threads"),
        warm_up=preload,
        read_timeout=read_timeout if read_timeout is not None else settings.get("read_timeout"),
        max_upload_seconds=settings.get("max_upload_seconds"),
    )
    if host not in ("127.0.0.1", "localhost", "::1") and not key:
        err_console.print("[yellow]warning:[/] listening beyond this machine without an API key (--api-key-file)")
    err_console.print(f"soundalike: http://{host}:{port}/  (API docs at /docs)", highlight=False)
    # timeout_keep_alive: an idle keep-alive connection is closed after 5 s (uvicorn's default, made explicit);
    # a request body is timed by SecurityMiddleware (read_timeout)
    uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False, timeout_keep_alive=5)


def read_key_file(path: Path) -> str:
    """The API key in ``path`` (its first line, stripped); a ``UserError`` naming the file otherwise."""
    try:
        text = path.expanduser().read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--api-key-file: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    key = text.splitlines()[0].strip() if text.strip() else ""
    if not key:
        raise UserError(f"--api-key-file: {path} is empty")
    try:
        if path.expanduser().stat().st_mode & 0o077:
            err_console.print(f"[yellow]warning:[/] {path} can be read by other users; chmod 600 it", highlight=False)
    except OSError:
        pass
    return key
