/* The hot steps of the musicnn fast path (fast.py) as AVX2 + FMA kernels.
 *
 * perbin:      _DftTimbral's per-bin products, 49 bins of (2 cb x 14) @ (14 x m);
 * inverse_max: _DftTimbral's folded inverse DFT and the max over mel positions, fused;
 * band_max:    _BandedTemporal's banded product over time and the max over mel, fused;
 * timbral, temporal: the whole of _DftTimbral.pooled and _BandedTemporal.pooled, looping over
 *              channel or frame blocks in C: one call per kernel shape and pass, so that the
 *              threads a batch is split over do not queue for the GIL between blocks.
 *
 * Each keeps a block of outputs in registers over its whole sum, and the two fused ones
 * never store the big product, only its max. At these shapes MKL's products run at 25-68
 * GFLOP/s (K = 14 or 49 is too small for its packing to pay, and the max then reads the
 * product back); these run at 40-86 (docs/model-speed.md). Their results equal fast.py's
 * torch path (_TorchKernels) to float32 rounding.
 *
 * Built by setuptools as an optional extension: where it did not build, or where the CPU
 * lacks AVX2 or FMA (avx2() returns False), fast.py runs the same steps through torch.
 * The Python-facing functions take addresses (tensor.data_ptr()) and strides in floats;
 * fast.py's _NativeKernels checks dtypes, shapes and unit inner strides before calling.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_KERNEL 1
#define TARGET __attribute__((target("avx2,fma")))

TARGET static inline __m256i tail_mask(Py_ssize_t n) {
    const int idx[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_loadu_si256((const __m256i *)idx));
}

/* w: (B, R, K) with rows of K contiguous; s: (B, K, M) with M contiguous; out: (B, R, M) likewise. */
TARGET static void perbin(const float *w, const float *s, float *out, Py_ssize_t B, Py_ssize_t R, Py_ssize_t K,
                          Py_ssize_t M, Py_ssize_t w_b, Py_ssize_t w_r, Py_ssize_t s_b, Py_ssize_t s_k,
                          Py_ssize_t o_b, Py_ssize_t o_r) {
    for (Py_ssize_t b = 0; b < B; b++) {
        const float *wb = w + b * w_b, *sb = s + b * s_b;
        float *ob = out + b * o_b;
        Py_ssize_t r = 0;
        for (; r + 4 <= R; r += 4) {  /* 4 rows x 24 columns: 12 accumulators, 3 loads + 4 broadcasts per k */
            const float *w0 = wb + r * w_r;
            Py_ssize_t t = 0;
            for (; t + 24 <= M; t += 24) {
                __m256 c[4][3];
                for (int i = 0; i < 4; i++) c[i][0] = c[i][1] = c[i][2] = _mm256_setzero_ps();
                for (Py_ssize_t k = 0; k < K; k++) {
                    const float *sk = sb + k * s_k + t;
                    __m256 s0 = _mm256_loadu_ps(sk), s1 = _mm256_loadu_ps(sk + 8), s2 = _mm256_loadu_ps(sk + 16);
                    for (int i = 0; i < 4; i++) {
                        __m256 wi = _mm256_broadcast_ss(w0 + i * w_r + k);
                        c[i][0] = _mm256_fmadd_ps(wi, s0, c[i][0]);
                        c[i][1] = _mm256_fmadd_ps(wi, s1, c[i][1]);
                        c[i][2] = _mm256_fmadd_ps(wi, s2, c[i][2]);
                    }
                }
                for (int i = 0; i < 4; i++) {
                    float *o = ob + (r + i) * o_r + t;
                    _mm256_storeu_ps(o, c[i][0]);
                    _mm256_storeu_ps(o + 8, c[i][1]);
                    _mm256_storeu_ps(o + 16, c[i][2]);
                }
            }
            for (; t < M; t += 8) {  /* the last columns, 8 (or fewer, masked) at a time */
                __m256i mask = tail_mask(M - t);
                __m256 c[4];
                for (int i = 0; i < 4; i++) c[i] = _mm256_setzero_ps();
                for (Py_ssize_t k = 0; k < K; k++) {
                    __m256 sk = _mm256_maskload_ps(sb + k * s_k + t, mask);
                    for (int i = 0; i < 4; i++) c[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(w0 + i * w_r + k), sk, c[i]);
                }
                for (int i = 0; i < 4; i++) _mm256_maskstore_ps(ob + (r + i) * o_r + t, mask, c[i]);
            }
        }
        for (; r < R; r++) {  /* the last rows, one at a time */
            for (Py_ssize_t t = 0; t < M; t += 8) {
                __m256i mask = tail_mask(M - t);
                __m256 c = _mm256_setzero_ps();
                for (Py_ssize_t k = 0; k < K; k++)
                    c = _mm256_fmadd_ps(_mm256_broadcast_ss(wb + r * w_r + k),
                                        _mm256_maskload_ps(sb + k * s_k + t, mask), c);
                _mm256_maskstore_ps(ob + r * o_r + t, mask, c);
            }
        }
    }
}

