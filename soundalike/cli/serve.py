"""soundalike serve"""

from __future__ import annotations

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
        typer.Option(help="Require this key on every /api route (default: SOUNDALIKE_API_KEY).", show_default=False),
    ] = None,
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

      SOUNDALIKE_API_KEY=s3cret soundalike serve --host 0.0.0.0 --port 8080
    """
    try:
        import uvicorn
    except ImportError:
        raise UserError("soundalike serve needs the serve extra: pip install 'soundalike[serve]'") from None
    from ..serve import create_app

    key = api_key or settings.get("api_key")
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
    )
    if host not in ("127.0.0.1", "localhost", "::1") and not key:
        err_console.print("[yellow]warning:[/] listening beyond this machine without an API key (--api-key)")
    err_console.print(f"soundalike: http://{host}:{port}/  (API docs at /docs)", highlight=False)
    uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False)
