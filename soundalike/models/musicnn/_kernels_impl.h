/* The kernels of _kernels.c for one instruction set. _kernels.c includes this once per set, with:
 *   NAME(f)  the function's name for this set (perbin_avx2, ...), TARGET its target attribute;
 *   V, MASK  the vector type and its tail mask's type, W floats per vector;
 *   VZERO(), VSET1(x), VLOAD(p), VLOADM(p, mask), VSTORE(p, v), VSTOREM(p, mask, v), VBCAST(p),
 *   VFMA(a, b, c) = a b + c, VMAX, VADD, VABS, and TAIL(n): a mask of the first min(n, W) lanes (none for n <= 0).
 * The loops are the same for every set; only the width of a column block (W, 2 W or 3 W) changes.
 * MR, the rows of a register block, is 6 for both (the remainder switches below assume it).
 */

/* w: (B, R, K) with rows of K contiguous; s: (B, K, M) with M contiguous; out: (B, R, M) likewise. */
TARGET static void NAME(perbin)(const float *w, const float *s, float *out, Py_ssize_t B, Py_ssize_t R, Py_ssize_t K,
                          Py_ssize_t M, Py_ssize_t w_b, Py_ssize_t w_r, Py_ssize_t s_b, Py_ssize_t s_k,
                          Py_ssize_t o_b, Py_ssize_t o_r) {
    for (Py_ssize_t b = 0; b < B; b++) {
        const float *wb = w + b * w_b, *sb = s + b * s_b;
        float *ob = out + b * o_b;
        Py_ssize_t r = 0;
        for (; r + 4 <= R; r += 4) {  /* 4 rows x 3 W columns: 12 accumulators, 3 loads + 4 broadcasts per k */
            const float *w0 = wb + r * w_r;
            Py_ssize_t t = 0;
            for (; t + 3 * W <= M; t += 3 * W) {
                V c[4][3];
                for (int i = 0; i < 4; i++) c[i][0] = c[i][1] = c[i][2] = VZERO();
                for (Py_ssize_t k = 0; k < K; k++) {
                    const float *sk = sb + k * s_k + t;
                    V s0 = VLOAD(sk), s1 = VLOAD(sk + W), s2 = VLOAD(sk + 2 * W);
                    for (int i = 0; i < 4; i++) {
                        V wi = VBCAST(w0 + i * w_r + k);
                        c[i][0] = VFMA(wi, s0, c[i][0]);
                        c[i][1] = VFMA(wi, s1, c[i][1]);
                        c[i][2] = VFMA(wi, s2, c[i][2]);
                    }
                }
                for (int i = 0; i < 4; i++) {
                    float *o = ob + (r + i) * o_r + t;
                    VSTORE(o, c[i][0]);
                    VSTORE(o + W, c[i][1]);
                    VSTORE(o + 2 * W, c[i][2]);
                }
            }
            for (; t < M; t += W) {  /* the last columns, W (or fewer, masked) at a time */
                MASK mask = TAIL(M - t);
                V c[4];
                for (int i = 0; i < 4; i++) c[i] = VZERO();
                for (Py_ssize_t k = 0; k < K; k++) {
                    V sk = VLOADM(sb + k * s_k + t, mask);
                    for (int i = 0; i < 4; i++) c[i] = VFMA(VBCAST(w0 + i * w_r + k), sk, c[i]);
                }
                for (int i = 0; i < 4; i++) VSTOREM(ob + (r + i) * o_r + t, mask, c[i]);
            }
        }
        for (; r < R; r++) {  /* the last rows, one at a time */
            for (Py_ssize_t t = 0; t < M; t += W) {
                MASK mask = TAIL(M - t);
                V c = VZERO();
                for (Py_ssize_t k = 0; k < K; k++)
                    c = VFMA(VBCAST(wb + r * w_r + k),
                                        VLOADM(sb + k * s_k + t, mask), c);
                VSTOREM(ob + r * o_r + t, mask, c);
            }
        }
    }
}

/* The register block of inverse_max and band_max: acc[i] = sum over k in [lo, hi) of a[i lda + k] times x's
 * row k (2 W columns at row stride ld), mr rows in 2 mr registers, each row of x loaded once for all of them. */