/* The inverse DFT at the folded positions and the max over them, fused (see _DftTimbral):
 * out[j] = max_i (a1[i] . first[:, j] + g_i(a2[i] . second[:, j])), g_i = |.| for i < pairs, identity after,
 * with first and second (K, N) row-major at row stride ld, and a1, a2 (R, K) contiguous. The (R, N) products
 * are never stored: for each block of 16 columns, 6 rows of u = a1 . first are summed over K in 12
 * registers and parked in L1, then 6 rows of v = a2 . second, and the pairs go straight into the max. */
#define MR 6
TARGET static inline __attribute__((always_inline)) void rows_block(
        const float *a, const float *x, Py_ssize_t ld, Py_ssize_t K, int mr, int full, __m256i m0, __m256i m1,
        __m256 acc[MR][2]) {
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (Py_ssize_t k = 0; k < K; k++) {
        const float *xk = x + k * ld;
        __m256 x0 = full ? _mm256_loadu_ps(xk) : _mm256_maskload_ps(xk, m0);
        __m256 x1 = full ? _mm256_loadu_ps(xk + 8) : _mm256_maskload_ps(xk + 8, m1);
        for (int i = 0; i < mr; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i * K + k);
            acc[i][0] = _mm256_fmadd_ps(ai, x0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, x1, acc[i][1]);
        }
    }
}

TARGET static inline __attribute__((always_inline)) void max_block(
        const float *a1, const float *a2, const float *first, const float *second, Py_ssize_t ld, Py_ssize_t K,
        Py_ssize_t i0, int mr, Py_ssize_t pairs, int full, __m256i m0, __m256i m1, __m256 best[2]) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 acc[MR][2], u[MR][2];
    rows_block(a1 + i0 * K, first, ld, K, mr, full, m0, m1, acc);
    for (int i = 0; i < mr; i++) u[i][0] = acc[i][0], u[i][1] = acc[i][1];
    rows_block(a2 + i0 * K, second, ld, K, mr, full, m0, m1, acc);
    for (int i = 0; i < mr; i++)
        for (int q = 0; q < 2; q++) {
            __m256 v = i0 + i < pairs ? _mm256_andnot_ps(sign, acc[i][q]) : acc[i][q];
            best[q] = _mm256_max_ps(best[q], _mm256_add_ps(u[i][q], v));
        }
}

