"""A library indexed by an older model version: refused with a one-line error, upgraded by `soundalike index -L LIB`.

FakeModel (tests/fakes.py) stands in for musicnn; a subclass with another
``version`` plays the upgraded model, as a MUSICNN_VERSION bump does.
"""

import shutil

import numpy as np
import pytest

import soundalike
from soundalike.errors import CatalogError, UserError
from soundalike.models import register_model
from soundalike.synth import add_noise, encode, excerpt, render_track
from tests.conftest import cli
from tests.fakes import FakeModel

SR = 22050


class UpgradedModel(FakeModel):
    """The same model id, a new version, and (as a real upgrade would) other vectors."""

    version = "2"

    def embed_batch(self, features):
        out = super().embed_batch(features)
        return type(out)(-out.embeddings, out.tags)


@pytest.fixture
def old_library(tmp_path):
    """Two folders (one nested) indexed with version 1 of the fake model."""
    music = tmp_path / "music"
    (music / "album").mkdir(parents=True)
    other = tmp_path / "other"
    other.mkdir()
    for seed, folder in ((0, music), (1, music / "album"), (2, other)):
        encode(render_track(seed, seconds=24, sample_rate=SR), SR, folder / f"t{seed}.flac")
    lib = soundalike.open(tmp_path / "lib", model=FakeModel(), hop=2.0)
    for folder in (music, other):
        assert list(lib.index([folder]))[-1].event == "done"
    lib.close()
    return tmp_path / "lib", music, other


def _query(tmp_path, seed):
    x = render_track(seed, seconds=24, sample_rate=SR)
    path = tmp_path / "q.wav"
    encode(add_noise(excerpt(x, SR, 5.0, 8.0), 30, np.random.default_rng(0)), SR, path)
    return path


def test_an_old_library_is_refused_with_the_upgrade_command(old_library, tmp_path):
    path, _, _ = old_library
    lib = soundalike.open(path, model=UpgradedModel())
    with pytest.raises(CatalogError) as err:
        lib.search(_query(tmp_path, 1))
    message = str(err.value)
    assert "\n" not in message and "fake 1" in message and "has 2" in message
    assert f"soundalike index -L {path}" in message
    with pytest.raises(CatalogError, match="soundalike index -L"):
        lib.duplicates()


def test_reindex_re_embeds_every_track_and_search_works_again(old_library, tmp_path):
    path, music, other = old_library
    before = soundalike.open(path, model=FakeModel())
    old_vectors = {r.path: before.catalog.track_vector(r.id) for r in before.catalog.tracks()}
    before.close()
    model = UpgradedModel()
    lib = soundalike.open(path, model=model)
    assert lib.indexed_folders() == [music, other]
    events = list(lib.reindex())
    assert events[-1].event == "done"
    assert sorted(e.path.rsplit("/", 1)[-1] for e in events if e.event == "indexed") == ["t0.flac", "t1.flac", "t2.flac"]
    assert lib.catalog.get_meta("model_version") == "2"
    assert {r.model_version for r in lib.catalog.tracks()} == {"2"}
    for r in lib.catalog.tracks():  # the vectors really are the new model's
        assert np.allclose(lib.catalog.track_vector(r.id), -old_vectors[r.path], atol=2e-3)
    assert lib.search(_query(tmp_path, 1), top=1).hits[0].path.endswith("t1.flac")
    # a second run has nothing left to do
    assert not [e for e in lib.reindex() if e.event == "indexed"]


def test_reindex_drops_files_of_folders_that_are_gone(old_library):
    path, _, other = old_library
    shutil.rmtree(other)
    lib = soundalike.open(path, model=UpgradedModel())
    list(lib.reindex())
    assert sorted(r.path.rsplit("/", 1)[-1] for r in lib.catalog.tracks()) == ["t0.flac", "t1.flac"]
    assert lib.store.count("tracks") == 2
    assert lib.catalog.get_meta("model_version") == "2"


def test_reindex_with_no_folder_left_is_a_user_error(old_library):
    path, music, other = old_library
    shutil.rmtree(music)
    shutil.rmtree(other)
    lib = soundalike.open(path, model=UpgradedModel())
    with pytest.raises(UserError, match="none of the folders"):
        list(lib.reindex())
    assert lib.catalog.track_count() == 0


def test_cli_index_without_paths_upgrades_the_library(old_library, tmp_path, capsys):
    path, _, _ = old_library
    register_model("fake", UpgradedModel)
    code, out, err = cli(capsys, "search", _query(tmp_path, 2), "-L", path)
    assert code != 0 and f"soundalike index -L {path}" in err
    code, out, err = cli(capsys, "index", "-L", path, "--json")
    assert code == 0, err
    assert '"indexed_or_updated": 3' in out
    code, out, err = cli(capsys, "search", _query(tmp_path, 2), "-L", path, "--json", "--top", "1")
    assert code == 0, err
    assert "t2.flac" in out
    code, out, err = cli(capsys, "index", "-L", tmp_path / "no-such-lib")
    assert code != 0 and "no library" in err