TARGET static inline __attribute__((always_inline)) void NAME(rows_block)(
        const float *a, Py_ssize_t lda, const float *x, Py_ssize_t ld, Py_ssize_t lo, Py_ssize_t hi, int mr,
        int full, MASK m0, MASK m1, V acc[MR][2]) {
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = VZERO();
    for (Py_ssize_t k = lo; k < hi; k++) {
        const float *xk = x + k * ld;
        V x0 = full ? VLOAD(xk) : VLOADM(xk, m0);
        V x1 = full ? VLOAD(xk + W) : VLOADM(xk + W, m1);
        for (int i = 0; i < mr; i++) {
            V ai = VBCAST(a + i * lda + k);
            acc[i][0] = VFMA(ai, x0, acc[i][0]);
            acc[i][1] = VFMA(ai, x1, acc[i][1]);
        }
    }
}

/* The inverse DFT at the folded positions and the max over them, fused (see _DftTimbral):
 * out[j] = max_i (a1[i] . first[:, j] + g_i(a2[i] . second[:, j])), g_i = |.| for i < pairs, identity after,
 * with first and second (K, N) row-major at row stride ld, and a1, a2 (R, K) contiguous. The (R, N) products
 * are never stored: for each block of 2 W columns, 6 rows of u = a1 . first are summed over K in 12
 * registers and parked in L1, then 6 rows of v = a2 . second, and the pairs go straight into the max. */
TARGET static inline __attribute__((always_inline)) void NAME(max_block)(
        const float *a1, const float *a2, const float *first, const float *second, Py_ssize_t ld, Py_ssize_t K,
        Py_ssize_t i0, int mr, Py_ssize_t pairs, int full, MASK m0, MASK m1, V best[2]) {
    V acc[MR][2], u[MR][2];
    NAME(rows_block)(a1 + i0 * K, K, first, ld, 0, K, mr, full, m0, m1, acc);
    for (int i = 0; i < mr; i++) u[i][0] = acc[i][0], u[i][1] = acc[i][1];
    NAME(rows_block)(a2 + i0 * K, K, second, ld, 0, K, mr, full, m0, m1, acc);
    for (int i = 0; i < mr; i++)
        for (int q = 0; q < 2; q++) {
            V v = i0 + i < pairs ? VABS(acc[i][q]) : acc[i][q];
            best[q] = VMAX(best[q], VADD(u[i][q], v));
        }
}

TARGET static void NAME(inverse_max)(const float *a1, const float *a2, const float *first, const float *second,
                               Py_ssize_t ld, float *out, Py_ssize_t R, Py_ssize_t K, Py_ssize_t N,
                               Py_ssize_t pairs) {
    for (Py_ssize_t j = 0; j < N; j += 2 * W) {
        int full = N - j >= 2 * W;
        MASK m0 = TAIL(N - j), m1 = TAIL(N - j - W);
        V best[2] = {VSET1(-INFINITY), VSET1(-INFINITY)};
        const float *f = first + j, *s = second + j;
        Py_ssize_t i = 0;
        for (; i + MR <= R; i += MR) NAME(max_block)(a1, a2, f, s, ld, K, i, MR, pairs, full, m0, m1, best);
        switch (R - i) {  /* the last rows, with their count known to the compiler */
            case 5: NAME(max_block)(a1, a2, f, s, ld, K, i, 5, pairs, full, m0, m1, best); break;
            case 4: NAME(max_block)(a1, a2, f, s, ld, K, i, 4, pairs, full, m0, m1, best); break;
            case 3: NAME(max_block)(a1, a2, f, s, ld, K, i, 3, pairs, full, m0, m1, best); break;
            case 2: NAME(max_block)(a1, a2, f, s, ld, K, i, 2, pairs, full, m0, m1, best); break;
            case 1: NAME(max_block)(a1, a2, f, s, ld, K, i, 1, pairs, full, m0, m1, best); break;
        }
        if (full) {
            VSTORE(out + j, best[0]);
            VSTORE(out + j + W, best[1]);
        } else {
            VSTOREM(out + j, m0, best[0]);
            VSTOREM(out + j + W, m1, best[1]);
        }
    }
}

/* A temporal conv as a banded product and the max over mel, fused (see _BandedTemporal):
 * out[b, col] = max_m sum_j x[b, m, j] band[j, col] for col < N, with x rows (b, m) at row stride ldx and
 * `mels` rows per window, band (J, N) at row stride ldb, out rows at stride ldo. Column col belongs to output
 * frame col / c, whose taps are band rows col / c .. col / c + k - 1: only those rows are summed (the band's
 * zeros are skipped). 6 rows x 2 W columns are summed in registers, then max-pooled at once. */