TARGET static void inverse_max(const float *a1, const float *a2, const float *first, const float *second,
                               Py_ssize_t ld, float *out, Py_ssize_t R, Py_ssize_t K, Py_ssize_t N,
                               Py_ssize_t pairs) {
    for (Py_ssize_t j = 0; j < N; j += 16) {
        int full = N - j >= 16;
        __m256i m0 = tail_mask(N - j), m1 = tail_mask(N - j - 8);
        __m256 best[2] = {_mm256_set1_ps(-INFINITY), _mm256_set1_ps(-INFINITY)};
        const float *f = first + j, *s = second + j;
        Py_ssize_t i = 0;
        for (; i + MR <= R; i += MR) max_block(a1, a2, f, s, ld, K, i, MR, pairs, full, m0, m1, best);
        switch (R - i) {  /* the last rows, with their count known to the compiler */
            case 5: max_block(a1, a2, f, s, ld, K, i, 5, pairs, full, m0, m1, best); break;
            case 4: max_block(a1, a2, f, s, ld, K, i, 4, pairs, full, m0, m1, best); break;
            case 3: max_block(a1, a2, f, s, ld, K, i, 3, pairs, full, m0, m1, best); break;
            case 2: max_block(a1, a2, f, s, ld, K, i, 2, pairs, full, m0, m1, best); break;
            case 1: max_block(a1, a2, f, s, ld, K, i, 1, pairs, full, m0, m1, best); break;
        }
        if (full) {
            _mm256_storeu_ps(out + j, best[0]);
            _mm256_storeu_ps(out + j + 8, best[1]);
        } else {
            _mm256_maskstore_ps(out + j, m0, best[0]);
            _mm256_maskstore_ps(out + j + 8, m1, best[1]);
        }
    }
}

/* A temporal conv as a banded product and the max over mel, fused (see _BandedTemporal):
 * out[b, col] = max_m sum_j x[b, m, j] band[j, col] for col < N, with x rows (b, m) at row stride ldx and
 * `mels` rows per window, band (J, N) at row stride ldb, out rows at stride ldo. Column col belongs to output
 * frame col / c, whose taps are band rows col / c .. col / c + k - 1: only those rows are summed (the band's
 * zeros are skipped). 6 rows x 16 columns are summed in registers, then max-pooled at once. */
