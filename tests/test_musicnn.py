"""The musicnn port against the original TensorFlow graph, and its weight handling.

The fixture tests/fixtures/musicnn_reference.npz was made by running the
ORIGINAL musicnn 0.1.0 graph code (models.py, restored from the wheel's
checkpoints) and librosa in a throw-away venv outside the repository:

    python3 -m venv /tmp/tfref                              # Python 3.11.7
    /tmp/tfref/bin/pip install -q tensorflow-cpu librosa   # got tensorflow-cpu 2.21.0, librosa 0.11.0, numpy 2.4.6
    /tmp/tfref/bin/pip install -q --no-deps musicnn==0.1.0
    /tmp/tfref/bin/pip install -q tf-keras                 # tf.compat.v1.layers needs legacy Keras (2.21.0)
    cd /work/main && /tmp/tfref/bin/python scripts/make_musicnn_reference.py   # sets TF_USE_LEGACY_KERAS=1

It holds three 3 s synthetic signals and one 1.3 s clip (int16), the log-mel
librosa computed for them (the short clip repeat-padded to 3 s), and the MSD
and MTT tag probabilities and 200-d penultimate features per window.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from soundalike.errors import ModelError, UserError
from soundalike.models.musicnn import INSTALL_COMMAND, MSD_LABELS, MTT_LABELS, Musicnn
from soundalike.models.musicnn import weights as W
from soundalike.models.musicnn.frontend import N_SAMPLES, log_mel, mel_filterbank
from soundalike.models.musicnn.embedder import GPU_BATCH, select_device
from soundalike.models.musicnn import fast as fast_module
from soundalike.models.musicnn.fast import FastMusicnn, _BandedTemporal, _DftTimbral
from soundalike.models.musicnn.net import MusicnnNet
from soundalike.models.musicnn.tfbundle import read_index, read_tensors

FIXTURE = Path(__file__).parent / "fixtures" / "musicnn_reference.npz"


def _weights_dir() -> Path | None:
    try:
        d = W.locate_checkpoints()
    except ModelError:
        return None
    return d if (d / "MSD_musicnn" / ".index").is_file() else None


# Skipped on a developer machine without the weights; never in CI, where a
# missing install step must fail loudly.
requires_weights = pytest.mark.skipif(
    _weights_dir() is None and not os.environ.get("CI"), reason=f"musicnn weights not installed ({INSTALL_COMMAND})"
)


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as d:
        return {k: d[k] for k in d.files}


@pytest.fixture(scope="module")
def audio(ref) -> list[np.ndarray]:
    """The three 3 s windows and the unpadded 1.3 s clip, as float32."""
    return [a.astype(np.float32) / 32768 for a in ref["audio_i16"]] + [ref["short_i16"].astype(np.float32) / 32768]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("musicnn-cache")


@pytest.fixture(scope="module")
def model(cache) -> Musicnn:
    return Musicnn(cache_dir=cache)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# --- front end ----------------------------------------------------------------


def test_log_mel_matches_librosa_reference(ref, audio):
    ours = log_mel(audio)
    assert ours.shape == ref["mel"].shape == (4, 187, 96) and ours.dtype == np.float32
    diff = np.abs(ours - ref["mel"])
    # Values agree to float32 rounding except where the mel power sits on a
    # float16 rounding boundary: then one float16 ulp (< 5e-4 after the log).
    assert diff.max() < 1e-3
    assert (diff > 1e-5).mean() < 1e-3


def test_mel_filterbank_shape_and_normalisation():
    fb = mel_filterbank()
    assert fb.shape == (96, 257) and fb.dtype == np.float32
    assert (fb >= 0).all() and (fb.sum(axis=1) > 0).all()
    # Slaney area normalisation: each triangle has area ~1 in Hz units (up to
    # sampling error where a band is only a few FFT bins wide).
    assert np.allclose(fb.sum(axis=1) * 16000 / 512, 1.0, atol=0.1)


def test_log_mel_no_float16_overflow():
    """A loud sine puts mel power far above 6.55, where 10000*x overflows float16."""
    t = np.arange(N_SAMPLES) / 16000
    out = log_mel((0.9 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None])
    assert np.isfinite(out).all() and out.max() > 5.0


def test_short_clip_is_repeat_padded(ref, audio):
    short = audio[3]
    assert len(short) < N_SAMPLES
    padded = np.resize(short, N_SAMPLES)
    as_list = log_mel([short])
    as_array = log_mel(short[None])
    np.testing.assert_array_equal(as_list, log_mel(padded[None]))
    np.testing.assert_array_equal(as_array, as_list)
    assert np.abs(as_list[0] - ref["mel"][3]).max() < 1e-3


def test_bad_windows_are_rejected():
    with pytest.raises(UserError):
        log_mel(np.zeros((1, N_SAMPLES + 1), np.float32))
    with pytest.raises(UserError):
        log_mel([np.zeros(0, np.float32)])
    with pytest.raises(UserError, match="list of clips"):
        log_mel(np.zeros(N_SAMPLES, np.float32))  # one clip must come as a row or a list
    assert log_mel(np.zeros((0, N_SAMPLES), np.float32)).shape == (0, 187, 96)


# --- checkpoint reader ------------------------------------------------------------


@requires_weights
def test_tfbundle_reads_the_checkpoint():
    prefix = str(W.locate_checkpoints() / "MSD_musicnn") + os.sep
    entries = read_index(Path(prefix + ".index"))
    assert len(entries) == 150
    assert sum(W._is_weight(n) for n in entries) == 64
    t = read_tensors(prefix, ["conv2d/kernel", "conv2d_1/kernel", "dense/kernel", "batch_normalization_9/gamma"])
    assert t["conv2d/kernel"].shape == (7, 38, 1, 204)
    assert t["conv2d_1/kernel"].shape == (7, 67, 1, 204)
    assert t["dense/kernel"].shape == (1506, 200)
    assert t["batch_normalization_9/gamma"].dtype == np.float32


# --- parity with the TensorFlow graph ------------------------------------------------


@requires_weights
@pytest.mark.parametrize("key", ["msd", "mtt"])
def test_network_matches_tensorflow(ref, cache, key):
    net = MusicnnNet.from_tf(W.load_weights(key, cache_dir=cache))
    with torch.inference_mode():
        logits, pen = net(torch.from_numpy(ref["mel"]))
    probs, pen = torch.sigmoid(logits).numpy(), pen.numpy()
    assert np.abs(probs - ref[f"{key}_tags"]).max() < 1e-4
    assert _cosine(pen, ref[f"{key}_penultimate"]).min() >= 0.9999
    assert np.abs(logits.numpy() - ref[f"{key}_logits"]).max() < 1e-3


@requires_weights
def test_embedder_end_to_end_from_audio(ref, audio, model):
    assert model.tag_names[:50] == tuple(f"msd:{t}" for t in MSD_LABELS)
    assert model.tag_names[50:] == tuple(f"mtt:{t}" for t in MTT_LABELS)
    # musicnn's own front end (no level step: Musicnn.features adds one; tests/test_musicnn_level.py)
    out = model.embed_batch(log_mel(audio))
    assert out.embeddings.shape == (4, 200) and out.embeddings.dtype == np.float32
    assert out.tags.shape == (4, 100) and out.tags.dtype == np.float32
    expected_tags = np.concatenate([ref["msd_tags"], ref["mtt_tags"]], axis=1)
    assert np.abs(out.tags - expected_tags).max() < 1e-4
    assert _cosine(out.embeddings, ref["msd_penultimate"]).min() >= 0.9999


@requires_weights
def test_msd_only_skips_mtt(audio, cache, model):
    fast = Musicnn(tags=("msd",), cache_dir=cache)
    assert "mtt" not in fast._nets
    assert len(fast.tag_names) == 50 and all(n.startswith("msd:") for n in fast.tag_names)
    full = model.embed_batch(model.features(audio))
    part = fast.embed_batch(fast.features(audio))
    assert part.tags.shape == (4, 50)
    np.testing.assert_allclose(part.embeddings, full.embeddings, atol=1e-6)
    np.testing.assert_allclose(part.tags, full.tags[:, :50], atol=1e-6)
    with pytest.raises(UserError):
        Musicnn(tags=("msd", "nope"), cache_dir=cache)


@requires_weights
def test_deterministic_and_batch_independent(audio, model):
    feats = model.features(audio)
    a = model.embed_batch(feats)
    b = model.embed_batch(feats)
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    one = np.concatenate([model.embed_batch(feats[i : i + 1]).embeddings for i in range(len(feats))])
    np.testing.assert_array_equal(one, a.embeddings)
    empty = model.embed_batch(np.zeros((0, 187, 96), np.float32))
    assert empty.embeddings.shape == (0, 200) and empty.tags.shape == (0, 100)
    with pytest.raises(UserError):
        model.embed_batch(np.zeros((2, 100, 96), np.float32))


@requires_weights
def test_pool_first_equals_original_order(cache):
    """ReLU and batch norm after the mel max-pool give exactly the original order's result."""
    net = MusicnnNet.from_tf(W.load_weights("msd", cache_dir=cache))
    x = net.frontend.input_bn(torch.randn(3, 187, 96, generator=torch.Generator().manual_seed(0)).unsqueeze(1))
    with torch.inference_mode():
        for block in (*net.frontend.timbral, *net.frontend.temporal):
            assert (block.bn.weight < 0).any()
            torch.testing.assert_close(block(x), block.forward_reference(x), rtol=0, atol=1e-6)


