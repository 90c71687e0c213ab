"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

LibraryOpt = Annotated[
    Optional[Path],
    typer.Option("--library", "-L", envvar="SOUNDALIKE_LIBRARY", help="Library folder.", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
StoreOpt = Annotated[Optional[str], typer.Option(
    help="Vector store of a new library: embedded, exact, qdrant or pgvector.", show_default=False)]
StoreUrlOpt = Annotated[Optional[str], typer.Option(
    help="Server of a qdrant or pgvector store (http://host:6333, a folder for qdrant's local mode, "
         "postgresql://user@host/db); a password is better given in SOUNDALIKE_STORE_URL, out of `ps`.",
    show_default=False)]

console = Console()
err_console = Console(stderr=True)


def open_library(path: Path | None, *, create: bool = False, **options):
    from ..library import Library

    return Library(path, create=create, **options)


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    return f"{sign}{int(seconds // 60)}:{seconds % 60:04.1f}"