TARGET static inline __attribute__((always_inline)) void band_rows(
        const float *xm, Py_ssize_t ldx, const float *bj, Py_ssize_t ldb, Py_ssize_t lo, Py_ssize_t hi, int mr,
        int full, __m256i m0, __m256i m1, __m256 best[2]) {
    __m256 acc[MR][2];
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (Py_ssize_t j = lo; j < hi; j++) {
        const float *row = bj + j * ldb;
        __m256 b0 = full ? _mm256_loadu_ps(row) : _mm256_maskload_ps(row, m0);
        __m256 b1 = full ? _mm256_loadu_ps(row + 8) : _mm256_maskload_ps(row + 8, m1);
        for (int i = 0; i < mr; i++) {
            __m256 xi = _mm256_broadcast_ss(xm + i * ldx + j);
            acc[i][0] = _mm256_fmadd_ps(xi, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(xi, b1, acc[i][1]);
        }
    }
    for (int i = 0; i < mr; i++) {
        best[0] = _mm256_max_ps(best[0], acc[i][0]);
        best[1] = _mm256_max_ps(best[1], acc[i][1]);
    }
}

TARGET static void band_max(const float *x, Py_ssize_t ldx, Py_ssize_t B, Py_ssize_t mels, const float *band,
                            Py_ssize_t ldb, Py_ssize_t J, Py_ssize_t N, Py_ssize_t c, Py_ssize_t k, float *out,
                            Py_ssize_t ldo) {
    for (Py_ssize_t b = 0; b < B; b++) {
        const float *xb = x + b * mels * ldx;
        for (Py_ssize_t j0 = 0; j0 < N; j0 += 16) {
            int full = N - j0 >= 16;
            __m256i m0 = tail_mask(N - j0), m1 = tail_mask(N - j0 - 8);
            Py_ssize_t lo = j0 / c, hi = (full ? j0 + 15 : N - 1) / c + k;
            if (hi > J) hi = J;
            const float *bj = band + j0;
            __m256 best[2] = {_mm256_set1_ps(-INFINITY), _mm256_set1_ps(-INFINITY)};
            Py_ssize_t m = 0;
            for (; m + MR <= mels; m += MR) band_rows(xb + m * ldx, ldx, bj, ldb, lo, hi, MR, full, m0, m1, best);
            const float *xm = xb + m * ldx;
            switch (mels - m) {  /* the last rows, with their count known to the compiler */
                case 5: band_rows(xm, ldx, bj, ldb, lo, hi, 5, full, m0, m1, best); break;
                case 4: band_rows(xm, ldx, bj, ldb, lo, hi, 4, full, m0, m1, best); break;
                case 3: band_rows(xm, ldx, bj, ldb, lo, hi, 3, full, m0, m1, best); break;
                case 2: band_rows(xm, ldx, bj, ldb, lo, hi, 2, full, m0, m1, best); break;
                case 1: band_rows(xm, ldx, bj, ldb, lo, hi, 1, full, m0, m1, best); break;
            }
            float *o = out + b * ldo + j0;
            if (full) {
                _mm256_storeu_ps(o, best[0]);
                _mm256_storeu_ps(o + 8, best[1]);
            } else {
                _mm256_maskstore_ps(o, m0, best[0]);
                _mm256_maskstore_ps(o + 8, m1, best[1]);
            }
        }
    }
}

/* The whole of _DftTimbral.pooled: for each block of cb channels (the last may have cb_last), the per-bin
 * products into the scratch z, then the inverse and max into cb rows of out (C, m). w holds the blocks'
 * (bins, 2 cb, K) weights one after the other; s is (bins, K, m) contiguous. One call per kernel shape and
 * pass instead of two per block from Python. */
TARGET static void timbral(const float *w, Py_ssize_t blocks, Py_ssize_t cb, Py_ssize_t cb_last, Py_ssize_t bins,
                           Py_ssize_t K, const float *s, Py_ssize_t m, float *z, const float *inverse, Py_ssize_t R,
                           Py_ssize_t pairs, float *out) {
    for (Py_ssize_t i = 0; i < blocks; i++) {
        Py_ssize_t c = i == blocks - 1 ? cb_last : cb, n = c * m;
        perbin(w + i * bins * 2 * cb * K, s, z, bins, 2 * c, K, m, 2 * c * K, K, K * m, m, 2 * n, m);
        inverse_max(inverse, inverse + R * bins, z, z + n, 2 * n, out + i * cb * m, R, bins, n, pairs);
    }
}

/* The whole of _BandedTemporal.pooled: band_max for each block of `frames` output frames (fewer at the end)
 * of `total`; block s reads x from frame s and writes out from column s * c. */
TARGET static void temporal(const float *x, Py_ssize_t ldx, Py_ssize_t B, Py_ssize_t mels, Py_ssize_t total,
                            const float *band, Py_ssize_t ldb, Py_ssize_t frames, Py_ssize_t c, Py_ssize_t k,
                            float *out, Py_ssize_t ldo) {
    for (Py_ssize_t s = 0; s < total; s += frames) {
        Py_ssize_t t = total - s < frames ? total - s : frames;
        band_max(x + s, ldx, B, mels, band, ldb, t + k - 1, t * c, c, k, out + s * c, ldo);
    }
}
#else
#define HAVE_KERNEL 0
#endif

static PyObject *py_avx2(PyObject *self, PyObject *args) {
#if HAVE_KERNEL
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) Py_RETURN_TRUE;
#endif
    Py_RETURN_FALSE;
}

/* Each Python-facing function passes its arguments in the order of the kernel it calls (see the top of the
 * file). RUN calls the kernel with the GIL released; where the kernels were not built it raises. */
#define F(p) ((float *)(uintptr_t)(p))
#if HAVE_KERNEL
#define RUN(call)                  \
    do {                           \
        Py_BEGIN_ALLOW_THREADS     \
        call;                      \
        Py_END_ALLOW_THREADS       \
        Py_RETURN_NONE;            \
    } while (0)
