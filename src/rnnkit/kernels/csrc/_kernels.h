/* What the C kernels share (_generate.c, _lstm.c, _gru.c, _rnn.c, _pack.c, _cells.c): the cells' layer norm
 * and sigmoid, the product of packed weights with a batch of rows, the training loops around the per-step
 * bodies, the choice between code compiled for AVX2 with fused multiply-add and code for any x86-64 CPU, and
 * the export of the structs' layouts for the Python side to check.
 *
 * Each kernel writes its loops once, as always_inline bodies, and compiles them twice: in an RK_FAST
 * function (8 float lanes, libmvec's 8-wide expf/tanhf) and in a plain one; use_fast() picks at run time.
 */
#ifndef RK_KERNELS_H
#define RK_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

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

/* y[n, r] = b[r] + c[n, r] + sum_k W[r, k] x[n, k] for r < R, n < N; x rows of length K (stride K), y and c
 * rows of length R; b and c may be NULL, and c may be y (y += x W^T).
 *
 * W comes packed in panels of 24 rows, each stored column by column: panel p holds W[24p + j, k] at
 * [p][k][j] (K * 24 floats, rows past R zero). A panel is then read front to back, and for every k the
 * 24 weights of a column (three AVX2 registers) are multiplied by a broadcast x[n, k] into 24 accumulators
 * per sequence: no horizontal sums, and each weight load serves up to four sequences. Four sequences take
 * 12 of the 16 vector registers; that block, 24 rows by 4, ran 1.3-1.5x faster than 16 by 4 at batch 16
 * and 1.4x at batch 1, where three independent accumulator chains per sequence hide the FMA latency. */
#define RK_PANEL 24

static inline __attribute__((always_inline)) void panel_block(const int NB, const float *panel, const float *x,
                                                              int n0, int K, float acc[][RK_PANEL]) {
    const float *u[4];
    for (int m = 0; m < NB; m++) u[m] = x + (size_t)(n0 + m) * K;
    for (int m = 0; m < NB; m++)
        for (int j = 0; j < RK_PANEL; j++) acc[m][j] = 0.0f;
    for (int k = 0; k < K; k++) {
        const float *w = panel + (size_t)k * RK_PANEL;
        for (int m = 0; m < NB; m++) {
            const float xv = u[m][k];
#pragma omp simd
            for (int j = 0; j < RK_PANEL; j++) acc[m][j] += w[j] * xv;
        }
    }
}

static inline __attribute__((always_inline)) void matvec_body(const float *W, const float *b, const float *c,
                                                              const float *x, int N, int R, int K, float *y) {
    const int panels = (R + RK_PANEL - 1) / RK_PANEL;
#pragma omp for schedule(static)
    for (int p = 0; p < panels; p++) {
        const float *panel = W + (size_t)p * K * RK_PANEL;
        const int r0 = p * RK_PANEL, rows = R - r0 < RK_PANEL ? R - r0 : RK_PANEL;
        float acc[4][RK_PANEL];
        for (int n0 = 0; n0 < N;) {
            const int NB = N - n0 >= 4 ? 4 : N - n0; /* four sequences per pass, then the rest together */
            switch (NB) { /* a constant block size each, so that the accumulators stay in registers */
            case 1: panel_block(1, panel, x, n0, K, acc); break;
            case 2: panel_block(2, panel, x, n0, K, acc); break;
            case 3: panel_block(3, panel, x, n0, K, acc); break;
            default: panel_block(4, panel, x, n0, K, acc);
            }
            for (int m = 0; m < NB; m++) {
                const size_t at = (size_t)(n0 + m) * R + r0;
                for (int j = 0; j < rows; j++) y[at + j] = (b ? b[r0 + j] : 0.0f) + (c ? c[at + j] : 0.0f) + acc[m][j];
            }
            n0 += NB;
        }
    }
}

