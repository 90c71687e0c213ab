"""A fast inference path for one or more musicnn networks that read the same log-mel.

``MusicnnNet`` (net.py) is the readable port; ``FastMusicnn`` computes the
same function from the same weights, reshaped for a CPU:

* the two timbral convolutions (7x38 and 7x67, 4.5 GFLOP per window for MSD +
  MTT as direct products) run in a 96-point DFT basis over the mel axis, 1.3
  GFLOP: per bin a product over the 7 frame taps, then the inverse DFT at the
  valid positions as two real products (folded by the symmetries of cos and
  sin), in blocks of 8 channels, each followed at once by the max over mel
  (``_DftTimbral``). ``timbral="im2col"`` keeps the previous layout below,
  for the benchmark's before/after;
* the three temporal convolutions (128, 64 and 32 frames x 1 mel bin, one
  input channel) are one product per kernel with a banded matrix over time,
  8 output frames at a time, whose left operand is the transposed mel itself
  with no patches copied (``_BandedTemporal``; ``temporal="im2col"`` keeps
  the previous layout below);
* in the previous layout the front-end convolutions are plain matrix
  products over im2col patches of the mel, 17 frames at a time so that the
  patches and the product stay in cache;
* the filters of every network are concatenated so that ONE product serves
  MSD and MTT together (N = 204 per network for each timbral kernel, 51 for
  each temporal one; on im2col patches the temporal kernels are
  zero-embedded at the right offset: 128 in a 128-frame window, 64 and 32
  together in a 64-frame one). Output columns are padded to a multiple of
  8, which MKL's sgemm runs much faster (306 -> 312 columns: 32 -> 52
  GFLOP/s on the dev box);
* each network's 1-channel input batch norm (a scalar affine map ``a x + b``)
  is folded into the filters (``a W``) and a per-(channel, frame) offset
  (``b`` times the sum of the taps that fall inside the unpadded mel, which
  differs only near the zero-padded edges), so the shared patches are built
  from the raw mel;
* the max over the mel axis runs on the product's output; a channel whose
  batch-norm scale is negative needs the min instead, so its filter is negated
  (min z = -max -z) and the sign restored after pooling. ReLU and batch norm
  then run on the 30-96x smaller pooled tensor (see ``_FreqPooledConv``),
  written straight into each network's (channel, frame) front-end output;
* windows are processed ``chunk`` at a time (default 2; 1 for ``timbral="im2col"``) through three
  scratch buffers allocated once per call and reused by every group and
  chunk (a few MB). This bounds the peak memory (the reference port needs
  640 MB at batch 32) and was worth ~15 % of the time by itself: fresh big
  tensors per chunk fragment the heap and are page-faulted in again;
* the three hot steps (the per-bin products, whose K = 14 is too small for
  MKL's bmm to run well; the inverse DFT with its max over mel; the banded
  products with theirs) run in compiled kernels where they were built
  (_kernels.c, ``native``; AVX-512 where the CPU has it, else AVX2 + FMA;
  denormals flushed to zero; the max is fused into the sums, so the big
  products are never stored, and the loops over blocks run in C too),
  through torch otherwise (``_TorchKernels``);
* the mid end and back end (about 15 % of the work now) are the reference modules, except
  that the back end pools the mid end's four blocks one by one rather than their
  concatenation (``MidEnd.parts``);
* windows are independent, so a batch is cut into one part per thread, each
  run with one intra-op thread (``parts``; see ``FastMusicnn._split``).

Results agree with ``MusicnnNet`` to float32 rounding (different summation
order), see tests/test_musicnn.py.
"""

from __future__ import annotations

import importlib
import logging
import platform
import threading
from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .net import N_MELS, MusicnnNet

__all__ = ["FastMusicnn", "instruction_set"]

log = logging.getLogger("soundalike")
_WARNED = {"missing": False}  # say once per process that the compiled kernels are missing

N_FRAMES = 187
TIMBRAL_PAD = 3  # frames of zeros before and after, for the 7-frame timbral kernels
# temporal kernels share GEMMs by window: (window, TF "same" pad before, kernels); a
# shorter kernel is zero-embedded so that its taps line up with its own padding.
# One 128 window for all three would cost 1.7x the FLOPs; two windows, 1.15x.
TEMPORAL_GROUPS = ((128, 63, (128,)), (64, 31, (64, 32)))
#: how the two timbral convs run: "dft" (a DFT basis over mel, the default) or
#: "im2col" (one direct product over im2col patches, the previous fast path)
TIMBRAL_METHODS = ("dft", "im2col")
#: how the three temporal convs run: "banded" (one product per kernel with a banded
#: matrix over time, on the mel itself: no patches; the default) or "im2col" (the
#: TEMPORAL_GROUPS products over im2col patches, the previous fast path)
TEMPORAL_METHODS = ("banded", "im2col")
# "banded": one group per kernel, each in its own window (no zero-embedding)
BANDED_GROUPS = ((128, 63, (128,)), (64, 31, (64,)), (32, 15, (32,)))
MAX_BEFORE = max(before for _, before, _ in BANDED_GROUPS)  # 63
MAX_AFTER = max(k - 1 - before for k, before, _ in BANDED_GROUPS)  # 64


