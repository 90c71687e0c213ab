"""A fast inference path for one or more musicnn networks that read the same log-mel.

``MusicnnNet`` (net.py) is the readable port; ``FastMusicnn`` computes the
same function from the same weights, reshaped for a CPU:

* the five front-end convolutions become four plain matrix products over
  im2col patches of the mel, and the filters of every network are
  concatenated so that ONE product serves MSD and MTT together (N = 204 per
  network for each timbral kernel; the temporal kernels are zero-embedded at
  the right offset: 128 in a 128-frame window, 64 and 32 together in a
  64-frame one). Output columns are padded to a multiple of 8, which MKL's
  sgemm runs much faster (306 -> 312 columns: 32 -> 52 GFLOP/s on the dev
  box);
* each network's 1-channel input batch norm (a scalar affine map ``a x + b``)
  is folded into the filters (``a W``) and a per-(channel, frame) offset
  (``b`` times the sum of the taps that fall inside the unpadded mel, which
  differs only near the zero-padded edges), so the shared patches are built
  from the raw mel;
* the max over the mel axis runs on the product's output; a channel whose
  batch-norm scale is negative needs the min instead, so its filter is negated
  (min z = -max -z) and the sign restored after pooling. ReLU and batch norm
  then run on the 30-96x smaller pooled tensor (see ``_FreqPooledConv``);
* patches are processed ``chunk`` windows at a time (default 1) through two
  scratch buffers allocated once per call and reused by every group and
  chunk (about 12 + 18 MB per window in the chunk). This bounds the peak
  memory (about 90 MB above the loaded model at batch 32, against 640 MB for
  the reference port) and was worth ~15 % of the time by itself: fresh big
  tensors per chunk fragment the heap and are page-faulted in again;
* the mid end and back end (2 % of the work) are the reference modules.

Results agree with ``MusicnnNet`` to float32 rounding (different summation
order), see tests/test_musicnn.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .net import N_MELS, MusicnnNet

__all__ = ["FastMusicnn"]

N_FRAMES = 187
TIMBRAL_PAD = 3  # frames of zeros before and after, for the 7-frame timbral kernels
# temporal kernels share GEMMs by window: (window, TF "same" pad before, kernels); a
# shorter kernel is zero-embedded so that its taps line up with its own padding.
# One 128 window for all three would cost 1.7x the FLOPs; two windows, 1.15x.
TEMPORAL_GROUPS = ((128, 63, (128,)), (64, 31, (64, 32)))


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
        self.offset = offsets.float().contiguous()  # (T, C)
        self.sign = sign.float()
        self.post_scale = post_scale.float()
        self.post_shift = post_shift.float()

    def finish(self, pooled: torch.Tensor, out: torch.Tensor) -> None:
        """(b, T, C_padded) max-pooled conv -> ReLU -> batch norm, into ``out`` (b, T, C)."""
        torch.add(pooled[..., : self.channels], self.offset, out=out)
        out.mul_(self.sign).relu_().mul_(self.post_scale).add_(self.post_shift)


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
    """

    def __init__(self, nets: Sequence[MusicnnNet], *, chunk: int = 1) -> None:
        if not nets:
            raise ValueError("FastMusicnn needs at least one network")
        self.nets = list(nets)
        self.chunk = chunk
        timbral: list[list[tuple]] = [[], []]
        temporal: list[list[tuple]] = [[] for _ in TEMPORAL_GROUPS]
        for net in self.nets:
            fe = net.frontend
            a, b = (v.item() for v in _bn_affine(fe.input_bn))
            for i, block in enumerate(fe.timbral):
                timbral[i].append(self._fold(block, a, b, pad_before=TIMBRAL_PAD))
            for block in fe.temporal:
                k = block.conv.kernel_size[0]
                g = next(g for g, (window, _, ks) in enumerate(TEMPORAL_GROUPS) if k in ks)
                window, before, _ = TEMPORAL_GROUPS[g]
                temporal[g].append(self._fold(block, a, b, pad_before=block.time_pad[0], window=window, embed=before - block.time_pad[0]))
        self.kernels = [self.nets[0].frontend.timbral[i].conv.kernel_size[1] for i in range(2)]
        self.groups = [self._group(parts) for parts in (*timbral, *temporal)]
        # where each network's 561 front-end channels sit in the group outputs, in net.py's order
        self._columns: list[list[tuple[int, slice]]] = []
        for j in range(len(self.nets)):
            cols = []
            for g, parts in enumerate((*timbral, *temporal)):
                per_net = len(parts) // len(self.nets)
                start = sum(p[0].shape[1] for p in parts[: j * per_net])
                for part in parts[j * per_net : (j + 1) * per_net]:
                    cols.append((g, slice(start, start + part[0].shape[1])))
                    start += part[0].shape[1]
            self._columns.append(cols)

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
        temporal = [(N_FRAMES * N_MELS, w, g.weight.shape[1]) for (w, _, _), g in zip(TEMPORAL_GROUPS, self.groups[2:])]
        return timbral + temporal

    def _frontend_chunk(self, x: torch.Tensor, outs: list[torch.Tensor], cols_buf: torch.Tensor, z_buf: torch.Tensor) -> None:
        """(b, 187, 96) raw log-mel -> each group's (b, 187, C) output, written into ``outs``.

        The patches and the product go to the two scratch buffers, reused by every
        group and chunk: fresh big tensors per chunk would fragment the heap (small
        pooled outputs land in the freed space) and grow the resident memory with
        the batch size.
        """
        b = x.shape[0]
        views = []
        xt = F.pad(x, (0, 0, TIMBRAL_PAD, TIMBRAL_PAD))  # (b, 193, 96)
        for k in self.kernels:
            views.append(xt.unfold(1, 7, 1).unfold(2, k, 1))  # (b, T, P, 7, k)
        for window, before, _ in TEMPORAL_GROUPS:
            xp = F.pad(x, (0, 0, before, window - 1 - before))  # (b, 187 + window - 1, 96)
            views.append(xp.unfold(1, window, 1))  # (b, T, M, window)
        for view, g, (rows, length, n), out in zip(views, self.groups, self._shapes(), outs):
            cols = cols_buf[: b * rows * length].view(view.shape).copy_(view).view(b * rows, length)
            z = torch.mm(cols, g.weight, out=z_buf[: b * rows * n].view(b * rows, n))
            pooled = z.view(b, N_FRAMES, rows // N_FRAMES, n).amax(dim=2)
            g.finish(pooled, out)

    def frontend(self, mel: torch.Tensor) -> list[torch.Tensor]:
        """(B, 187, 96) -> per network its (B, 561, 187) front-end output, as ``net.frontend``."""
        if mel.ndim != 3 or mel.shape[1:] != (N_FRAMES, N_MELS):
            raise ValueError(f"expected (B, {N_FRAMES}, {N_MELS}) log-mel, got {tuple(mel.shape)}")
        x = mel.float().contiguous()
        n = x.shape[0]
        shapes = self._shapes()
        chunk = min(self.chunk, n)
        cols_buf = torch.empty(chunk * max(r * k for r, k, _ in shapes))
        z_buf = torch.empty(chunk * max(r * c for r, _, c in shapes))
        groups = [torch.empty(n, N_FRAMES, g.channels) for g in self.groups]
        for i in range(0, n, chunk):
            self._frontend_chunk(x[i : i + chunk], [g[i : i + chunk] for g in groups], cols_buf, z_buf)
        del cols_buf, z_buf
        fes = []
        for cols in self._columns:
            fe = torch.empty(n, sum(s.stop - s.start for _, s in cols), N_FRAMES)
            start = 0
            for g, s in cols:
                fe[:, start : start + s.stop - s.start].copy_(groups[g][..., s].transpose(1, 2))
                start += s.stop - s.start
            fes.append(fe)
        return fes

    def __call__(self, mel: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [net.backend(net.midend(fe)) for net, fe in zip(self.nets, self.frontend(mel))]

    def penultimate(self, mel: torch.Tensor) -> torch.Tensor:
        """The first network's 200-d penultimate layer only (no tag head); build with that one net."""
        net, fe = self.nets[0], self.frontend(mel)[0]
        x = net.midend(fe)
        back = net.backend
        pooled = torch.stack([x.amax(dim=2), x.mean(dim=2)], dim=2).flatten(1)
        return back.dense_bn(torch.relu(back.dense(back.pool_bn(pooled))))
