"""blas.one_thread: numpy's BLAS on one thread while a search or an indexing run works, restored after the last."""

import numpy as np  # noqa: F401  (loads the BLAS threadpoolctl inspects)
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from soundalike import blas


def _threads() -> set[int]:
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


def test_one_thread_while_any_user_is_inside_and_the_original_after_the_last():
    with threadpool_limits(limits=2, user_api="blas"):
        first, second = blas.one_thread(), blas.one_thread()
        first.__enter__()
        assert _threads() == {1}
        second.__enter__()  # a second user (a search while the server indexes)
        first.__exit__(None, None, None)
        assert _threads() == {1}  # the first to leave must not restore the pool under the second
        second.__exit__(None, None, None)
        assert _threads() == {2}


class _Seen(Exception):
    pass


def test_library_search_runs_on_one_blas_thread(monkeypatch, tmp_path):
    from soundalike import library

    def first_step(self):  # the search's first step: say how many BLAS threads it has, and stop there
        raise _Seen(_threads())

    monkeypatch.setattr(library.Library, "_check_searchable", first_step)
    lib = library.Library.__new__(library.Library)
    with threadpool_limits(limits=2, user_api="blas"):
        with pytest.raises(_Seen) as seen:
            lib.search(tmp_path / "q.flac")
        assert seen.value.args == ({1},)
        assert _threads() == {2}