#: the fewest windows the mid and back ends run at once (``FastMusicnn._mid_back``): from 4 rows up, a window's
#: outputs are the same bits whatever the batch (measured for 1-64 windows on this CPU; 1-3 rows differ ~1e-6)
MIN_ROWS = 4


def _at_least(x: torch.Tensor, rows: int) -> torch.Tensor:
    """``x`` with its last row repeated until it has ``rows`` rows (``x`` itself when it has enough)."""
    short = rows - x.shape[0]
    return x if short <= 0 or x.shape[0] == 0 else torch.cat([x, x[-1:].expand(short, *x.shape[1:])])


def _round_up(n: int, m: int = 8) -> int:
    return -(-n // m) * m


def _bn_affine(bn: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Inference batch norm as ``scale * x + shift``, float64 for the folding."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    return scale, bn.bias.double() - bn.running_mean.double() * scale


class _Group:
    """One GEMM-shaped front-end conv shared by all networks: weights, offsets, post-affine."""

    def __init__(self, weights: torch.Tensor, offsets: torch.Tensor, sign: torch.Tensor, post_scale: torch.Tensor, post_shift: torch.Tensor) -> None:
        # weights: (K, C) float64 already sign-flipped; offsets: (T, C); sign etc.: (C,)
        c = weights.shape[1]
        n = _round_up(c)
        self.channels = c
        self.weight = torch.zeros(weights.shape[0], n, dtype=torch.float32)
        self.weight[:, :c] = weights.float()
        self.offset = offsets.T.float().contiguous()  # (C, T)
        self.sign = sign.float()[:, None]
        self.post_scale = post_scale.float()[:, None]
        self.post_shift = post_shift.float()[:, None]

    def finish(self, pooled: torch.Tensor, channels: slice, out: torch.Tensor) -> None:
        """(b, c, T) max-pooled conv of ``channels`` -> ReLU -> batch norm, into ``out`` (b, c, T)."""
        torch.add(pooled, self.offset[channels], out=out)
        out.mul_(self.sign[channels]).relu_().mul_(self.post_scale[channels]).add_(self.post_shift[channels])


class _TorchKernels:
    """The fast path's inner steps as torch ops (MKL): the fallback, and the readable statement of each.

    ``timbral`` and ``temporal`` are the whole of ``_DftTimbral.pooled`` and
    ``_BandedTemporal.pooled``: loops over channel or frame blocks of the
    three steps below.
    """

    name = "torch"

    def timbral(self, dft: _DftTimbral, spectra: torch.Tensor, out: torch.Tensor, scratch: torch.Tensor) -> None:
        """Per block of channels: the per-bin products, then the inverse DFT and its max, into ``out`` (C, m)."""
        m, bins = spectra.shape[-1], len(dft.ORDER)
        for start, w in dft.blocks:
            cb = w.shape[1] // 2
            n = cb * m
            z = self.products(w, spectra, scratch[: 2 * bins * n].view(bins, 2 * cb, m))
            first = z.as_strided((bins, n), (2 * n, 1), z.storage_offset())  # [Re even; Im odd]
            second = z.as_strided((bins, n), (2 * n, 1), z.storage_offset() + n)  # [Im even; Re odd]
            pooled = out[start : start + cb].view(-1)
            self.inverse_max(dft.inverse, dft.pairs, first, second, pooled, scratch[2 * bins * n :])

    def temporal(self, banded: _BandedTemporal, xt: torch.Tensor, out: torch.Tensor, scratch: torch.Tensor) -> None:
        """Per block of output frames: the banded product and its max over mel, into ``out`` (b, 187, C)."""
        b, m = xt.shape[:2]
        rows = xt.reshape(b * m, -1)  # a view: xt is a slice of a contiguous tensor along its last axis
        k, c = banded.taps, banded.channels
        for s in range(0, N_FRAMES, banded.frames):
            t = min(banded.frames, N_FRAMES - s)
            band = banded.band[: t + k - 1] if t == banded.frames else banded.band[: t + k - 1, : _round_up(t * c)]
            self.band_max(rows[:, s : s + t + k - 1], band, k, c, out[:, s : s + t].view(b, t * c), scratch)

    def products(self, w: torch.Tensor, s: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out = w @ s`` batched over the 49 bins."""
        return torch.bmm(w, s, out=out)

    def inverse_max(self, inverse: torch.Tensor, pairs: int, first: torch.Tensor, second: torch.Tensor,
                    out: torch.Tensor, scratch: torch.Tensor) -> None:
        """``out = max over rows of (inverse[:r] @ first + g(inverse[r:] @ second))``, g = |.| on the first
        ``pairs`` rows."""
        r, n = inverse.shape[0] // 2, first.shape[1]
        y = scratch[: 2 * r * n].view(2, r, n)
        torch.mm(inverse[:r], first, out=y[0])  # u and w rows
        torch.mm(inverse[r:], second, out=y[1])  # v and y rows
        y[1, :pairs].abs_()
        torch.amax(y[0].add_(y[1]), dim=0, out=out)

    def band_max(self, x: torch.Tensor, band: torch.Tensor, taps: int, channels: int, out: torch.Tensor,
                 scratch: torch.Tensor) -> None:
        """``out[b] = max over each window's rows of (x @ band)[:, :N]``; x (B * mels, J), band (J, n), out (B, N)."""
        n = band.shape[1]
        z = torch.mm(x, band, out=scratch[: x.shape[0] * n].view(-1, n))
        torch.amax(z.view(out.shape[0], -1, n)[..., : out.shape[1]], dim=1, out=out)


class _NativeKernels(_TorchKernels):
    """The same steps in compiled code (_kernels.c): 1.2-1.7x the speed of MKL at these shapes.

    ``isa`` is the instruction set they run: "avx512" or "avx2" (AVX2 + FMA).

    ``timbral`` and ``temporal`` are one call each, looping over the blocks in C
    (no Python, and no GIL, between blocks); the fast path calls only those.
    ``products``, ``inverse_max`` and ``band_max`` run one step each, so that
    the tests can hold every step against torch's at shapes the network never
    makes (remainder rows, columns and mel rows).
    """

    name = "native"

    def __init__(self, module, isa: str) -> None:
        self.module, self.isa = module, isa

    def timbral(self, dft: _DftTimbral, spectra: torch.Tensor, out: torch.Tensor, scratch: torch.Tensor) -> None:
        (bins, k, m), cb, cb_last = spectra.shape, dft.blocks[0][1].shape[1] // 2, dft.blocks[-1][1].shape[1] // 2
        _check(spectra.is_contiguous() and out.is_contiguous() and out.shape == (dft.channels, m)
               and scratch.numel() >= 2 * bins * cb * m and dft.packed.shape[0] == 2 * bins * k * dft.channels
               and dft.inverse.is_contiguous() and dft.inverse.shape[1] == bins, spectra, out, scratch, dft.packed)
        self.module.timbral(self.isa, dft.packed.data_ptr(), len(dft.blocks), cb, cb_last, bins, k,
                            spectra.data_ptr(), m, scratch.data_ptr(), dft.inverse.data_ptr(), dft.rows, dft.pairs,
                            out.data_ptr())

    def temporal(self, banded: _BandedTemporal, xt: torch.Tensor, out: torch.Tensor, scratch: torch.Tensor) -> None:
        b, m, length = xt.shape
        k, c = banded.taps, banded.channels
        _check(length >= N_FRAMES + k - 1 and xt.stride(0) == m * xt.stride(1) and out.is_contiguous()
               and out.shape == (b, N_FRAMES, c), xt, out, banded.band)
        self.module.temporal(self.isa, xt.data_ptr(), xt.stride(1), b, m, N_FRAMES, banded.band.data_ptr(),
                             banded.band.stride(0), banded.frames, c, k, out.data_ptr(), out.stride(0))

    def products(self, w: torch.Tensor, s: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        (b, r, k), m = w.shape, s.shape[-1]
        _check(out.shape == (b, r, m) and s.shape[:2] == (b, k), w, s, out)
        self.module.perbin(self.isa, w.data_ptr(), s.data_ptr(), out.data_ptr(), b, r, k, m,
                           w.stride(0), w.stride(1), s.stride(0), s.stride(1), out.stride(0), out.stride(1))
        return out

    def inverse_max(self, inverse: torch.Tensor, pairs: int, first: torch.Tensor, second: torch.Tensor,
                    out: torch.Tensor, scratch: torch.Tensor) -> None:
        (k, n), r = first.shape, inverse.shape[0] // 2
        _check(second.shape == (k, n) and second.stride(0) == first.stride(0) and out.shape == (n,)
               and inverse.shape == (2 * r, k) and inverse.is_contiguous(), inverse, first, second, out)
        self.module.inverse_max(self.isa, inverse.data_ptr(), inverse[r:].data_ptr(), first.data_ptr(),
                                second.data_ptr(), first.stride(0), out.data_ptr(), r, k, n, pairs)

    def band_max(self, x: torch.Tensor, band: torch.Tensor, taps: int, channels: int, out: torch.Tensor,
                 scratch: torch.Tensor) -> None:
        (rows, j), (b, n) = x.shape, out.shape
        _check(band.shape[0] == j and band.shape[1] >= n and rows % b == 0, x, band, out)
        self.module.band_max(self.isa, x.data_ptr(), x.stride(0), b, rows // b, band.data_ptr(), band.stride(0), j, n,
                             channels, taps, out.data_ptr(), out.stride(0))


def _check(shapes_ok: bool, *tensors: torch.Tensor) -> None:
    """The compiled kernels read raw float32 buffers: refuse anything else rather than read out of bounds."""
    if not shapes_ok or any(x.dtype != torch.float32 or x.device.type != "cpu" or x.stride(-1) != 1 for x in tensors):
        raise ValueError(
            "soundalike's compiled kernels need float32 CPU tensors of matching shapes with unit inner strides"
        )


def _kernels(native: bool | str | None):
    """The fast path's inner steps: compiled (_kernels.c) or torch's.

    ``native``: None uses the compiled kernels where they built and the CPU
    has AVX2 + FMA, in the widest instruction set it runs (AVX-512 before
    AVX2), and says once per process, on an x86-64 CPU, when they are
    missing; True requires them (an error says what is missing); "avx512" or
    "avx2" requires that set; False always uses torch.
    """
    if native is False:
        return _TorchKernels()
    module, missing = None, None
    try:
        module = importlib.import_module(f"{__package__}._kernels")
    except ImportError:
        missing = "the extension was not built"
    isas = module.isas() if module is not None else ()
    if module is not None and not isas:
        missing = "this CPU lacks AVX2 or FMA"
    if isinstance(native, str):
        if native not in ("avx512", "avx2"):
            raise ValueError(f"native: unknown instruction set {native!r} (choose avx512 or avx2)")
        if native not in isas:
            raise RuntimeError(f"soundalike's compiled kernels cannot run {native} here: "
                               f"{missing or 'this CPU lacks it'}")
        return _NativeKernels(module, native)
    if isas:
        return _NativeKernels(module, isas[0])
    if native:
        raise RuntimeError(
            f"soundalike's compiled kernels are not available ({missing}): they build with the package where a "
            "C compiler is present (pip install -e . with gcc), and need a CPU with AVX2 and FMA"
        )
    if not _WARNED["missing"] and platform.machine().lower() in ("x86_64", "amd64"):
        _WARNED["missing"] = True
        log.warning("soundalike's compiled kernels are not in use (%s): the model runs through torch, about 1.5x "
                    "slower; reinstall with a C compiler present (pip install -e . with gcc) to build them", missing)
    return _TorchKernels()


def instruction_set() -> str:
    """What the fast path's hot steps run in by default here: "avx512", "avx2" (compiled kernels) or "torch"."""
    kernels = _kernels(None)
    return kernels.isa if isinstance(kernels, _NativeKernels) else "torch"


class _DftTimbral:
    """One timbral kernel shape (7 x k) of every network, correlated in a 96-point DFT basis over mel.

    Along the 96 mel bins the conv is a cross-correlation, and the circular
    correlation of a 96-point DFT equals it at the P = 97 - k valid positions
    (p + m <= 95: nothing wraps). So per DFT bin f the conv is a small complex
    product over the 7 frame taps (K = 14 real), and the inverse DFT at the P
    positions is a real matrix over the 98 (bin, re/im) coefficients:

        Z[f, c, t] = sum_dt X[t + dt, f] conj(W[c, dt, f])
        z[p, c, t] = sum_f c_f(p) Re Z[f] + s_f(p) Im Z[f],   c = w cos(2 pi f p / 96) / 96, s = -w sin(...)

    The inverse is folded by the symmetries of cos and sin: with Ce, Co, Se,
    So the sums over even and odd bins of the cos and sin terms at p,

        z[p] = u + v,  z[48 - p] = u - v       (u = Ce + So, v = Co + Se)
        z[48 + p] = w + y,  z[96 - p] = w - y  (w = Ce - So, y = Se - Co)

    so rows for p = 0..24 give every position, and the max of a pair is
    ``u + |v|``. For the 7x38 kernel (P = 59) that is 36 rows of 49 + 49
    instead of 59 of 98 (measured: 21 -> 17 ms per window for both networks'
    408 channels); for 7x67 (P = 30) it is 25 rows and about even. To make
    u and w, and v and y, one product each, even bins put (re, im) rows first
    and odd bins (im, re), so Z's first rows per bin are [Re even; Im odd]
    and the second [Im even; Re odd], each a plain strided matrix.

    In all, 1.3 GFLOP (1.75 unfolded) for both kernel shapes of MSD + MTT per window instead
    of 4.5 for the direct product. Channels go through in blocks of
    ``block`` so that Z and z of a block stay in cache; the max over the mel
    positions follows each block's products at once.
    """

    EVEN = list(range(0, N_MELS // 2 + 1, 2))  # 25 bins: 0, 2, ..., 48
    ODD = list(range(1, N_MELS // 2, 2))  # 24 bins: 1, 3, ..., 47
    ORDER = EVEN + ODD
    # as index tensors for index_select: indexing with a Python list (x[..., list]) took about 8 ms a call
    _EVEN, _ODD, _ORDER = torch.tensor(EVEN), torch.tensor(ODD), torch.tensor(ORDER)

    def __init__(self, weights: torch.Tensor, k: int, *, block: int = 16, native: bool | str | None = None) -> None:
        # weights: (7 * k, C) float64, rows ordered (frame tap, mel tap), as _fold makes them
        self.kernels = _kernels(native)
        c = weights.shape[1]
        wf = torch.fft.rfft(weights.T.reshape(c, 7, k), n=N_MELS, dim=-1)  # (C, 7, 49) complex128
        re_rows = torch.cat([wf.real, wf.imag], dim=1)  # Re(X conj W) = Xr Wr + Xi Wi; (C, 14, 49)
        im_rows = torch.cat([-wf.imag, wf.real], dim=1)  # Im(X conj W) = Xi Wr - Xr Wi
        self.channels, self.positions, self.block = c, N_MELS - k + 1, block
        self.blocks = []  # (first channel, (49 bins in ORDER, 2 cb, 14))
        for j in range(0, c, block):
            re, im = re_rows[j : j + block], im_rows[j : j + block]
            per_bin = torch.cat([torch.cat([re, im]).index_select(-1, self._EVEN),
                                 torch.cat([im, re]).index_select(-1, self._ODD)], dim=-1)
            self.blocks.append((j, per_bin.permute(2, 0, 1).float().contiguous()))
        # the blocks one after the other in one buffer (the compiled kernel walks it), each block a view into it
        self.packed = torch.cat([w.reshape(-1) for _, w in self.blocks])
        parts = self.packed.split([w.numel() for _, w in self.blocks])
        self.blocks = [(j, part.view(w.shape)) for (j, w), part in zip(self.blocks, parts)]
        f = torch.arange(N_MELS // 2 + 1, dtype=torch.float64)
        weight = torch.full_like(f, 2.0)
        weight[0] = weight[-1] = 1.0  # DC and Nyquist count once in the inverse real DFT
        rows = []  # (pair max with |.|, first-rows coefficients, second-rows coefficients)
        for p in range(N_MELS // 4 + 1):
            cos = weight * torch.cos(2 * torch.pi * f * p / N_MELS) / N_MELS
            sin = -weight * torch.sin(2 * torch.pi * f * p / N_MELS) / N_MELS
            ev, od = self._EVEN, self._ODD
            for lo, hi, g1, g2 in (
                (p, N_MELS // 2 - p, torch.cat([cos[ev], sin[od]]), torch.cat([sin[ev], cos[od]])),  # u, v
                (N_MELS // 2 + p, N_MELS - p, torch.cat([cos[ev], -sin[od]]), torch.cat([sin[ev], -cos[od]])),  # w, y
            ):
                if lo < self.positions or hi < self.positions:
                    rows.append((lo < self.positions and hi < self.positions and lo != hi, g1, g2 if lo < self.positions else -g2))
        rows.sort(key=lambda r: not r[0])  # the |.| rows first
        self.pairs = sum(r[0] for r in rows)
        self.rows = len(rows)
        self.inverse = torch.cat([torch.stack([r[1] for r in rows]), torch.stack([r[2] for r in rows])]).float()  # (2 R, 49)

    @classmethod
    def spectra(cls, xt: torch.Tensor) -> torch.Tensor:
        """(b, 193, 96) time-padded mel -> (49, 14, b * 187): Re and Im of the 7 frame taps per bin, bins in ORDER."""
        b = xt.shape[0]
        spec = torch.fft.rfft(xt.double(), dim=-1).index_select(-1, cls._ORDER)  # (b, 193, 49); float64: it is tiny
        ri = torch.stack([spec.real, spec.imag]).float()  # (2, b, 193, 49)
        taps = ri.unfold(2, 7, 1)  # (2, b, 187, 49, 7)
        return taps.permute(3, 0, 4, 1, 2).reshape(spec.shape[-1], 14, b * N_FRAMES)

    def scratch(self, m: int) -> int:
        """Floats of scratch this needs for m frames."""
        n = min(self.block, self.channels) * m
        return 2 * len(self.ORDER) * n + 2 * self.rows * n

    def pooled(self, spectra: torch.Tensor, out: torch.Tensor, scratch: torch.Tensor) -> None:
        """Max over the valid mel positions of the correlation, into ``out`` (C, m)."""
        self.kernels.timbral(self, spectra, out, scratch)


class _BandedTemporal:
    """One temporal kernel (k x 1) of every network as a product with a banded matrix over time.

    The conv runs along time for each mel bin on its own, with one input
    channel, so for a block of ``frames`` output frames starting at s,

        z[m, (i, c)] = sum_j x[m, s + j] B[j, (i, c)],   B[j, (i, c)] = w[c, j - i] if 0 <= j - i < k else 0

    with j over the frames + k - 1 input frames the block reads. The left
    operand is the transposed, zero-padded mel itself, a strided view with
    no copy (the im2col path copies 128 values per mel bin and frame), and
    the (m, (i, c)) output is max-pooled over m at once. The band costs
    (frames + k - 1) / k times the taps' work: 8 frames add 5 % to the
    128 kernel, 11 % to 64 and 22 % to 32, less than the 33 % the im2col
    path spends by zero-embedding 32 in a 64-frame window.
    """

    def __init__(self, weights: torch.Tensor, *, frames: int, native: bool | str | None = None) -> None:
        # weights: (k, C), already folded (input batch norm, sign) as _fold makes them
        self.kernels = _kernels(native)
        k, c = weights.shape
        self.taps, self.channels, self.frames = k, c, frames
        self.columns = _round_up(frames * c)
        band = torch.zeros(frames + k - 1, self.columns)
        for i in range(frames):
            band[i : i + k, i * c : (i + 1) * c] = weights
        self.band = band

    def scratch(self, rows: int) -> int:
        return rows * self.columns

    def pooled(self, xt: torch.Tensor, out: torch.Tensor, scratch: torch.Tensor) -> None:
        """xt (b, 96, L): mel over time from this kernel's first padded frame; ``out`` (b, 187, C)."""
        self.kernels.temporal(self, xt, out, scratch)


_POOL_LOCK = threading.Lock()
_THREADS_LOCK = threading.Lock()
_THREADS = {"active": 0, "before": 0}  # calls inside _one_intra_op_thread, and the count to restore


def _intra_op_threads() -> int:
    """torch's intra-op thread count as the user set it, even while calls hold it at 1."""
    with _THREADS_LOCK:
        return _THREADS["before"] if _THREADS["active"] else torch.get_num_threads()


@contextmanager
def _one_intra_op_thread():
    """torch.set_num_threads(1) while any call is inside; the first in saves the count, the last out restores it.

    Counted, so that calls from several threads at once (a web server) cannot
    leave the process at one thread by restoring each other's 1.
    """
    with _THREADS_LOCK:
        if _THREADS["active"] == 0:
            _THREADS["before"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS["active"] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS["active"] -= 1
            if _THREADS["active"] == 0:
                torch.set_num_threads(_THREADS["before"])


def _valid_tap_sums(w: torch.Tensor, pad_before: int) -> torch.Tensor:
    """(C, k) per-frame tap sums -> (T, C): sum of the taps landing on real frames at each output frame."""
    c, k = w.shape
    t = torch.arange(N_FRAMES).view(-1, 1)
    src = t + torch.arange(k).view(1, -1) - pad_before  # (T, k) input frame of each tap
    inside = ((src >= 0) & (src < N_FRAMES)).double()
    return inside @ w.T  # (T, C)


class FastMusicnn:
    """The front end of several musicnn networks fused into shared GEMMs.

    ``FastMusicnn(nets)(mel)`` returns ``[(logits, penultimate), ...]``, one
    pair per network, as ``net(mel)`` would. ``mel`` is (B, 187, 96) float32.
    Call it under ``torch.inference_mode()``.

    The batch is cut into ``parts`` (default: ``torch.get_num_threads()``),
    each run in its own thread with one intra-op thread (see ``_split``);
    ``parts=1`` runs it whole in the calling thread, with torch's intra-op
    threads, as the previous fast path did. ``timbral``, ``chunk``,
    ``channel_block`` and ``frame_block`` choose the layout (module
    docstring); the defaults are the measured best. ``native`` chooses how the
    hot steps run: the compiled kernels (_kernels.c) where they built and the
    CPU has AVX2 + FMA, in its widest instruction set (None, the default),
    always (True: an error where they cannot), in one set ("avx512" or
    "avx2") or never (False: torch's products).
    """

    def __init__(
        self,
        nets: Sequence[MusicnnNet],
        *,
        timbral: str = "dft",
        temporal: str = "auto",
        parts: int | None = None,
        chunk: int | None = None,
        channel_block: int = 8,
        frame_block: int | None | str = "auto",
        band_frames: int = 8,
        native: bool | str | None = None,
    ) -> None:
        if not nets:
            raise ValueError("FastMusicnn needs at least one network")
        if timbral not in TIMBRAL_METHODS:
            raise ValueError(f"timbral must be one of {TIMBRAL_METHODS}, got {timbral!r}")
        if temporal == "auto":  # timbral="im2col" is the previous fast path as it was, temporal convs too
            temporal = "banded" if timbral == "dft" else "im2col"
        if temporal not in TEMPORAL_METHODS:
            raise ValueError(f"temporal must be one of {TEMPORAL_METHODS}, got {temporal!r}")
        self.nets = list(nets)
        self.chunk = chunk or (2 if timbral == "dft" else 1)  # None: 2 windows per pass for "dft", 1 for "im2col"
        self.timbral = timbral
        self.temporal = temporal
        self.parts = parts  # None: torch.get_num_threads() at each call
        self._pool, self._pool_size = None, 0
        # "auto": 17 frames per block for "dft"; unblocked for "im2col", exactly the previous fast path
        self.frame_block = (17 if timbral == "dft" else None) if frame_block == "auto" else frame_block
        self.temporal_groups = BANDED_GROUPS if temporal == "banded" else TEMPORAL_GROUPS
        timbral: list[list[tuple]] = [[], []]
        temporal: list[list[tuple]] = [[] for _ in self.temporal_groups]
        for net in self.nets:
            fe = net.frontend
            a, b = (v.item() for v in _bn_affine(fe.input_bn))
            for i, block in enumerate(fe.timbral):
                timbral[i].append(self._fold(block, a, b, pad_before=TIMBRAL_PAD))
            for block in fe.temporal:
                k = block.conv.kernel_size[0]
                g = next(g for g, (window, _, ks) in enumerate(self.temporal_groups) if k in ks)
                window, before, _ = self.temporal_groups[g]
                temporal[g].append(self._fold(block, a, b, pad_before=block.time_pad[0], window=window, embed=before - block.time_pad[0]))
        self.kernels = [self.nets[0].frontend.timbral[i].conv.kernel_size[1] for i in range(2)]
        self.groups = [self._group(parts) for parts in (*timbral, *temporal)]
        self._dft = []
        if self.timbral == "dft":
            self._dft = [
                _DftTimbral(torch.cat([p[0] for p in parts], dim=-1), k, block=channel_block, native=native)
                for parts, k in zip(timbral, self.kernels)
            ]
        self._banded = []
        if self.temporal == "banded":
            self._banded = [
                _BandedTemporal(g.weight[:, : g.channels], frames=band_frames, native=native) for g in self.groups[2:]
            ]
        # where each group's channels go: (network, channels in the group, first row of its front-end output)
        self._targets: list[list[tuple[int, slice, int]]] = [[] for _ in self.groups]
        for j in range(len(self.nets)):
            row = 0  # net.py's order: the groups in turn, each network's parts within a group in turn
            for g, parts in enumerate((*timbral, *temporal)):
                per_net = len(parts) // len(self.nets)
                start = sum(p[0].shape[1] for p in parts[: j * per_net])
                for part in parts[j * per_net : (j + 1) * per_net]:
                    width = part[0].shape[1]
                    self._targets[g].append((j, slice(start, start + width), row))
                    start, row = start + width, row + width
        self.frontend_channels = row

    @staticmethod
    def _fold(block, a: float, b: float, *, pad_before: int, window: int = 0, embed: int | None = None):
        """One conv block -> (W (K, C), offsets (T, C), sign, post scale, post shift), float64."""
        w = block.conv.weight.double()[:, 0]  # (C, kt, km)
        bias = block.conv.bias.double()
        post_scale, post_shift = _bn_affine(block.bn)
        sign = torch.where(post_scale >= 0, 1.0, -1.0).double()
        offsets = bias + b * _valid_tap_sums(w.sum(dim=2), pad_before)  # (T, C)
        if embed is None:  # timbral: K ordered (frame tap, mel tap), as the patches are
            mat = (a * w).reshape(w.shape[0], -1).T
        else:  # temporal (kt x 1): place the k taps at `embed` inside the group's window
            mat = torch.zeros(window, w.shape[0], dtype=torch.float64)
            mat[embed : embed + w.shape[1]] = (a * w[:, :, 0]).T
        # pool with max on s*z: s*max(s*z) is max z for s=+1 and min z for s=-1
        return mat * sign, offsets * sign, sign, post_scale, post_shift

    @staticmethod
    def _group(parts: list[tuple]) -> _Group:
        return _Group(*(torch.cat([p[i] for p in parts], dim=-1) for i in range(5)))

    def _shapes(self) -> list[tuple[int, int, int]]:
        """Per group, per window: (patch rows, patch length, padded output columns)."""
        timbral = [(N_FRAMES * (N_MELS - k + 1), 7 * k, g.weight.shape[1]) for k, g in zip(self.kernels, self.groups)]
        groups = zip(self.temporal_groups, self.groups[2:])
        temporal = [(N_FRAMES * N_MELS, w, g.weight.shape[1]) for (w, _, _), g in groups]
        return timbral + temporal

    def _frontend_chunk(self, x: torch.Tensor, fes: list[torch.Tensor], cols_buf: torch.Tensor, z_buf: torch.Tensor,
                        t_buf: torch.Tensor) -> None:
        """(b, 187, 96) raw log-mel -> each network's (b, 561, 187) front-end output, written into ``fes``.

        The patches and the product go to the scratch buffers, reused by every
        group and chunk: fresh big tensors per chunk would fragment the heap (small
        pooled outputs land in the freed space) and grow the resident memory with
        the batch size. Each group's pooled output goes through its ReLU and batch
        norm straight into the networks' (channel, frame) layout.
        """
        b = x.shape[0]
        xt = F.pad(x, (0, 0, TIMBRAL_PAD, TIMBRAL_PAD))  # (b, 193, 96)
        shapes = self._shapes()
        work = []  # (im2col view, group index, shape) for the convs run as products over patches

        def finish(i: int, pooled: torch.Tensor) -> None:  # group i's pooled conv, (b, C, 187), any strides
            for j, channels, row in self._targets[i]:
                rows = slice(row, row + channels.stop - channels.start)
                self.groups[i].finish(pooled[:, channels], channels, fes[j][:, rows])

        if self._dft:
            spectra = _DftTimbral.spectra(xt)
            m = b * N_FRAMES
            for i, dft in enumerate(self._dft):
                pooled = z_buf[: dft.channels * m].view(dft.channels, m)
                dft.pooled(spectra, pooled, cols_buf)
                finish(i, pooled.view(dft.channels, b, N_FRAMES).transpose(0, 1))
        else:
            for i, (k, shape) in enumerate(zip(self.kernels, shapes)):
                work.append((xt.unfold(1, 7, 1).unfold(2, k, 1), i, shape))  # (b, T, P, 7, k)
        temporal = list(enumerate(self.temporal_groups, start=2))
        if self._banded:
            xT = F.pad(x.transpose(1, 2), (MAX_BEFORE, MAX_AFTER)).contiguous()  # (b, 96, 187 + 127)
            for band, (i, (_, before, _)) in zip(self._banded, temporal):
                out = t_buf[: b * N_FRAMES * band.channels].view(b, N_FRAMES, band.channels)
                band.pooled(xT[..., MAX_BEFORE - before :], out, z_buf)
                finish(i, out.transpose(1, 2))
        else:
            for i, (window, before, _) in temporal:
                xp = F.pad(x, (0, 0, before, window - 1 - before))  # (b, 187 + window - 1, 96)
                work.append((xp.unfold(1, window, 1), i, shapes[i]))  # (b, T, M, window)
        step = self.frame_block or N_FRAMES
        for view, i, (rows, length, n) in work:
            g = self.groups[i]
            per_frame = rows // N_FRAMES
            pooled = torch.empty(b, N_FRAMES, n) if step < N_FRAMES else None
            for s in range(0, N_FRAMES, step):  # a block of frames: patches and product stay in cache
                e = min(N_FRAMES, s + step)
                r = b * (e - s) * per_frame
                part = view[:, s:e]
                cols = cols_buf[: r * length].view(part.shape).copy_(part).view(r, length)
                z = torch.mm(cols, g.weight, out=z_buf[: r * n].view(r, n)).view(b, e - s, per_frame, n)
                if pooled is None:
                    pooled = z.amax(dim=2)
                else:
                    torch.amax(z, dim=2, out=pooled[:, s:e])
            finish(i, pooled.transpose(1, 2))

    def frontend(self, mel: torch.Tensor) -> list[torch.Tensor]:
        """(B, 187, 96) -> per network its (B, 561, 187) front-end output, as ``net.frontend``."""
        if mel.ndim != 3 or mel.shape[1:] != (N_FRAMES, N_MELS):
            raise ValueError(f"expected (B, {N_FRAMES}, {N_MELS}) log-mel, got {tuple(mel.shape)}")
        x = mel.float().contiguous()
        n = x.shape[0]
        shapes = self._shapes()
        chunk = min(self.chunk, n)
        gemm = (shapes[:2] if not self._dft else []) + (shapes[2:] if not self._banded else [])
        step = min(self.frame_block or N_FRAMES, N_FRAMES)
        cols = [r // N_FRAMES * step * k for r, k, _ in gemm]
        outs = [r // N_FRAMES * step * c for r, _, c in gemm]
        cols += [d.scratch(N_FRAMES) for d in self._dft]
        outs += [d.channels * N_FRAMES for d in self._dft]
        outs += [band.scratch(N_MELS) for band in self._banded]
        cols_buf = torch.empty(chunk * max(cols, default=0))
        z_buf = torch.empty(chunk * max(outs))
        t_buf = torch.empty(chunk * N_FRAMES * max(g.channels for g in self.groups[2:]) if self._banded else 0)
        fes = [torch.empty(n, self.frontend_channels, N_FRAMES) for _ in self.nets]
        for i in range(0, n, chunk):
            self._frontend_chunk(x[i : i + chunk], [fe[i : i + chunk] for fe in fes], cols_buf, z_buf, t_buf)
        return fes

    def _mid_back(self, net: MusicnnNet, fe: torch.Tensor) -> torch.Tensor:
        """The back end's pooled input: the mid end's four blocks pooled one by one, not concatenated first.

        Fewer than ``MIN_ROWS`` windows are padded to that many (copies of the last) and cut back after: torch's
        CPU convolution and dense products take another path for 1-3 rows, whose results differ in the last
        float32 bits, so a window's vector would depend on how many windows shared its batch (or its part of one).
        The front end's kernels are per window already. The padding costs at most three windows' mid and back ends.
        """
        return torch.cat([net.backend.pool(part) for part in net.midend.parts(_at_least(fe, MIN_ROWS))], dim=1)

    def _forward(self, mel: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        n = mel.shape[0]
        return [tuple(out[:n] for out in net.backend.head(self._mid_back(net, fe)))
                for net, fe in zip(self.nets, self.frontend(mel))]

    def _penultimate(self, mel: torch.Tensor) -> torch.Tensor:
        net = self.nets[0]
        return net.backend.penultimate(self._mid_back(net, self.frontend(mel)[0]))[: mel.shape[0]]

    def _split(self, fn, mel: torch.Tensor) -> list:
        """``fn`` on parts of the batch, one single-threaded part per thread; a list of the results.

        The fast path is many mid-sized products, and letting every one of them
        fork and join ``torch.get_num_threads()`` OpenMP/MKL threads costs a
        barrier per product: on a busy machine one descheduled thread stalls
        them all (measured at load 8 on 2 cores: 6 s per window with 2 threads
        against 0.18 s with 1). Windows are independent, so each thread takes a
        share of them with 1 intra-op thread instead. The thread count is set
        to 1 only while calls run (``_one_intra_op_thread``) and restored after.
        """
        # parts of at least MIN_ROWS windows: a smaller one is padded to that many (_mid_back), work for nothing
        threads = min(self.parts or _intra_op_threads(), max(1, mel.shape[0] // MIN_ROWS))
        if self.parts == 1:  # the previous fast path: the whole batch on torch's intra-op threads
            return [fn(mel)]
        if threads <= 1:  # one window (a short file, a file's last chunk): one thread, never a fork/join per product
            with _one_intra_op_thread():
                return [fn(mel)]
        from concurrent.futures import ThreadPoolExecutor

        with _POOL_LOCK:
            if self._pool is None or self._pool_size < threads:
                self._pool, self._pool_size = ThreadPoolExecutor(threads, thread_name_prefix="musicnn"), threads
            pool = self._pool
        inference = torch.is_inference_mode_enabled()

        def part(x: torch.Tensor):
            torch.set_num_threads(1)  # this pool thread's own OpenMP setting, and MKL's
            with torch.inference_mode(inference):
                return fn(x)

        with _one_intra_op_thread():
            return list(pool.map(part, torch.tensor_split(mel, threads)))

    def __call__(self, mel: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        parts = self._split(self._forward, mel)
        return [(torch.cat([p[i][0] for p in parts]), torch.cat([p[i][1] for p in parts])) for i in range(len(self.nets))]

    def penultimate(self, mel: torch.Tensor) -> torch.Tensor:
        """The first network's 200-d penultimate layer only (no tag head); build with that one net."""
        return torch.cat(self._split(self._penultimate, mel))
