"""The musicnn network (Pons & Serra, 2019) in PyTorch, inference only.

It mirrors ``build_musicnn`` of musicnn 0.1.0's ``models.py`` layer by layer
so it can be read side by side with the original:

* front end on the (batch, 187 frames, 96 mels) log-mel, after a 1-channel
  batch norm:
  - timbral: 204 filters of 7x38 and 204 of 7x67 (time x mel), the time axis
    zero-padded by 3 on each side, "valid" in frequency;
  - temporal: 51 filters each of 128x1, 64x1 and 32x1 with TF "same" padding,
    which for an even kernel k pads (k-1)//2 before and k//2 after;
  - each conv is ReLU, then batch norm, then a max over the mel axis;
    561 channels per frame in all;
* mid end: three 1-D convs of 64 filters, kernel 7 over time, on the
  previous layer's channels; the 2nd and 3rd are residual. The front end and
  the three outputs are concatenated: 753 channels per frame;
* back end: max and mean over time, interleaved per channel as TF's
  ``flatten`` of (753, 2) orders them, batch norm, dense 200 + ReLU, batch
  norm (the 200-d "penultimate" embedding), dense to the tag logits.

Every batch norm uses TF's epsilon 1e-3 and the moving statistics (dropout is
off at inference). Tensors are (batch, channels, time[, mel]).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MusicnnNet", "N_FRONTEND", "N_MIDEND", "N_PENULTIMATE"]

TF_BN_EPS = 1e-3
N_MELS = 96
N_FRONTEND = 2 * 204 + 3 * 51  # 561
N_MIDEND = N_FRONTEND + 3 * 64  # 753
N_PENULTIMATE = 200


def _bn(n: int, dims: int) -> nn.Module:
    return (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(n, eps=TF_BN_EPS)


class _FreqPooledConv(nn.Module):
    """conv2d over (time, mel) -> ReLU -> batch norm -> max over mel.

    ``time_pad`` is (before, after) zero padding of the time axis; the mel
    axis is never padded ("valid"), as in the original.

    The pooling is done first, on the conv output, and ReLU and batch norm
    then run on the 30-60x smaller pooled tensor. This is exact: ReLU and the
    inference batch norm (a per-channel affine map) are monotone, so they
    commute with max, except that a negative scale (gamma < 0, most timbral
    channels of the trained nets) turns the max into a min. It saves two
    passes over the largest tensors of the network.
    """

    def __init__(self, filters: int, kernel: tuple[int, int], time_pad: tuple[int, int]) -> None:
        super().__init__()
        self.time_pad = time_pad
        self.conv = nn.Conv2d(1, filters, kernel_size=kernel)
        self.bn = _bn(filters, 1)  # applied to the pooled (B, C, T) tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, T, M) -> (B, C, T)
        z = self.conv(F.pad(x, (0, 0, *self.time_pad)))
        lo, hi = torch.aminmax(z, dim=3)
        increasing = (self.bn.weight >= 0).view(1, -1, 1)
        return self.bn(torch.relu(torch.where(increasing, hi, lo)))

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The original order (ReLU, batch norm, max); for tests."""
        z = self.conv(F.pad(x, (0, 0, *self.time_pad)))
        bn = self.bn
        y = F.batch_norm(torch.relu(z), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        return y.amax(dim=3)


def _same_pad(k: int) -> tuple[int, int]:
    """TF "same" padding for stride 1: the extra zero of an even kernel goes after."""
    return ((k - 1) // 2, k // 2)


class FrontEnd(nn.Module):
    """Musically motivated convs: two timbral (mel-wide) and three temporal (time-long)."""

    def __init__(self) -> None:
        super().__init__()
        self.input_bn = _bn(1, 2)
        self.timbral = nn.ModuleList(
            [_FreqPooledConv(204, (7, int(0.4 * N_MELS)), (3, 3)), _FreqPooledConv(204, (7, int(0.7 * N_MELS)), (3, 3))]
        )
        self.temporal = nn.ModuleList([_FreqPooledConv(51, (k, 1), _same_pad(k)) for k in (128, 64, 32)])

    def forward(self, mel: torch.Tensor) -> torch.Tensor:  # (B, T, M) -> (B, 561, T)
        x = self.input_bn(mel.unsqueeze(1))
        return torch.cat([block(x) for block in (*self.timbral, *self.temporal)], dim=1)


class MidEnd(nn.Module):
    """Three 7-frame convs over all channels; dense (concatenated) outputs, residual 2nd and 3rd."""

    def __init__(self, channels: int = N_FRONTEND, filters: int = 64) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(channels, filters, 7, padding=3)] + [nn.Conv1d(filters, filters, 7, padding=3) for _ in range(2)])
        self.bns = nn.ModuleList([_bn(filters, 1) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 561, T) -> (B, 753, T)
        return torch.cat(self.parts(x), dim=1)

    def parts(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four blocks ``forward`` concatenates: the input and each conv's output."""
        c1 = self.bns[0](torch.relu(self.convs[0](x)))
        c2 = self.bns[1](torch.relu(self.convs[1](c1))) + c1
        c3 = self.bns[2](torch.relu(self.convs[2](c2))) + c2
        return [x, c1, c2, c3]


class BackEnd(nn.Module):
    """Global max and mean pooling over time, then two dense layers."""

    def __init__(self, channels: int = N_MIDEND, units: int = N_PENULTIMATE, classes: int = 50) -> None:
        super().__init__()
        self.pool_bn = _bn(2 * channels, 1)
        self.dense = nn.Linear(2 * channels, units)
        self.dense_bn = _bn(units, 1)
        self.out = nn.Linear(units, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, 753, T) -> logits, penultimate
        return self.head(self.pool(x))

    @staticmethod
    def pool(x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, 2 C): max0, mean0, max1, ... (channel blocks can be pooled apart and concatenated)."""
        return torch.stack([x.amax(dim=2), x.mean(dim=2)], dim=2).flatten(1)

    def penultimate(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.dense_bn(torch.relu(self.dense(self.pool_bn(pooled))))

    def head(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        penultimate = self.penultimate(pooled)
        return self.out(penultimate), penultimate


class MusicnnNet(nn.Module):
    """log-mel (B, 187, 96) -> (tag logits (B, 50), penultimate (B, 200))."""

    def __init__(self, classes: int = 50) -> None:
        super().__init__()
        self.frontend = FrontEnd()
        self.midend = MidEnd()
        self.backend = BackEnd(classes=classes)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backend(self.midend(self.frontend(mel)))

    @classmethod
    def from_tf(cls, tensors: dict[str, np.ndarray]) -> MusicnnNet:
        """Build an eval-mode net from TF variable names (``conv2d_3/kernel``...).

        TF names layers by creation order in ``build_musicnn``; the lists below
        follow that order.
        """
        classes = tensors["dense_1/kernel"].shape[1]
        net = cls(classes=classes)
        fe, mid, back = net.frontend, net.midend, net.backend
        convs2d = [b.conv for b in (*fe.timbral, *fe.temporal)]
        convs1d = list(mid.convs)
        bns = [fe.input_bn, *(b.bn for b in (*fe.timbral, *fe.temporal)), *mid.bns, back.pool_bn, back.dense_bn]
        t = lambda name: torch.from_numpy(np.ascontiguousarray(tensors[name]))  # noqa: E731

        state: dict[str, torch.Tensor] = {}
        named = dict(net.named_modules())
        path = {id(m): n for n, m in named.items()}
        for i, conv in enumerate(convs2d):  # TF (kh, kw, in, out) -> torch (out, in, kh, kw)
            tf_name = f"conv2d_{i}" if i else "conv2d"
            state[f"{path[id(conv)]}.weight"] = t(f"{tf_name}/kernel").permute(3, 2, 0, 1)
            state[f"{path[id(conv)]}.bias"] = t(f"{tf_name}/bias")
        for i, conv in enumerate(convs1d, start=len(convs2d)):  # TF (7, in, 1, out) -> torch (out, in, 7)
            tf_name = f"conv2d_{i}"
            state[f"{path[id(conv)]}.weight"] = t(f"{tf_name}/kernel")[:, :, 0, :].permute(2, 1, 0)
            state[f"{path[id(conv)]}.bias"] = t(f"{tf_name}/bias")
        for i, bn in enumerate(bns):
            tf_name = f"batch_normalization_{i}" if i else "batch_normalization"
            p = path[id(bn)]
            state[f"{p}.weight"] = t(f"{tf_name}/gamma")
            state[f"{p}.bias"] = t(f"{tf_name}/beta")
            state[f"{p}.running_mean"] = t(f"{tf_name}/moving_mean")
            state[f"{p}.running_var"] = t(f"{tf_name}/moving_variance")
            state[f"{p}.num_batches_tracked"] = torch.tensor(0)
        for tf_name, lin in (("dense", back.dense), ("dense_1", back.out)):  # TF (in, out) -> torch (out, in)
            state[f"{path[id(lin)]}.weight"] = t(f"{tf_name}/kernel").T
            state[f"{path[id(lin)]}.bias"] = t(f"{tf_name}/bias")
        used = {n for n in tensors}
        expected = 2 * (len(convs2d) + len(convs1d) + 2) + 4 * len(bns)
        if len(used) != expected:
            raise ValueError(f"expected {expected} TF weight tensors, got {len(used)}")
        net.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True)
        return net.eval().requires_grad_(False)