# --- the fast path (fast.py) against the reference port and TensorFlow ----------------


@pytest.fixture(scope="module")
def ref_nets(cache) -> dict[str, MusicnnNet]:
    return {k: MusicnnNet.from_tf(W.load_weights(k, cache_dir=cache)) for k in ("msd", "mtt")}


def _mels(n: int, seed: int = 0) -> torch.Tensor:
    """Log-mel-like input: non-negative, around 0-4, with structure across frames."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 187, 96, generator=g) * 3).cumsum(1).remainder(4.0)


@requires_weights
@pytest.mark.parametrize(
    "n, options",
    [
        (1, {"chunk": 2}),
        (3, {"chunk": 2}),
        (5, {"chunk": 4, "channel_block": 24, "frame_block": 40}),
        (7, {"chunk": 1}),
        (3, {"timbral": "im2col"}),
        (2, {"timbral": "im2col", "frame_block": 17}),
        (3, {"temporal": "im2col", "chunk": 1, "channel_block": 16}),  # the DFT path as it was before
        (4, {"band_frames": 11, "chunk": 3}),
        (2, {"timbral": "im2col", "temporal": "banded", "band_frames": 5}),
        (3, {"native": False}),  # torch's products instead of the compiled kernels
        (3, {"native": "avx2"}),  # the compiled kernels' AVX2 build where the CPU also runs AVX-512
        (5, {"native": "avx512", "chunk": 4, "band_frames": 11}),
        (5, {"native": False, "chunk": 4, "channel_block": 24, "band_frames": 11}),
    ],
)
def test_fast_path_equals_reference_port(ref_nets, n, options):
    _native_or_skip(options.get("native"))
    x = _mels(n, seed=n)
    fast = FastMusicnn([ref_nets["msd"], ref_nets["mtt"]], **options)
    with torch.inference_mode():
        got = fast(x)
        for key, (logits, pen) in zip(("msd", "mtt"), got):
            ref_logits, ref_pen = ref_nets[key](x)
            assert logits.shape == (n, 50) and pen.shape == (n, 200)
            assert (torch.sigmoid(logits) - torch.sigmoid(ref_logits)).abs().max() < 1e-4
            assert _cosine(pen.numpy(), ref_pen.numpy()).min() >= 0.99999
        fe = fast.frontend(x)[1]
        torch.testing.assert_close(fe, ref_nets["mtt"].frontend(x), rtol=0, atol=1e-3)


@requires_weights
@pytest.mark.parametrize("timbral, temporal", [("dft", "banded"), ("dft", "im2col"), ("im2col", "im2col")])
@pytest.mark.parametrize("keys", [("msd",), ("mtt",), ("msd", "mtt")])
def test_fast_path_matches_tensorflow(ref, ref_nets, keys, timbral, temporal):
    """Alone and fused, every method: tags within 1e-3 of TF, penultimate cosine >= 0.9999."""
    with torch.inference_mode():
        fast = FastMusicnn([ref_nets[k] for k in keys], timbral=timbral, temporal=temporal)
        outs = fast(torch.from_numpy(ref["mel"]))
    for key, (logits, pen) in zip(keys, outs):
        assert np.abs(torch.sigmoid(logits).numpy() - ref[f"{key}_tags"]).max() < 1e-3
        assert _cosine(pen.numpy(), ref[f"{key}_penultimate"]).min() >= 0.9999


def _native_or_skip(native: bool | str | None) -> bool | str | None:
    """``native`` as given, or a skip where the compiled kernels (or that instruction set) cannot run here."""
    kernels = fast_module._kernels(None)
    if native and kernels.name != "native":
        pytest.skip("the compiled kernels are not built here (test_compiled_kernels_are_built: should they be?)")
    if isinstance(native, str) and native not in kernels.module.isas():
        pytest.skip(f"this CPU does not run {native}")
    return native


ISAS = [False, "avx2", "avx512"]  # torch's products, and the compiled kernels in each instruction set


@pytest.mark.parametrize("native", ISAS)
@pytest.mark.parametrize("k, channels, block", [(38, 20, 16), (67, 7, 3), (5, 9, 16)])
def test_dft_timbral_equals_direct_correlation(k, channels, block, native):
    """The DFT-basis conv gives conv2d's max over the valid mel positions, for any block split."""
    g = torch.Generator().manual_seed(k)
    w = torch.randn(channels, 1, 7, k, generator=g, dtype=torch.float64)
    x = torch.rand(2, 187, 96, generator=g) * 4
    xt = torch.nn.functional.pad(x, (0, 0, 3, 3))
    want = torch.nn.functional.conv2d(xt.double().unsqueeze(1), w).amax(dim=3)  # (2, C, 187)
    dft = _DftTimbral(w[:, 0].reshape(channels, -1).T, k, block=block, native=_native_or_skip(native))
    out = torch.empty(channels, 2 * 187)
    dft.pooled(_DftTimbral.spectra(xt), out, torch.empty(dft.scratch(2 * 187)))
    got = out.view(channels, 2, 187).permute(1, 0, 2)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-4 * want.abs().max().item())


