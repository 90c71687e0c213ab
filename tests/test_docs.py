"""The README documents every setting and every command (a new one fails here until it is)."""

import re
import shlex
from pathlib import Path

from soundalike.cli import app
from soundalike.settings import SETTINGS

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented():
    missing = [s.env for s in SETTINGS.values() if s.env not in README]
    assert not missing


def test_every_command_is_documented():
    names = [c.name for c in app.registered_commands]
    assert names, "no commands registered"
    missing = [n for n in names if f"soundalike {n}" not in README]
    assert not missing


def test_first_screen_has_the_two_commands():
    first_screen = "\n".join(README.splitlines()[:30])
    assert "make demo" in first_screen and "make test" in first_screen


def documented_command_lines() -> list[str]:
    """Every ``soundalike …`` line of the README's code blocks (shell, or unmarked), comments, a ``$ `` prompt
    and environment assignments dropped."""
    lines, fence = [], None
    for line in README.replace("\\\n", " ").splitlines():
        if line.startswith("```"):
            fence = line[3:].strip() if fence is None else None
            continue
        if fence in ("sh", ""):
            line = re.sub(r"\s+#.*$", "", line).strip().removeprefix("$ ")
            line = re.sub(r"^(\w+=\S+\s+)+", "", line)  # SOUNDALIKE_API_KEY=… soundalike serve
            if line.startswith("soundalike "):
                lines.append(line)
    return lines


def argv(line: str) -> list[str]:
    """A documented command line's words, without the shell's part (``> out.xspf``, ``| jq …``)."""
    words = shlex.split(line)
    cut = next((i for i, w in enumerate(words) if w in (">", ">>", "|")), len(words))
    return words[:cut]


def parse(args: list[str]):
    """Parse a command line as the CLI would, down to the leaf command, without running it:
    unknown commands or options, missing arguments and values of the wrong type raise click's errors."""
    import typer

    cmd = typer.main.get_command(app)
    ctx = cmd.make_context("soundalike", list(args))
    while hasattr(cmd, "resolve_command"):  # a group (newer typer has its own copy of click's classes)
        name, cmd, rest = cmd.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        ctx = cmd.make_context(name, rest, parent=ctx)
    return cmd, ctx


def test_every_documented_command_line_parses():
    """The README's examples are command lines the CLI accepts: the commands, options and values exist."""
    lines = documented_command_lines()
    assert len(lines) >= 20, lines
    for line in lines:
        try:
            parse(argv(line)[1:])
        except Exception as exc:  # click.UsageError, BadParameter, ...
            raise AssertionError(f"README: {line!r} does not parse: {exc}") from exc


def test_every_option_in_the_command_table_exists():
    rows = re.findall(r"^\| `soundalike ([a-z-]+(?: [a-z]+)?)([^`]*)` \|", README, re.M)
    assert len(rows) >= 11
    for name, rest in rows:
        import typer

        group = typer.main.get_command(app)
        ctx = group.make_context("soundalike", ["info"])
        for part in name.split():
            group = group.get_command(ctx, part)
            assert group is not None, f"README table: no command {name!r}"
        options = {o for p in group.params for o in (*p.opts, *p.secondary_opts)}
        for opt in re.findall(r"(--[a-z][a-z-]*)", rest):
            assert opt in options, f"README table: `soundalike {name}` has no option {opt}"


def test_documented_commands_run(tmp_path, capsys):
    """The everyday commands of the README's first screen run against a real (fake-model) library."""
    from soundalike.models import register_model
    from soundalike.synth import encode, render_track
    from tests.conftest import cli
    from tests.fakes import FakeModel

    register_model("fake", FakeModel)
    music = tmp_path / "Music"
    music.mkdir()
    for seed in range(3):
        encode(render_track(seed, seconds=20, sample_rate=22050), 22050, music / f"song{seed}.flac")
    encode(render_track(1, seconds=80, sample_rate=22050), 22050, tmp_path / "song.wav")
    encode(render_track(2, seconds=12, sample_rate=22050), 22050, tmp_path / "clip.mp3")
    lib = tmp_path / "music-lib"
    first_screen = "\n".join(README.splitlines()[:30])
    run = [argv(line) for line in documented_command_lines() if line in first_screen]
    assert [a[1] for a in run][:3] == ["index", "search", "search"], run
    for args in run:
        args = [str(music) if a == "~/Music" else str(lib) if a == "~/music-lib" else
                str(tmp_path / a) if a in ("clip.mp3", "song.wav") else a for a in args[1:]]
        if args[0] == "index":
            args += ["--model", "fake", "--hop", "2"]
        if args[0] in ("serve", "text"):
            parse(args)  # serve blocks and text needs MiniLM: tests/test_api.py and tests/test_text.py run them
            continue
        code, out, err = cli(capsys, *args)
        assert code == 0, (args, err)
        assert out.strip()
