"""numpy's BLAS on one thread while soundalike works: ``with one_thread(): ...``.

OpenBLAS runs every matrix product of a few hundred rows on its own pool of
threads, which spin while they wait for work. The products of an indexing run
(the mel's) and of a search (windows against a track's windows, the query's
bands, the fingerprints') are small and many, and they run beside threads of
our own (decoders, the network's parts): the pool's threads spin on the cores
those need, and on a busy machine each product waits for a descheduled one.
One thread is faster there, often by a factor of ten or more per product
(docs/benchmarks.md measures indexing and search).

The limit is process-wide (OpenBLAS has one pool), so concurrent users (a
server searching while it indexes) share it: the first sets it, the last
restores what was there before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_users = 0
_saved = None  # the limits to restore when the last user leaves
_controller = None  # threadpoolctl's inspection of the loaded libraries, done once (about 1.4 ms each time)


@contextmanager
def one_thread() -> Iterator[None]:
    """numpy's BLAS on one thread inside the block (and in every thread, while any such block runs)."""
    global _users, _saved, _controller
    with _lock:
        if _users == 0:
            if _controller is None:
                from threadpoolctl import ThreadpoolController

                _controller = ThreadpoolController()
            _saved = _controller.limit(limits=1, user_api="blas")
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _saved.restore_original_limits()
                _saved = None
