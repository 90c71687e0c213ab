"""The web app and REST API (``soundalike serve``); needs the ``serve`` extra (FastAPI, uvicorn).

    from soundalike.serve import create_app
    app = create_app("~/music-lib", api_key="secret")   # an ASGI app: run it with uvicorn

Layout: ``app.py`` (the app factory, security middleware, JSON errors),
``routes.py`` (the ``/api`` routes), ``engine.py`` (thread pool, per-thread
catalogue connections, the model loaded once), ``media.py`` (audio streaming
with Range, waveform peaks), ``static/`` (the web app: plain HTML, CSS and JS,
no build step).
"""

from .app import create_app

__all__ = ["create_app"]