/* The loop over all steps of a training kernel, around its per-step body, in one team of threads: no
 * Python, no fork and join per step. rnnkit/kernels/native.py fills it where the products run in C.
 *   forward,  t = 0 .. T-1:  y[t] = (add ? y[t] : 0) + (x[t] * mask) W^T,  then the cell's step t
 *             x = hs (T + 1, B, K), y = the products (T, B, R), W = W_hh packed (R = G H, K = H);
 *   backward, t = T-1 .. 0:  the cell's step t,  then y = base + (x[t] W^T) * mask
 *             x = DU (T, B, K), y = dh (B, R), W = W_hh^T packed (R = H, K = G H).
 * The mask (recurrent dropout, (B, H) in full) may be NULL; scratch holds (B, H) floats. */
typedef struct {
    int32_t T, B, R, K, threads, add;
    const float *W, *mask;
    float *scratch;
    const float *x;
    float *y;
    const float *base;
} rk_steps;

static inline __attribute__((always_inline)) void steps_forward_product(const rk_steps *s, int t) {
    const size_t n = (size_t)s->B * s->K;
    const float *x = s->x + t * n;
    float *y = s->y + (size_t)t * s->B * s->R;
    if (s->mask) {
#pragma omp for simd schedule(static)
        for (size_t i = 0; i < n; i++) s->scratch[i] = x[i] * s->mask[i];
        x = s->scratch;
    }
    matvec_body(s->W, NULL, s->add ? y : NULL, x, s->B, s->R, s->K, y);
}

static inline __attribute__((always_inline)) void steps_backward_product(const rk_steps *s, int t) {
    const float *x = s->x + (size_t)t * s->B * s->K;
    if (!s->mask) {
        matvec_body(s->W, NULL, s->base, x, s->B, s->R, s->K, s->y);
        return;
    }
    matvec_body(s->W, NULL, NULL, x, s->B, s->R, s->K, s->scratch);
    const size_t n = (size_t)s->B * s->R;
#pragma omp for simd schedule(static)
    for (size_t i = 0; i < n; i++) s->y[i] = s->base[i] + s->scratch[i] * s->mask[i];
}

/* Exported `name`(steps, args): the forward (forward = 1) or backward loop above around `body`, a kernel's
 * per-step body of one `type` *a, which reads the step from a->t. Each thread steps its own copy of *a. */
#define RK_STEPS_LOOP(s, a, body, type, forward)                                    \
    _Pragma("omp parallel num_threads(s->threads)") {                               \
        type step = *(a);                                                           \
        for (int i = 0; i < s->T; i++) {                                            \
            const int t = forward ? i : s->T - 1 - i;                               \
            step.t = t;                                                             \
            if (forward) steps_forward_product(s, t);                               \
            body(&step);                                                            \
            if (!forward) steps_backward_product(s, t);                             \
        }                                                                           \
    }
