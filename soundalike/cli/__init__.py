"""The ``soundalike`` command: thin Typer commands over the ``Library`` API.

Errors become one line on stderr in ``main()``: exit 2 for a usage error,
1 for any other failure; ``--debug`` (or SOUNDALIKE_DEBUG=1) shows tracebacks.
The installed command is ``run()``: ``main()``, then an exit that skips the
interpreter's teardown.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from ..errors import FilterError, SoundalikeError, UserError

app = typer.Typer(
    name="soundalike",
    help="Index a folder of audio and find tracks that sound alike, offline.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", envvar="SOUNDALIKE_DEBUG", help="Show tracebacks and debug logs."),
) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if debug:
        os.environ["SOUNDALIKE_DEBUG"] = "1"


from . import (  # noqa: E402,F401  (commands register themselves)
    admin, classify, clusters, duplicates, evaluate, index, labels, merge, radio, search, serve, text,
)


def main() -> None:
    try:
        code = app(standalone_mode=False)
        # newer typer returns the exit code (130 for Ctrl-C) instead of raising; a command itself returns None
        if code == 130:
            raise KeyboardInterrupt
        if isinstance(code, int) and code:
            sys.exit(code)
    except SoundalikeError as exc:
        if os.environ.get("SOUNDALIKE_DEBUG") == "1":
            raise
        # every command's filter is its --where option: say so, as a usage error names its option
        print(f"error: {'--where: ' if isinstance(exc, FilterError) else ''}{exc}", file=sys.stderr)
        sys.exit(2 if isinstance(exc, UserError) else 1)
    except KeyboardInterrupt:
        print("interrupted: what was indexed so far is kept", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # usage errors (click's, or newer typer's own copy of click's) and anything unexpected
        import click

        if isinstance(exc, (click.exceptions.Exit, typer.Exit)):
            sys.exit(exc.exit_code)
        if isinstance(exc, (click.ClickException, typer.TyperException)) and hasattr(exc, "show"):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, (click.exceptions.Abort, typer.Abort)):
            sys.exit(1)
        if os.environ.get("SOUNDALIKE_DEBUG") == "1":
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        sys.exit(1)


def run() -> None:
    """The ``soundalike`` console script: ``main()``, then out without the interpreter's teardown.

    Once torch is loaded, unloading its modules at exit takes about 0.5 s,
    after the command's work is done and printed. Every stream is flushed and
    the exit code kept; whatever needs cleaning up (the library, temporary
    folders) is closed by the command itself. In-process callers (the tests)
    use ``main()``.
    """
    try:
        main()
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    if code:  # a failed or interrupted command: finish what the teardown would have (generators' cleanup)
        import gc

        gc.collect()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (soundalike ... | head): nothing left to say
            pass
    os._exit(code)
