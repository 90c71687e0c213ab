/* The hot steps of the musicnn fast path (fast.py) as AVX2 + FMA and AVX-512 kernels.
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
 * The kernels are written once (_kernels_impl.h) and built twice: for AVX2 + FMA (8 floats per
 * vector) and for AVX-512 (16 floats per vector, twice the FLOPs per instruction where the CPU has
 * two 512-bit FMA units). isas() names the sets this CPU runs, the widest first; every kernel call
 * names the set to use, so that tests and benchmarks can run both in one process.
 *
 * Built by setuptools as an optional extension: where it did not build, or where the CPU
 * lacks AVX2 or FMA (isas() is empty), fast.py runs the same steps through torch.
 * The Python-facing functions take addresses (tensor.data_ptr()) and strides in floats;
 * fast.py's _NativeKernels checks dtypes, shapes and unit inner strides before calling.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_KERNEL 1
#define MR 6

/* AVX2 + FMA: 8 floats per vector, tails by a lane mask in a vector register. */
#define NAME(f) f##_avx2
#define TARGET __attribute__((target("avx2,fma")))
#define V __m256
#define MASK __m256i
#define W 8
#define VZERO() _mm256_setzero_ps()
#define VSET1(x) _mm256_set1_ps(x)
#define VLOAD(p) _mm256_loadu_ps(p)
#define VLOADM(p, m) _mm256_maskload_ps(p, m)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VSTOREM(p, m, v) _mm256_maskstore_ps(p, m, v)
#define VBCAST(p) _mm256_broadcast_ss(p)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VABS(a) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a)
#define TAIL(n) tail_avx2(n)
TARGET static inline __m256i tail_avx2(Py_ssize_t n) {
    const int idx[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 0 ? 0 : n > 8 ? 8 : n)),
                              _mm256_loadu_si256((const __m256i *)idx));
}
#include "_kernels_impl.h"
#undef NAME
#undef TARGET
#undef V
#undef MASK
#undef W
#undef VZERO
#undef VSET1
#undef VLOAD
#undef VLOADM
#undef VSTORE
#undef VSTOREM
#undef VBCAST
#undef VFMA
#undef VMAX
#undef VADD
#undef VABS
#undef TAIL

/* AVX-512 (F): 16 floats per vector in twice the registers, tails by a mask register. */
#define NAME(f) f##_avx512
#define TARGET __attribute__((target("avx512f")))
#define V __m512
#define MASK __mmask16
#define W 16
#define VZERO() _mm512_setzero_ps()
#define VSET1(x) _mm512_set1_ps(x)
#define VLOAD(p) _mm512_loadu_ps(p)
#define VLOADM(p, m) _mm512_maskz_loadu_ps(m, p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VSTOREM(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VABS(a) _mm512_abs_ps(a)
#define TAIL(n) ((__mmask16)((n) <= 0 ? 0 : (n) >= 16 ? 0xFFFF : (1u << (n)) - 1))
#include "_kernels_impl.h"

#else
#define HAVE_KERNEL 0
#endif

enum { UNSUPPORTED, AVX2, AVX512 };

/* The instruction set a name stands for, where this CPU (and the OS, for AVX-512's registers) runs it. */
static int runnable(const char *name) {
#if HAVE_KERNEL
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (!strcmp(name, "avx2") && avx2) return AVX2;
    if (!strcmp(name, "avx512") && avx2 && __builtin_cpu_supports("avx512f")) return AVX512;
#endif
    return UNSUPPORTED;
}

static PyObject *py_isas(PyObject *self, PyObject *args) {
    PyObject *out = PyList_New(0);
    const char *names[] = {"avx512", "avx2"};
    for (int i = 0; out && i < 2; i++) {
        if (!runnable(names[i])) continue;
        PyObject *s = PyUnicode_FromString(names[i]);
        if (!s || PyList_Append(out, s) < 0) Py_CLEAR(out);
        Py_XDECREF(s);
    }
    if (!out) return NULL;
    PyObject *tuple = PyList_AsTuple(out);
    Py_DECREF(out);
    return tuple;
}

/* Each Python-facing function takes the instruction set's name, then the arguments of the kernel it calls
 * in their order (see the top of the file). RUN calls that set's kernel with the GIL released; a set this
 * CPU does not run (or kernels that were not built) raise instead. */
#define F(p) ((float *)(uintptr_t)(p))
#define RUN(isa, f, ...)                                                                                    \
    do {                                                                                                    \
        int set_ = runnable(isa);                                                                           \
        if (!set_) {                                                                                        \
            PyErr_Format(PyExc_RuntimeError, "soundalike's kernels cannot run %s on this CPU", isa);        \
            return NULL;                                                                                    \
        }                                                                                                   \
        CALL(set_, f, __VA_ARGS__);                                                                         \
        Py_RETURN_NONE;                                                                                     \
    } while (0)