TARGET static inline __attribute__((always_inline)) void NAME(band_rows)(
        const float *xm, Py_ssize_t ldx, const float *bj, Py_ssize_t ldb, Py_ssize_t lo, Py_ssize_t hi, int mr,
        int full, MASK m0, MASK m1, V best[2]) {
    V acc[MR][2];
    NAME(rows_block)(xm, ldx, bj, ldb, lo, hi, mr, full, m0, m1, acc);
    for (int i = 0; i < mr; i++) {
        best[0] = VMAX(best[0], acc[i][0]);
        best[1] = VMAX(best[1], acc[i][1]);
    }
}

TARGET static void NAME(band_max)(const float *x, Py_ssize_t ldx, Py_ssize_t B, Py_ssize_t mels, const float *band,
                            Py_ssize_t ldb, Py_ssize_t J, Py_ssize_t N, Py_ssize_t c, Py_ssize_t k, float *out,
                            Py_ssize_t ldo) {
    for (Py_ssize_t b = 0; b < B; b++) {
        const float *xb = x + b * mels * ldx;
        for (Py_ssize_t j0 = 0; j0 < N; j0 += 2 * W) {
            int full = N - j0 >= 2 * W;
            MASK m0 = TAIL(N - j0), m1 = TAIL(N - j0 - W);
            Py_ssize_t lo = j0 / c, hi = (full ? j0 + 2 * W - 1 : N - 1) / c + k;
            if (hi > J) hi = J;
            const float *bj = band + j0;
            V best[2] = {VSET1(-INFINITY), VSET1(-INFINITY)};
            Py_ssize_t m = 0;
            for (; m + MR <= mels; m += MR) NAME(band_rows)(xb + m * ldx, ldx, bj, ldb, lo, hi, MR, full, m0, m1, best);
            const float *xm = xb + m * ldx;
            switch (mels - m) {  /* the last rows, with their count known to the compiler */
                case 5: NAME(band_rows)(xm, ldx, bj, ldb, lo, hi, 5, full, m0, m1, best); break;
                case 4: NAME(band_rows)(xm, ldx, bj, ldb, lo, hi, 4, full, m0, m1, best); break;
                case 3: NAME(band_rows)(xm, ldx, bj, ldb, lo, hi, 3, full, m0, m1, best); break;
                case 2: NAME(band_rows)(xm, ldx, bj, ldb, lo, hi, 2, full, m0, m1, best); break;
                case 1: NAME(band_rows)(xm, ldx, bj, ldb, lo, hi, 1, full, m0, m1, best); break;
            }
            float *o = out + b * ldo + j0;
            if (full) {
                VSTORE(o, best[0]);
                VSTORE(o + W, best[1]);
            } else {
                VSTOREM(o, m0, best[0]);
                VSTOREM(o + W, m1, best[1]);
            }
        }
    }
}

/* The whole of _DftTimbral.pooled: for each block of cb channels (the last may have cb_last), the per-bin
 * products into the scratch z, then the inverse and max into cb rows of out (C, m). w holds the blocks'
 * (bins, 2 cb, K) weights one after the other; s is (bins, K, m) contiguous. One call per kernel shape and
 * pass instead of two per block from Python. */
TARGET static void NAME(timbral)(const float *w, Py_ssize_t blocks, Py_ssize_t cb, Py_ssize_t cb_last, Py_ssize_t bins,
                           Py_ssize_t K, const float *s, Py_ssize_t m, float *z, const float *inverse, Py_ssize_t R,
                           Py_ssize_t pairs, float *out) {
    for (Py_ssize_t i = 0; i < blocks; i++) {
        Py_ssize_t c = i == blocks - 1 ? cb_last : cb, n = c * m;
        NAME(perbin)(w + i * bins * 2 * cb * K, s, z, bins, 2 * c, K, m, 2 * c * K, K, K * m, m, 2 * n, m);
        NAME(inverse_max)(inverse, inverse + R * bins, z, z + n, 2 * n, out + i * cb * m, R, bins, n, pairs);
    }
}

/* The whole of _BandedTemporal.pooled: band_max for each block of `frames` output frames (fewer at the end)
 * of `total`; block s reads x from frame s and writes out from column s * c. */
TARGET static void NAME(temporal)(const float *x, Py_ssize_t ldx, Py_ssize_t B, Py_ssize_t mels, Py_ssize_t total,
                            const float *band, Py_ssize_t ldb, Py_ssize_t frames, Py_ssize_t c, Py_ssize_t k,
                            float *out, Py_ssize_t ldo) {
    for (Py_ssize_t s = 0; s < total; s += frames) {
        Py_ssize_t t = total - s < frames ? total - s : frames;
        NAME(band_max)(x + s, ldx, B, mels, band, ldb, t + k - 1, t * c, c, k, out + s * c, ldo);
    }
}