#else
#define RUN(call)                                                                                  \
    do {                                                                                           \
        PyErr_SetString(PyExc_RuntimeError, "soundalike's kernels were built without AVX2 support"); \
        return NULL;                                                                               \
    } while (0)
#endif

static PyObject *py_perbin(PyObject *self, PyObject *args) {
    unsigned long long w, s, out;
    Py_ssize_t B, R, K, M, w_b, w_r, s_b, s_k, o_b, o_r;
    if (!PyArg_ParseTuple(args, "KKKnnnnnnnnnn", &w, &s, &out, &B, &R, &K, &M, &w_b, &w_r, &s_b, &s_k, &o_b, &o_r))
        return NULL;
    RUN(perbin(F(w), F(s), F(out), B, R, K, M, w_b, w_r, s_b, s_k, o_b, o_r));
}

static PyObject *py_inverse_max(PyObject *self, PyObject *args) {
    unsigned long long a1, a2, first, second, out;
    Py_ssize_t ld, R, K, N, pairs;
    if (!PyArg_ParseTuple(args, "KKKKnKnnnn", &a1, &a2, &first, &second, &ld, &out, &R, &K, &N, &pairs))
        return NULL;
    RUN(inverse_max(F(a1), F(a2), F(first), F(second), ld, F(out), R, K, N, pairs));
}

static PyObject *py_band_max(PyObject *self, PyObject *args) {
    unsigned long long x, band, out;
    Py_ssize_t ldx, B, mels, ldb, J, N, c, k, ldo;
    if (!PyArg_ParseTuple(args, "KnnnKnnnnnKn", &x, &ldx, &B, &mels, &band, &ldb, &J, &N, &c, &k, &out, &ldo))
        return NULL;
    RUN(band_max(F(x), ldx, B, mels, F(band), ldb, J, N, c, k, F(out), ldo));
}

static PyObject *py_timbral(PyObject *self, PyObject *args) {
    unsigned long long w, s, z, inverse, out;
    Py_ssize_t blocks, cb, cb_last, bins, K, m, R, pairs;
    if (!PyArg_ParseTuple(args, "KnnnnnKnKKnnK", &w, &blocks, &cb, &cb_last, &bins, &K, &s, &m, &z, &inverse, &R,
                          &pairs, &out))
        return NULL;
    RUN(timbral(F(w), blocks, cb, cb_last, bins, K, F(s), m, F(z), F(inverse), R, pairs, F(out)));
}

static PyObject *py_temporal(PyObject *self, PyObject *args) {
    unsigned long long x, band, out;
    Py_ssize_t ldx, B, mels, total, ldb, frames, c, k, ldo;
    if (!PyArg_ParseTuple(args, "KnnnnKnnnnKn", &x, &ldx, &B, &mels, &total, &band, &ldb, &frames, &c, &k, &out,
                          &ldo))
        return NULL;
    RUN(temporal(F(x), ldx, B, mels, total, F(band), ldb, frames, c, k, F(out), ldo));
}

static PyMethodDef methods[] = {
    {"timbral", py_timbral, METH_VARARGS, "_DftTimbral.pooled: every channel block's products, inverse and max."},
    {"temporal", py_temporal, METH_VARARGS, "_BandedTemporal.pooled: band_max over every block of frames."},
    {"band_max", py_band_max, METH_VARARGS, "A banded product over time and the max over mel, fused."},
    {"inverse_max", py_inverse_max, METH_VARARGS, "The folded inverse DFT and the max over positions, fused."},
    {"avx2", py_avx2, METH_NOARGS, "True when the kernel was built and this CPU has AVX2 and FMA."},
    {"perbin", py_perbin, METH_VARARGS, "Batched (R x K) @ (K x M) products on float32 buffers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