@pytest.mark.parametrize(
    "k, before, frames, channels", [(128, 63, 8, 10), (64, 31, 11, 7), (32, 15, 5, 9), (5, 2, 187, 3)]
)
@pytest.mark.parametrize("native", ISAS)
def test_banded_temporal_equals_direct_correlation(k, before, frames, channels, native):
    """The banded product gives conv2d's (k x 1, TF "same" padding) max over mel, for any frame block."""
    g = torch.Generator().manual_seed(k)
    w = torch.randn(channels, 1, k, 1, generator=g, dtype=torch.float64)
    x = torch.rand(3, 187, 96, generator=g) * 4
    xp = torch.nn.functional.pad(x, (0, 0, before, k - 1 - before))
    want = torch.nn.functional.conv2d(xp.double().unsqueeze(1), w).amax(dim=3).transpose(1, 2)  # (3, 187, C)
    band = _BandedTemporal(w[:, 0, :, 0].T.float(), frames=frames, native=_native_or_skip(native))
    xt = torch.nn.functional.pad(x.transpose(1, 2), (before + 4, k - 1 - before)).contiguous()  # 4 extra frames first
    out = torch.empty(3, 187, channels)
    band.pooled(xt[..., 4:], out, torch.empty(band.scratch(3 * 96)))
    torch.testing.assert_close(out.double(), want, rtol=0, atol=1e-5 * want.abs().max().item())