#if HAVE_KERNEL
/* The kernels run with denormals flushed to zero (MXCSR's FTZ and DAZ bits, this thread only, restored after):
 * the trained filters' DFT has weights near 1e-35 and the inverse DFT coefficients near 1e-18, whose products
 * are denormal, and every FMA that makes or reads one costs an Intel core a microcode assist. That doubled
 * the timbral convs' time on a Xeon; the values flushed are below 1.2e-38, far under float32's rounding of
 * any sum they join. */
#define FLUSH_DENORMALS 0x8040
#define CALL(set, f, ...)                                                       \
    do {                                                                        \
        Py_BEGIN_ALLOW_THREADS                                                  \
        unsigned int csr_ = _mm_getcsr();                                       \
        _mm_setcsr(csr_ | FLUSH_DENORMALS);                                     \
        if (set == AVX512) f##_avx512(__VA_ARGS__); else f##_avx2(__VA_ARGS__); \
        _mm_setcsr(csr_);                                                       \
        Py_END_ALLOW_THREADS                                                    \
    } while (0)
#else
#define CALL(set, f, ...) (void)0 /* never reached: runnable() is false for every set */
#endif

static PyObject *py_perbin(PyObject *self, PyObject *args) {
    const char *isa;
    unsigned long long w, s, out;
    Py_ssize_t B, R, K, M, w_b, w_r, s_b, s_k, o_b, o_r;
    if (!PyArg_ParseTuple(args, "sKKKnnnnnnnnnn", &isa, &w, &s, &out, &B, &R, &K, &M, &w_b, &w_r, &s_b, &s_k, &o_b,
                          &o_r))
        return NULL;
    RUN(isa, perbin, F(w), F(s), F(out), B, R, K, M, w_b, w_r, s_b, s_k, o_b, o_r);
}

static PyObject *py_inverse_max(PyObject *self, PyObject *args) {
    const char *isa;
    unsigned long long a1, a2, first, second, out;
    Py_ssize_t ld, R, K, N, pairs;
    if (!PyArg_ParseTuple(args, "sKKKKnKnnnn", &isa, &a1, &a2, &first, &second, &ld, &out, &R, &K, &N, &pairs))
        return NULL;
    RUN(isa, inverse_max, F(a1), F(a2), F(first), F(second), ld, F(out), R, K, N, pairs);
}

static PyObject *py_band_max(PyObject *self, PyObject *args) {
    const char *isa;
    unsigned long long x, band, out;
    Py_ssize_t ldx, B, mels, ldb, J, N, c, k, ldo;
    if (!PyArg_ParseTuple(args, "sKnnnKnnnnnKn", &isa, &x, &ldx, &B, &mels, &band, &ldb, &J, &N, &c, &k, &out, &ldo))
        return NULL;
    RUN(isa, band_max, F(x), ldx, B, mels, F(band), ldb, J, N, c, k, F(out), ldo);
}

static PyObject *py_timbral(PyObject *self, PyObject *args) {
    const char *isa;
    unsigned long long w, s, z, inverse, out;
    Py_ssize_t blocks, cb, cb_last, bins, K, m, R, pairs;
    if (!PyArg_ParseTuple(args, "sKnnnnnKnKKnnK", &isa, &w, &blocks, &cb, &cb_last, &bins, &K, &s, &m, &z, &inverse,
                          &R, &pairs, &out))
        return NULL;
    RUN(isa, timbral, F(w), blocks, cb, cb_last, bins, K, F(s), m, F(z), F(inverse), R, pairs, F(out));
}

static PyObject *py_temporal(PyObject *self, PyObject *args) {
    const char *isa;
    unsigned long long x, band, out;
    Py_ssize_t ldx, B, mels, total, ldb, frames, c, k, ldo;
    if (!PyArg_ParseTuple(args, "sKnnnnKnnnnKn", &isa, &x, &ldx, &B, &mels, &total, &band, &ldb, &frames, &c, &k,
                          &out, &ldo))
        return NULL;
    RUN(isa, temporal, F(x), ldx, B, mels, total, F(band), ldb, frames, c, k, F(out), ldo);
}

static PyMethodDef methods[] = {
    {"timbral", py_timbral, METH_VARARGS, "_DftTimbral.pooled: every channel block's products, inverse and max."},
    {"temporal", py_temporal, METH_VARARGS, "_BandedTemporal.pooled: band_max over every block of frames."},
    {"band_max", py_band_max, METH_VARARGS, "A banded product over time and the max over mel, fused."},
    {"inverse_max", py_inverse_max, METH_VARARGS, "The folded inverse DFT and the max over positions, fused."},
    {"isas", py_isas, METH_NOARGS, "The instruction sets the kernels run here, the widest first: avx512, avx2."},
    {"perbin", py_perbin, METH_VARARGS, "Batched (R x K) @ (K x M) products on float32 buffers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
