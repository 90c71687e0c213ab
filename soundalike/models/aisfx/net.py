"""aisfx's embedding network in torch: the reference port and the fast path.

``AisfxNet`` is the original's ``EmbeddingNet('max', 3, 1, 64)`` (``aisfx/models/cnn2d.py``, after the DCASE
cross-task baseline), layer for layer: four blocks of two 3x3 convolutions (64, 128, 256, 512 channels; no
bias) each followed by batch norm and ReLU, 2x2 max pooling after the first three blocks, then the mean over
the mel axis and the max over time: a 512-d embedding per 100-frame block. Its parameter names are the
original's, so its ``state_dict`` loads the checkpoint's tensors as they are.

``FastAisfxNet`` computes the same function for inference on a CPU:

* each batch norm is folded into the convolution before it (``w * g / sqrt(v + eps)``, a bias
  ``b - m g / sqrt(v + eps)``), so a block is conv + ReLU twice: half the passes over memory;
* the tensors are in ``channels_last`` layout, which oneDNN's CPU convolutions run fastest;
* the batch is cut into one part per torch thread, each run with one intra-op thread (windows are independent;
  at 2 cores this beat one batch with two intra-op threads, as for musicnn's fast path);
* it runs under ``torch.inference_mode`` (no autograd records).

The two agree to float32 rounding (tests/test_aisfx.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..musicnn.fast import _intra_op_threads, _one_intra_op_thread

__all__ = ["AisfxNet", "FastAisfxNet", "BN_EPS"]

BN_EPS = 1e-5  # torch's BatchNorm2d default, which the original trained with
CHANNELS = (64, 128, 256, 512)


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor, pool: bool) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, 2) if pool else x


class AisfxNet(nn.Module):
    """(n, 100, 96) normalised log-mel -> (n, 512) embeddings; the original's layers and names."""

    def __init__(self) -> None:
        super().__init__()
        cins = (1,) + CHANNELS[:-1]
        for i, (cin, cout) in enumerate(zip(cins, CHANNELS), 1):
            setattr(self, f"conv_block{i}", ConvBlock(cin, cout))

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray]) -> "AisfxNet":
        net = cls()
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [m for m in missing if not m.endswith("num_batches_tracked")]
        if missing or unexpected:
            from ...errors import ModelError

            raise ModelError(f"aisfx: weights do not fit the network (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")
        return net.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)
        x = self.conv_block1(x, True)
        x = self.conv_block2(x, True)
        x = self.conv_block3(x, True)
        x = self.conv_block4(x, False)  # the original's 1x1 max pool: the identity
        return x.mean(dim=3).amax(dim=2)


class FastAisfxNet:
    """The same function as ``AisfxNet`` with batch norm folded into the convolutions (see the module docstring)."""

    def __init__(self, net: AisfxNet, *, parts: int | None = None) -> None:
        self.layers: list[tuple[torch.Tensor, torch.Tensor, bool]] = []
        with torch.no_grad():
            for i in range(1, 5):
                block = getattr(net, f"conv_block{i}")
                for conv, bn, last in ((block.conv1, block.bn1, False), (block.conv2, block.bn2, True)):
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    w = (conv.weight * scale[:, None, None, None]).contiguous(memory_format=torch.channels_last)
                    b = (bn.bias - bn.running_mean * scale).contiguous()
                    self.layers.append((w, b, last and i < 4))
        self.parts = parts
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1).contiguous(memory_format=torch.channels_last)
        for w, b, pool in self.layers:
            x = F.relu(F.conv2d(x, w, b, padding=1))
            if pool:
                x = F.max_pool2d(x, 2)
        return x.mean(dim=3).amax(dim=2)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 100, 96) -> (n, 512): parts of the batch on a small thread pool, one intra-op thread each
        (musicnn's ``_split``, whose docstring has the measurement behind it)."""
        threads = min(self.parts or _intra_op_threads(), x.shape[0])
        with torch.inference_mode():
            if threads <= 1:
                with _one_intra_op_thread():
                    return self._run(x)
            if self._pool is None or self._pool_size < threads:
                self._pool, self._pool_size = ThreadPoolExecutor(threads, thread_name_prefix="aisfx"), threads

            def part(chunk: torch.Tensor) -> torch.Tensor:
                torch.set_num_threads(1)  # this pool thread's own OpenMP setting
                with torch.inference_mode():
                    return self._run(chunk)

            with _one_intra_op_thread():
                return torch.cat(list(self._pool.map(part, torch.tensor_split(x, threads))))