def _avx2_fma() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx2" in flags and "fma" in flags


@pytest.mark.skipif(not (platform.machine() == "x86_64" and shutil.which("gcc") and _avx2_fma()),
                    reason="the compiled kernels build only with gcc, for x86-64 CPUs with AVX2 and FMA")
def test_compiled_kernels_are_built():
    """Where they can be built (this machine, CI) they are, and the fast path uses them: losing them is 1.5x slower."""
    assert fast_module._kernels(None).name == "native"
    assert fast_module._kernels(True).name == "native"
    assert fast_module._kernels(False).name == "torch"


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_compiled_kernels_equal_torch_at_awkward_shapes(isa):
    """Rows, columns and mel rows that leave remainders, strided operands: the same sums as torch's, in each
    instruction set (the column blocks are 2-3 vectors wide: 16-24 columns in AVX2, 32-48 in AVX-512)."""
    native, torch_k = fast_module._kernels(_native_or_skip(isa)), fast_module._kernels(False)
    assert native.isa == isa
    g = torch.Generator().manual_seed(7)
    w = torch.randn(3, 6, 5, generator=g)
    s = torch.randn(3, 5, 60, generator=g)[..., 1:54]  # rows of stride 60, M = 53: full blocks and a tail
    got, want = torch.empty(3, 6, 53), torch.empty(3, 6, 53)
    native.products(w, s, got), torch_k.products(w, s, want)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)
    inverse = torch.randn(14, 9, generator=g)  # r = 7 rows of u and of v, K = 9
    z = torch.randn(9, 2, 45, generator=g)
    first, second = z[:, 0], z[:, 1]  # (9, 45) at row stride 90
    got, want = torch.empty(45), torch.empty(45)
    native.inverse_max(inverse, 3, first, second, got, None)
    torch_k.inverse_max(inverse, 3, first, second, want, torch.empty(2 * 7 * 45))
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)
    x = torch.randn(2 * 17, 30, generator=g)[:, 2:28]  # 2 windows of 17 mel rows, J = 26 at stride 30
    band = torch.zeros(26, 48)
    for i in range(6):  # 6 frames of 7 channels, 21 taps each: the banded layout _BandedTemporal builds
        band[i : i + 21, i * 7 : (i + 1) * 7] = torch.randn(21, 7, generator=g)
    got, want = torch.empty(2, 42), torch.empty(2, 42)
    native.band_max(x, band, 21, 7, got, None)
    torch_k.band_max(x, band, 21, 7, want, torch.empty(2 * 17 * 48))
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)
    with pytest.raises(ValueError, match="float32"):
        native.products(w.double(), s, torch.empty(3, 6, 53))


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_kernels_flush_denormals_inside_only(isa):
    """Inside a kernel call denormals count as zero (each one would cost an Intel core a microcode assist);
    the calling thread gets its own floating-point mode back, so numpy and torch keep gradual underflow."""
    native = fast_module._kernels(_native_or_skip(isa))
    w, s, out = torch.full((1, 1, 1), 1e-39), torch.full((1, 1, 8), 1e30), torch.empty(1, 1, 8)
    assert w.item() != 0 and torch.bmm(w, s).min().item() > 0  # a denormal weight; torch's product is ~1e-9
    native.products(w, s, out)
    assert (out == 0).all()
    assert np.float32(1e-30) * np.float32(1e-10) != 0  # 1e-40 is denormal: still representable here


