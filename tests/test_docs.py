"""The README documents every setting and every command (a new one fails here until it is)."""

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
