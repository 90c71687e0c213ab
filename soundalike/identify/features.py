"""The identification features of a track, at one fixed rate whatever the embedding model's.

Landmarks (identify/landmarks.py) and the scan print (identify/prints.py) are computed from the
stream resampled to ``SR`` (8 kHz, the rate the re-rank and every query
already use), so that a catalogue indexed with a model at 16, 22.05, 44.1 or
48 kHz holds the same hashes a query computes: landmark bins are 15.6 Hz
wide only where the FFT size and the rate agree, and at 22.05 kHz a query
found its own source with 1-2 votes instead of about 100.
"""

from __future__ import annotations

import numpy as np

from . import landmarks as landmarking
from . import prints as printing
from .align import SR


class Features:
    """``push`` mono float32 blocks at ``sample_rate`` as they decode, then ``finish()`` ->
    (landmarks, scan print frames), both computed at ``SR``. Memory: a block and the extractors' state."""

    def __init__(self, sample_rate: int) -> None:
        import soxr

        self.stream = None if sample_rate == SR else soxr.ResampleStream(sample_rate, SR, 1, dtype="float32")
        self.marker = landmarking.Extractor(SR)
        self.printer = printing.Printer(SR)

    def push(self, block: np.ndarray) -> None:
        x = np.asarray(block, np.float32)
        if self.stream is not None:
            x = self.stream.resample_chunk(x)
        if len(x):
            self.marker.push(x)
            self.printer.push(x)

    def finish(self) -> tuple[landmarking.Landmarks, np.ndarray]:
        if self.stream is not None:
            tail = self.stream.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                self.marker.push(tail)
                self.printer.push(tail)
        return self.marker.finish(), self.printer.finish()