def test_instruction_sets_named_and_checked():
    """The default takes the widest set the CPU runs; a set it does not run, or an unknown name, is refused
    by name, and the extension itself refuses a set this CPU lacks rather than run an illegal instruction."""
    native = fast_module._kernels(_native_or_skip(True))
    isas = native.module.isas()
    assert native.isa == isas[0] and set(isas) <= {"avx512", "avx2"} and "avx2" in isas
    with pytest.raises(ValueError, match="unknown instruction set 'sse9'"):
        fast_module._kernels("sse9")
    with pytest.raises(RuntimeError, match="cannot run sse9 on this CPU"):
        native.module.perbin("sse9", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    if "avx512" not in isas:
        with pytest.raises(RuntimeError, match="cannot run avx512 here"):
            fast_module._kernels("avx512")


def test_native_kernels_required_but_missing(monkeypatch, caplog):
    """Where the extension is not importable (simulated: its module entry set to None), native=True says why,
    and the default falls back to torch with one warning per process (on x86-64, where it could have been built)."""
    monkeypatch.setitem(sys.modules, "soundalike.models.musicnn._kernels", None)
    monkeypatch.setitem(fast_module._WARNED, "missing", False)
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    with pytest.raises(RuntimeError, match=r"not available \(the extension was not built\)"):
        fast_module._kernels(True)
    with caplog.at_level(logging.WARNING, logger="soundalike"):
        assert fast_module._kernels(None).name == "torch"
        assert fast_module._kernels(None).name == "torch"
    warnings = [r.getMessage() for r in caplog.records if "compiled kernels are not in use" in r.getMessage()]
    assert len(warnings) == 1 and "the extension was not built" in warnings[0] and "1.5x slower" in warnings[0]
    assert fast_module._kernels(False).name == "torch"


def test_a_windows_outputs_do_not_depend_on_its_batch(model):
    """The same bits for a window whether it runs alone, with 1-8 others or in a part of a split batch, on 1 or
    2 threads: an index run batches windows of several files as they arrive (and a Ray run batches them on
    other machines), so its vectors must not depend on the timing. 1-3 rows took another path (~1e-6 off)."""
    feats = _mels(9, seed=5).numpy()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        whole = model.embed_batch(feats)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for n in range(1, 10):
                for i in range(0, 9, n):
                    out = model.embed_batch(feats[i : i + n])
                    np.testing.assert_array_equal(out.embeddings, whole.embeddings[i : i + n], err_msg=f"{n=} {i=}")
                    np.testing.assert_array_equal(out.tags, whole.tags[i : i + n], err_msg=f"{n=} {i=}")
            np.testing.assert_array_equal(model.embed_only(feats[:1]), whole.embeddings[:1])
        # a batch is cut into parts of at least MIN_ROWS windows (smaller ones would be padded for nothing)
        sizes = []
        split = fast_module.FastMusicnn(list(model._nets.values()), parts=2)
        forward = split._forward
        split._forward = lambda x: (sizes.append(x.shape[0]), forward(x))[1]  # a spy
        with torch.inference_mode():
            for n in (1, 3, 7, 8, 9):
                split(torch.from_numpy(feats[:n]))
        assert sizes == [1, 3, 7, 4, 4, 5, 4]
    finally:
        torch.set_num_threads(before)


@requires_weights
def test_fast_path_split_over_threads_gives_the_same_results(ref_nets):
    """Batches cut into parts, one thread each: same outputs, torch's thread count restored."""
    x = _mels(12, seed=11)  # parts of 4: a part is never smaller than fast.MIN_ROWS
    nets = [ref_nets["msd"], ref_nets["mtt"]]
    before = torch.get_num_threads()
    with torch.inference_mode():
        whole = FastMusicnn(nets, parts=1)(x)
        split = FastMusicnn(nets, parts=3)
        for (a_logits, a_pen), (b_logits, b_pen) in zip(whole, split(x)):
            torch.testing.assert_close(b_logits, a_logits, rtol=0, atol=1e-5)
            torch.testing.assert_close(b_pen, a_pen, rtol=0, atol=1e-5)
        torch.testing.assert_close(split.penultimate(x[:2]), whole[0][1][:2], rtol=0, atol=1e-5)
    assert torch.get_num_threads() == before

    # calls from several threads at once (a server) restore the count too, and agree
    from concurrent.futures import ThreadPoolExecutor

    def call(_):
        with torch.inference_mode():
            return split(x)[0][1]

    with ThreadPoolExecutor(3) as pool:
        for pen in pool.map(call, range(6)):
            torch.testing.assert_close(pen, whole[0][1], rtol=0, atol=1e-5)
    assert torch.get_num_threads() == before


def test_fast_path_runs_a_single_window_on_one_thread(ref_nets):
    """One window (a short file, a file's last chunk) runs on one intra-op thread, like every part
    of a split batch: with torch's 2 threads a fork/join per product made it ~50x slower on a busy
    machine. parts=1 (the previous fast path) keeps torch's threads."""
    nets = [ref_nets["msd"]]
    seen = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for parts in (None, 1):
            fast = FastMusicnn(nets, parts=parts)
            forward = fast._forward
            fast._forward = lambda x: (seen.append(torch.get_num_threads()), forward(x))[1]  # a spy
            with torch.inference_mode():
                fast(_mels(1, seed=3))
        assert seen == [1, 2]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_fast_path_rejects_unknown_timbral_method():
    with pytest.raises(ValueError, match="timbral"):
        FastMusicnn([MusicnnNet()], timbral="fft")
    with pytest.raises(ValueError, match="temporal"):
        FastMusicnn([MusicnnNet()], temporal="fft")
    # the defaults: the DFT timbral path runs the banded temporal convs, "im2col" the previous path as it was
    assert FastMusicnn([MusicnnNet()]).temporal == "banded"
    assert FastMusicnn([MusicnnNet()], timbral="im2col").temporal == "im2col"


# --- device selection (no GPU here: the CPU side of the code path) ---------------------


def test_select_device_on_this_machine(monkeypatch):
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == select_device(None).type == expected
    with pytest.raises(UserError, match="unknown device"):
        select_device("tpu")
    # a machine with CUDA: simulated by patching the availability check only
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto") == torch.device("cuda")
    assert select_device("cuda:1") == torch.device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto") == torch.device("cpu")
    with pytest.raises(UserError, match="no CUDA"):
        select_device("cuda")


@requires_weights
def test_device_options_on_the_cpu(audio, cache, model):
    """auto picks the CPU and the fast path here; an explicit cpu device runs the reference port on it."""
    if not torch.cuda.is_available():
        assert model.device.type == "cpu" and model.fast and model.batch_size == 32 < GPU_BATCH
    ref_cpu = Musicnn(cache_dir=cache, device="cpu", fast=False, batch_size=3)
    assert ref_cpu.device == torch.device("cpu") and not ref_cpu.fast
    feats = model.features(audio)
    a, b = model.embed_batch(feats), ref_cpu.embed_batch(feats)
    assert np.abs(a.tags - b.tags).max() < 1e-4
    assert _cosine(a.embeddings, b.embeddings).min() >= 0.99999
    windowed = ref_cpu.embed_windows(np.stack([np.resize(x, N_SAMPLES) for x in audio]))  # batches of 3, 1
    np.testing.assert_allclose(windowed.embeddings, b.embeddings, atol=1e-5)
    with pytest.raises(UserError, match="timbral"):
        Musicnn(cache_dir=cache, timbral="fft")


@requires_weights
def test_fast_embedder_equals_reference_embedder(audio, cache, model):
    slow = Musicnn(cache_dir=cache, fast=False)
    feats = model.features(audio)
    a, b = model.embed_batch(feats), slow.embed_batch(feats)
    assert np.abs(a.tags - b.tags).max() < 1e-4
    assert _cosine(a.embeddings, b.embeddings).min() >= 0.99999
    np.testing.assert_allclose(slow.embed_only(feats), b.embeddings, atol=1e-6)


@requires_weights
def test_embed_only_equals_embed_batch(audio, cache, model):
    feats = model.features(audio)
    full = model.embed_batch(feats).embeddings
    for m in (model, Musicnn(tags=("msd",), cache_dir=cache)):
        emb = m.embed_only(feats)
        assert emb.shape == (4, 200) and emb.dtype == np.float32
        np.testing.assert_allclose(emb, full, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(m.embed_only(feats[1:2]), full[1:2], rtol=1e-5, atol=1e-5)
    assert model.embed_only(np.zeros((0, 187, 96), np.float32)).shape == (0, 200)
    with pytest.raises(UserError):
        model.embed_only(np.zeros((2, 100, 96), np.float32))


@requires_weights
def test_short_clips_through_the_fast_path(ref, audio, model):
    """Clips of 1.3 s and 0.1 s (repeat-padded), alone and in an odd-sized batch."""
    clips = [audio[3], audio[0][:1600], audio[1], audio[2], audio[3]]
    out = model.embed_batch(log_mel(clips))
    assert out.embeddings.shape == (5, 200) and np.isfinite(out.embeddings).all()
    assert np.abs(out.tags[0, :50] - ref["msd_tags"][3]).max() < 1e-3
    np.testing.assert_allclose(out.embeddings[0], out.embeddings[4], atol=1e-5)
    one = model.embed_batch(log_mel([audio[0][:1600]]))
    np.testing.assert_allclose(one.embeddings[0], out.embeddings[1], rtol=1e-4, atol=1e-4)


# --- weights: missing, cached, corrupted ---------------------------------------------


def test_missing_weights_message_names_install_command(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError) as exc:
        Musicnn(weights_dir=empty, cache_dir=tmp_path / "cache")
    message = str(exc.value)
    assert "\n" not in message and INSTALL_COMMAND in message
    # the same through the environment
    monkeypatch.setenv(W.ENV_WEIGHTS_DIR, str(empty))
    with pytest.raises(ModelError, match="pip install --no-deps musicnn==0.1.0"):
        Musicnn(tags=("msd",), cache_dir=tmp_path / "cache")


@requires_weights
def test_conversion_is_cached_and_reused(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = W.load_weights("msd", cache_dir=cache)
    path = W.cache_path("msd", cache_dir=cache)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    mtime = path.stat().st_mtime_ns

    def no_convert(*args, **kwargs):
        raise AssertionError("converted again although the cache is valid")

    monkeypatch.setattr(W, "_convert", no_convert)
    second = W.load_weights("msd", cache_dir=cache, weights_dir=tmp_path / "nowhere")
    assert path.stat().st_mtime_ns == mtime
    assert W.tensor_digest(second) == W.tensor_digest(first) == W.TENSOR_SHA256["msd"]


@requires_weights
def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(W.ENV_CACHE, str(tmp_path / "envcache"))
    W.load_weights("mtt")
    assert W.cache_path("mtt").is_file() and str(W.cache_path("mtt")).startswith(str(tmp_path / "envcache"))


@requires_weights
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_cache_is_detected_and_reconverted(tmp_path, caplog, damage):
    cache = tmp_path / "cache"
    W.load_weights("msd", cache_dir=cache)
    path = W.cache_path("msd", cache_dir=cache)
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF  # inside the tensor data: still loads, wrong digest
    else:
        raw = raw[: len(raw) // 3]
    path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="soundalike"):
        tensors = W.load_weights("msd", cache_dir=cache)
    assert W.tensor_digest(tensors) == W.TENSOR_SHA256["msd"]
    assert "converting again" in caplog.text
    assert W.tensor_digest(W._read_cache(path, "msd")) == W.TENSOR_SHA256["msd"]  # repaired on disk


@requires_weights
def test_corrupted_cache_without_source_is_reported(tmp_path):
    cache = tmp_path / "cache"
    W.load_weights("msd", cache_dir=cache)
    path = W.cache_path("msd", cache_dir=cache)
    path.write_bytes(b"garbage")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="musicnn==0.1.0"):
        W.load_weights("msd", cache_dir=cache, weights_dir=tmp_path / "empty")


@requires_weights
def test_damaged_checkpoint_fails_its_checksum(tmp_path):
    src = W.locate_checkpoints() / "MSD_musicnn"
    dst = tmp_path / "weights" / "MSD_musicnn"
    dst.mkdir(parents=True)
    for name in (".index", ".data-00000-of-00001"):
        shutil.copyfile(src / name, dst / name)
    data = bytearray((dst / ".data-00000-of-00001").read_bytes())
    data[1000] ^= 0x01
    (dst / ".data-00000-of-00001").write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"\.data-00000-of-00001 has sha256 .* expected"):
        W.load_weights("msd", cache_dir=tmp_path / "cache", weights_dir=tmp_path / "weights")
