/* What the C kernels share (_generate.c, _lstm.c, _gru.c): the cells' layer norm and sigmoid, and the choice
 * between code compiled for AVX2 with fused multiply-add and code for any x86-64 CPU.
 *
 * Each kernel writes its loops once, as always_inline bodies, and compiles them twice: in an RK_FAST
 * function (8 float lanes, libmvec's 8-wide expf/tanhf) and in a plain one; use_fast() picks at run time.
 */
#ifndef RK_KERNELS_H
#define RK_KERNELS_H

#include <math.h>
#include <stddef.h>

#define RK_LAYER_NORM_EPS 1e-5f /* rnnkit.cells.LAYER_NORM_EPS */

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* x (n,) <- (x - mean) / sqrt(var + eps), returning 1 / sqrt(var + eps); two passes, as torch does. */
static inline __attribute__((always_inline)) float normalise(float *x, int n) {
    float s = 0.0f, v = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < n; j++) s += x[j];
    const float mean = s / n;
#pragma omp simd reduction(+ : v)
    for (int j = 0; j < n; j++) v += (x[j] - mean) * (x[j] - mean);
    const float rstd = 1.0f / sqrtf(v / n + RK_LAYER_NORM_EPS);
#pragma omp simd
    for (int j = 0; j < n; j++) x[j] = (x[j] - mean) * rstd;
    return rstd;
}

/* The gradient through normalise and a gain: dx (n,) = rstd * (dy - mean(dy) - y * mean(dy * y)), dy = d * gain. */
static inline __attribute__((always_inline)) void normalise_grad(const float *d, const float *gain, const float *y,
                                                                 float rstd, int n, float *dx) {
    float s = 0.0f, sy = 0.0f;
#pragma omp simd reduction(+ : s, sy)
    for (int j = 0; j < n; j++) {
        const float dy = d[j] * gain[j];
        s += dy, sy += dy * y[j];
    }
    const float m = s / n, my = sy / n;
#pragma omp simd
    for (int j = 0; j < n; j++) dx[j] = rstd * (d[j] * gain[j] - m - y[j] * my);
}

#if defined(__GNUC__) && defined(__x86_64__)
#define RK_FAST __attribute__((target("avx2,fma")))
static inline int use_fast(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#else
#define RK_FAST
static inline int use_fast(void) { return 0; }
#endif

/* The new state of one row after the step: a padded step (valid = 0) keeps the old one, zoneout keeps each
 * unit with weight z (eval: the probability; train: the mask), as torch.where and torch.lerp do in the
 * PyTorch loops. x (n,) holds the new state on entry; z is the row's zoneout weights or NULL. */
static inline __attribute__((always_inline)) void mix_row(float *x, const float *old, const float *z, int valid,
                                                          int n) {
    if (!valid) {
        for (int j = 0; j < n; j++) x[j] = old[j];
    } else if (z) {
#pragma omp simd
        for (int j = 0; j < n; j++) x[j] += z[j] * (old[j] - x[j]);
    }
}

/* acc[q] += sum_b d[b, q] y[b, q] (or sum_b d[b, q] when y is NULL) for q < n, in double: the gains' and
 * biases' gradients. The columns are shared out in blocks that run down the rows (vector inner loops);
 * call from every thread of a team. */
#define RK_BLOCK 64

static inline __attribute__((always_inline)) void sum_rows(double *acc, const float *d, size_t d_stride,
                                                           const float *y, size_t y_stride, int B, int n) {
#pragma omp for schedule(static)
    for (int q0 = 0; q0 < n; q0 += RK_BLOCK) {
        const int q1 = q0 + RK_BLOCK < n ? q0 + RK_BLOCK : n;
        for (int b = 0; b < B; b++) {
            const float *db = d + b * d_stride, *yb = y ? y + b * y_stride : NULL;
#pragma omp simd
            for (int q = q0; q < q1; q++) acc[q] += (double)(yb ? db[q] * yb[q] : db[q]);
        }
    }
}

/* An exported function `name` that runs `body` (an always_inline function of one `type` *a) on a team of
 * a->threads threads, compiled for AVX2 + FMA and for any CPU, the first chosen where the CPU has them. */
#define RK_ENTRY(name, body, type)                               \
    RK_FAST static void body##_fast(const type *a) {             \
        _Pragma("omp parallel num_threads(a->threads)") body(a); \
    }                                                            \
    static void body##_any(const type *a) {                      \
        _Pragma("omp parallel num_threads(a->threads)") body(a); \
    }                                                            \
    void name(const type *a) {                                   \
        static int fast = -1; /* unknown until the first call */ \
        if (fast < 0) fast = use_fast();                         \
        (fast ? body##_fast : body##_any)(a);                    \
    }

#endif
