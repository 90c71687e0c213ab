import numpy as np
import pytest

from soundalike.errors import UserError
from soundalike.segment import level_db, window_starts, windows

SR = 1000


def blocks(x, size):
    for i in range(0, len(x), size):
        yield x[i : i + size]


def collect(x, *, block=700, win=3.0, hop=1.5, **kw):
    out = list(windows(blocks(x, block), sample_rate=SR, window_seconds=win, hop_seconds=hop, **kw))
    return (
        np.concatenate([b.starts for b in out]),
        np.concatenate([b.ends for b in out]),
        np.concatenate([b.samples for b in out]),
        np.concatenate([b.informative for b in out]),
    )


def test_windows_match_direct_slicing_whatever_the_block_size():
    x = np.arange(10_250, dtype=np.float32)
    expected = window_starts(len(x), window=3000, hop=1500)
    for block in (1, 333, 700, 5000, 20000):
        starts, ends, samples, _ = collect(x, block=block)
        assert np.allclose(starts * SR, expected)
        for s, w in zip(expected, samples):
            assert np.array_equal(w, x[s : s + 3000])
        assert np.allclose(ends - starts, 3.0)


def test_tail_gets_a_window_aligned_to_the_end():
    x = np.ones(10_000, np.float32)  # windows at 0, 1.5, 3, 4.5, 6 s; 1 s uncovered > hop/2
    starts, ends, _, _ = collect(x)
    assert starts[-1] == pytest.approx(7.0)
    assert ends[-1] == pytest.approx(10.0)


def test_a_short_sound_that_dies_away_is_centred_in_silence_and_keeps_its_real_end_and_level():
    hit = (0.5 * np.exp(-np.arange(1200) / 100.0)).astype(np.float32)  # 1.2 s, ends 52 dB below its start
    starts, ends, samples, informative = collect(hit)
    assert starts.tolist() == [0.0] and ends.tolist() == [pytest.approx(1.2)]
    assert samples.shape == (1, 3000)
    assert np.array_equal(samples[0, 900:2100], hit) and not samples[0, :900].any() and not samples[0, 2100:].any()
    # its level is its own samples', not diluted by the silence around it
    batch = next(windows(iter([hit]), sample_rate=SR, window_seconds=3.0, hop_seconds=1.5))
    assert batch.level_db[0] == pytest.approx(level_db(hit[None])[0]) and informative.tolist() == [True]
    click = np.full(500, 10 ** (-44 / 20), np.float32) * np.linspace(1, 0, 500, dtype=np.float32) ** 4
    assert level_db(click[None])[0] > -55 > level_db(np.pad(click, (1250, 1250))[None])[0]
    assert collect(click)[3].tolist() == [True]


def test_a_short_cut_of_something_longer_is_repeated():
    x = np.linspace(0.1, 0.2, 1200, dtype=np.float32)  # ends as loud as it goes
    starts, ends, samples, _ = collect(x)
    assert ends.tolist() == [pytest.approx(1.2)]
    assert np.array_equal(samples[0, :1200], x) and np.array_equal(samples[0, 1200:2400], x)


def test_silence_is_not_informative():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros(6000), 0.3 * rng.standard_normal(6000), 1e-5 * rng.standard_normal(3000)]).astype(np.float32)
    starts, _, _, informative = collect(x, hop=3.0)
    assert starts.tolist() == [0, 3, 6, 9, 12]
    assert informative.tolist() == [False, False, True, True, False]


def test_offset_shifts_times_and_levels_are_dbfs():
    x = np.full(3000, 0.5, np.float32)
    starts, _, _, _ = collect(x, time_offset=12.5)
    assert starts.tolist() == [12.5]
    assert level_db(x[None, :])[0] == pytest.approx(20 * np.log10(0.5), abs=1e-3)


def test_bad_hop_is_a_user_error():
    with pytest.raises(UserError, match="hop"):
        collect(np.zeros(5000, np.float32), hop=0)


def test_empty_stream_yields_nothing():
    assert list(windows(iter([]), sample_rate=SR, window_seconds=3, hop_seconds=1)) == []