#define RK_STEPS_ENTRY(name, body, type, forward)                                   \
    RK_FAST static void name##_fast(const rk_steps *s, const type *a) {             \
        RK_STEPS_LOOP(s, a, body, type, forward)                                    \
    }                                                                               \
    static void name##_any(const rk_steps *s, const type *a) {                      \
        RK_STEPS_LOOP(s, a, body, type, forward)                                    \
    }                                                                               \
    void name(const rk_steps *s, const type *a) {                                   \
        static int fast = -1;                                                       \
        if (fast < 0) fast = use_fast();                                            \
        (fast ? name##_fast : name##_any)(s, a);                                    \
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

/* The layouts of the structs the exported functions take, for rnnkit/kernels/layout.py: the Python side
 * declares each struct again as a ctypes.Structure, and at load time checks those declarations against
 * what the compiler made of the C ones (a library that disagrees is not used).
 *
 *   RK_LAYOUT(type, field, ...)   after the typedef, with every field in order: the rk_layout type##_layout
 *   RK_EXPORT_LAYOUTS(type, ...)  once per extension, with every struct its functions take; exports
 *       int rk_layouts(const rk_layout *const **out)   sets *out to the table of those structs' layouts
 *                                                       and returns their number
 *       const float rk_layer_norm_eps                  RK_LAYER_NORM_EPS, as normalise() adds it
 *
 * A field name the struct lacks does not compile. A field left out of RK_LAYOUT goes unseen (Python reports
 * the declaration's extra field instead, unless the C field sits in padding), so list them all. rk_layout
 * and rk_layout_field are the one layout that layout.py declares without a check: keep them as they are. */
typedef struct {
    const char *name;
    size_t offset, size; /* offsetof, sizeof */
} rk_layout_field;

typedef struct {
    const char *name; /* the typedef's */
    size_t size;      /* sizeof */
    size_t n_fields;
    const rk_layout_field *fields;
} rk_layout;

#define RK_FIELD_LAYOUT(T, f) {#f, offsetof(T, f), sizeof(((T *)0)->f)},
#define RK_LAYOUT(T, ...)                                                                  \
    static const rk_layout_field T##_fields[] = {RK_MAP(RK_FIELD_LAYOUT, T, __VA_ARGS__)}; \
    const rk_layout T##_layout = {#T, sizeof(T), sizeof(T##_fields) / sizeof(T##_fields[0]), T##_fields};

#define RK_LAYOUT_EXTERN(_, T) extern const rk_layout T##_layout;
#define RK_LAYOUT_ADDRESS(_, T) &T##_layout,
#define RK_EXPORT_LAYOUTS(...)                                                                     \
    RK_MAP(RK_LAYOUT_EXTERN, _, __VA_ARGS__)                                                       \
    static const rk_layout *const rk_layout_table[] = {RK_MAP(RK_LAYOUT_ADDRESS, _, __VA_ARGS__)}; \
    const float rk_layer_norm_eps = RK_LAYER_NORM_EPS;                                             \
    int rk_layouts(const rk_layout *const **out) {                                                 \
        *out = rk_layout_table;                                                                    \
        return (int)(sizeof(rk_layout_table) / sizeof(rk_layout_table[0]));                        \
    }

/* RK_MAP(m, T, a, b, ...) is m(T, a) m(T, b) ...; up to 40 arguments (more do not compile). */
#define RK_MAP(m, T, ...) RK_CAT(RK_MAP_, RK_COUNT(__VA_ARGS__))(m, T, __VA_ARGS__)
#define RK_CAT(a, b) RK_CAT_(a, b)
#define RK_CAT_(a, b) a##b
#define RK_COUNT(...) RK_COUNT_(__VA_ARGS__, 40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, \
    22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define RK_COUNT_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, _17, _18, _19, _20, _21, \
    _22, _23, _24, _25, _26, _27, _28, _29, _30, _31, _32, _33, _34, _35, _36, _37, _38, _39, _40, n, ...) n
#define RK_MAP_1(m, T, x) m(T, x)
#define RK_MAP_2(m, T, x, ...) m(T, x) RK_MAP_1(m, T, __VA_ARGS__)
#define RK_MAP_3(m, T, x, ...) m(T, x) RK_MAP_2(m, T, __VA_ARGS__)
#define RK_MAP_4(m, T, x, ...) m(T, x) RK_MAP_3(m, T, __VA_ARGS__)
#define RK_MAP_5(m, T, x, ...) m(T, x) RK_MAP_4(m, T, __VA_ARGS__)
#define RK_MAP_6(m, T, x, ...) m(T, x) RK_MAP_5(m, T, __VA_ARGS__)
#define RK_MAP_7(m, T, x, ...) m(T, x) RK_MAP_6(m, T, __VA_ARGS__)
#define RK_MAP_8(m, T, x, ...) m(T, x) RK_MAP_7(m, T, __VA_ARGS__)
#define RK_MAP_9(m, T, x, ...) m(T, x) RK_MAP_8(m, T, __VA_ARGS__)
#define RK_MAP_10(m, T, x, ...) m(T, x) RK_MAP_9(m, T, __VA_ARGS__)
#define RK_MAP_11(m, T, x, ...) m(T, x) RK_MAP_10(m, T, __VA_ARGS__)
#define RK_MAP_12(m, T, x, ...) m(T, x) RK_MAP_11(m, T, __VA_ARGS__)
#define RK_MAP_13(m, T, x, ...) m(T, x) RK_MAP_12(m, T, __VA_ARGS__)
#define RK_MAP_14(m, T, x, ...) m(T, x) RK_MAP_13(m, T, __VA_ARGS__)
#define RK_MAP_15(m, T, x, ...) m(T, x) RK_MAP_14(m, T, __VA_ARGS__)
#define RK_MAP_16(m, T, x, ...) m(T, x) RK_MAP_15(m, T, __VA_ARGS__)
#define RK_MAP_17(m, T, x, ...) m(T, x) RK_MAP_16(m, T, __VA_ARGS__)
#define RK_MAP_18(m, T, x, ...) m(T, x) RK_MAP_17(m, T, __VA_ARGS__)
#define RK_MAP_19(m, T, x, ...) m(T, x) RK_MAP_18(m, T, __VA_ARGS__)
#define RK_MAP_20(m, T, x, ...) m(T, x) RK_MAP_19(m, T, __VA_ARGS__)
#define RK_MAP_21(m, T, x, ...) m(T, x) RK_MAP_20(m, T, __VA_ARGS__)
#define RK_MAP_22(m, T, x, ...) m(T, x) RK_MAP_21(m, T, __VA_ARGS__)
#define RK_MAP_23(m, T, x, ...) m(T, x) RK_MAP_22(m, T, __VA_ARGS__)
#define RK_MAP_24(m, T, x, ...) m(T, x) RK_MAP_23(m, T, __VA_ARGS__)
#define RK_MAP_25(m, T, x, ...) m(T, x) RK_MAP_24(m, T, __VA_ARGS__)
#define RK_MAP_26(m, T, x, ...) m(T, x) RK_MAP_25(m, T, __VA_ARGS__)
#define RK_MAP_27(m, T, x, ...) m(T, x) RK_MAP_26(m, T, __VA_ARGS__)
#define RK_MAP_28(m, T, x, ...) m(T, x) RK_MAP_27(m, T, __VA_ARGS__)
#define RK_MAP_29(m, T, x, ...) m(T, x) RK_MAP_28(m, T, __VA_ARGS__)
#define RK_MAP_30(m, T, x, ...) m(T, x) RK_MAP_29(m, T, __VA_ARGS__)
#define RK_MAP_31(m, T, x, ...) m(T, x) RK_MAP_30(m, T, __VA_ARGS__)
#define RK_MAP_32(m, T, x, ...) m(T, x) RK_MAP_31(m, T, __VA_ARGS__)
#define RK_MAP_33(m, T, x, ...) m(T, x) RK_MAP_32(m, T, __VA_ARGS__)
#define RK_MAP_34(m, T, x, ...) m(T, x) RK_MAP_33(m, T, __VA_ARGS__)
#define RK_MAP_35(m, T, x, ...) m(T, x) RK_MAP_34(m, T, __VA_ARGS__)
#define RK_MAP_36(m, T, x, ...) m(T, x) RK_MAP_35(m, T, __VA_ARGS__)
#define RK_MAP_37(m, T, x, ...) m(T, x) RK_MAP_36(m, T, __VA_ARGS__)
#define RK_MAP_38(m, T, x, ...) m(T, x) RK_MAP_37(m, T, __VA_ARGS__)
#define RK_MAP_39(m, T, x, ...) m(T, x) RK_MAP_38(m, T, __VA_ARGS__)
#define RK_MAP_40(m, T, x, ...) m(T, x) RK_MAP_39(m, T, __VA_ARGS__)

#endif
