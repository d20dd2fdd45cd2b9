/* The element-wise part of the GRU's training steps in C (float32, CPU), reset="after" (torch's form).
 *
 * As _lstm.c for the LSTM: rnnkit/kernels/cgru.py runs one GEMM per step (torch.mm) and calls these
 * once per step; rnnkit/kernels/gru.py computes the same in PyTorch, and the tests compare the two.
 *
 * Forward, row b of step t (gate order r, z, n of torch; LN normalises each gate block of H units):
 *     gx = LN(W_ih x) * g_ih + b_ih   or  W_ih x + b_ih (the caller's projection)
 *     gh = LN(W_hh h) * g_hh + b_hh   or  W_hh h + b_hh
 *     r, z = sigmoid(gx_rz + gh_rz),  n = tanh(gx_n + r * gh_n),  h' = n + z * (h - n)
 *     h <- valid ? lerp(h', h, zoneout) : h
 * and the backward's factors C = ((1-z)(1-n^2) gh_n r(1-r), (h - n) z(1-z), (1-z)(1-n^2) r, (1-z)(1-n^2))
 * (for d_r, d_z, d_n through gh, d_n through gx) and Z = z.
 *
 * Backward, row b of step t, from dh (the gradient of the carried h_t):
 *     dh' = dh * U (U = (1 - zoneout) * valid),  (d_r, d_z, d_nh, d_nx) = dh' * C
 *     du = (d_r, d_z, d_nh): gradient of gh,  dx = (d_r, d_z, d_nx): gradient of gx
 *     layer norm: DU = LN backward of du * g_hh, dGX = LN backward of dx * g_ih; else DU = du, dGX = dx
 *     base <- d_hs[t-1] + dh' z + (dh - dh')
 * after which the caller computes dh_{t-1} = base + DU W_hh (one GEMM). With layer norm the gains' and
 * biases' gradients are summed over the rows into double accumulators.
 */

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "_kernels.h"

typedef struct {
    int32_t B, H, threads, t;
    float *gx;                  /* (T, B, 3H) W_ih x + b_ih, or raw W_ih x (layer norm: normalised in place) */
    float *gh;                  /* (T, B, 3H) raw W_hh h (layer norm: normalised in place) */
    const float *ln_ih, *ln_hh; /* (3H,) gate gains, or NULL without layer norm */
    const float *b_ih;          /* (3H,) with layer norm (zeros without biases), else in gx */
    const float *b_hh;          /* (3H,) (zeros without biases) */
    float *rstd_x, *rstd_h;     /* (T, B, 3) out: 1/std of each gate block (layer norm) */
    float *hs;                  /* (T + 1, B, H) carried states; [0] given */
    const float *zh;            /* (T, B, H) zoneout: the weight of the old state, or NULL */
    const uint8_t *valid;       /* (T, B) 1 for real steps, or NULL */
    float *C, *Z;               /* (T, B, 4H), (T, B, H) out: the backward's factors */
} rk_gru_forward;

typedef struct {
    int32_t B, H, threads, t;
    const float *dh;            /* (B, H) in: gradient of the carried h_t */
    float *base;                /* (B, H) out: see the top */
    const float *d_hs;          /* (T, B, H) gradients of the outputs */
    const float *u;             /* (T, B, H) the share U of the carried gradient that is new, or NULL */
    const float *C, *Z;
    const float *y_x, *y_h, *rstd_x, *rstd_h, *ln_ih, *ln_hh; /* layer norm, else NULL */
    float *dx, *du;             /* (B, 3H) scratch (layer norm): the gradients before the norms */
    float *dGX, *DU;            /* (T, B, 3H) out: gradients of gx and gh as the caller made them */
    double *acc;                /* (12H,) += d g_ih, d g_hh, d b_ih, d b_hh (3H each) (layer norm) */
} rk_gru_backward;

/* The gates, h' and the factors of one row: ln is a constant at each call (branch-free vector loops). */
static inline __attribute__((always_inline)) void gates_row(const int ln, const float *gx, const float *gh,
                                                            const float *gi, const float *gg, const float *bi,
                                                            const float *bh, const float *h_prev, int H, float *Cr,
                                                            float *Zr, float *h_out) {
#pragma omp simd
    for (int j = 0; j < H; j++) {
        const int q0 = j, q1 = H + j, q2 = 2 * H + j;
        const float x0 = ln ? gx[q0] * gi[q0] + bi[q0] : gx[q0], h0 = ln ? gh[q0] * gg[q0] + bh[q0] : gh[q0] + bh[q0];
        const float x1 = ln ? gx[q1] * gi[q1] + bi[q1] : gx[q1], h1 = ln ? gh[q1] * gg[q1] + bh[q1] : gh[q1] + bh[q1];
        const float x2 = ln ? gx[q2] * gi[q2] + bi[q2] : gx[q2], h2 = ln ? gh[q2] * gg[q2] + bh[q2] : gh[q2] + bh[q2];
        const float r = sigmoidf(x0 + h0), z = sigmoidf(x1 + h1), n = tanhf(x2 + r * h2);
        const float dn = (1.0f - z) * (1.0f - n * n);
        Cr[j] = dn * h2 * r * (1.0f - r);
        Cr[H + j] = (h_prev[j] - n) * z * (1.0f - z);
        Cr[2 * H + j] = dn * r;
        Cr[3 * H + j] = dn;
        Zr[j] = z;
        h_out[j] = n + z * (h_prev[j] - n);
    }
}

static inline __attribute__((always_inline)) void forward_row(const rk_gru_forward *a, int b) {
    const int B = a->B, H = a->H, t = a->t;
    const size_t row = (size_t)t * B + b, G = 3 * (size_t)H;
    float *gx = a->gx + row * G, *gh = a->gh + row * G;
    const float *h_prev = a->hs + row * H;
    float *h_out = a->hs + (row + B) * H;
    const float *bi = a->b_ih, *bh = a->b_hh;
    if (a->ln_ih) {
        for (int k = 0; k < 3; k++) {
            a->rstd_x[row * 3 + k] = normalise(gx + (size_t)k * H, H);
            a->rstd_h[row * 3 + k] = normalise(gh + (size_t)k * H, H);
        }
        gates_row(1, gx, gh, a->ln_ih, a->ln_hh, bi, bh, h_prev, H, a->C + row * 4 * H, a->Z + row * H, h_out);
    } else {
        gates_row(0, gx, gh, NULL, NULL, NULL, bh, h_prev, H, a->C + row * 4 * H, a->Z + row * H, h_out);
    }
    if (a->valid && !a->valid[row]) { /* a padded step keeps the state */
        for (int j = 0; j < H; j++) h_out[j] = h_prev[j];
    } else if (a->zh) {
        const float *zh = a->zh + row * H;
#pragma omp simd
        for (int j = 0; j < H; j++) h_out[j] += zh[j] * (h_prev[j] - h_out[j]);
    }
}

static inline __attribute__((always_inline)) void forward_body(const rk_gru_forward *a) {
#pragma omp for schedule(static)
    for (int b = 0; b < a->B; b++) forward_row(a, b);
}

static inline __attribute__((always_inline)) void backward_row(const rk_gru_backward *a, int b) {
    const int B = a->B, H = a->H, t = a->t;
    const size_t row = (size_t)t * B + b, G = 3 * (size_t)H;
    const float *dh = a->dh + (size_t)b * H, *Cr = a->C + row * 4 * H, *Zr = a->Z + row * H;
    const float *u = a->u ? a->u + row * H : NULL;
    const float *d_prev = t > 0 ? a->d_hs + (row - B) * H : NULL;
    float *base = a->base + (size_t)b * H;
    const int ln = a->ln_ih != NULL;
    /* without layer norm the gradients go straight to the outputs, else through the norms below */
    float *dx = ln ? a->dx + (size_t)b * G : a->dGX + row * G, *du = ln ? a->du + (size_t)b * G : a->DU + row * G;
#pragma omp simd
    for (int j = 0; j < H; j++) {
        const float d = u ? dh[j] * u[j] : dh[j];
        const float d_r = d * Cr[j], d_z = d * Cr[H + j];
        du[j] = dx[j] = d_r;
        du[H + j] = dx[H + j] = d_z;
        du[2 * H + j] = d * Cr[2 * H + j];
        dx[2 * H + j] = d * Cr[3 * H + j];
        base[j] = (d_prev ? d_prev[j] : 0.0f) + d * Zr[j] + (dh[j] - d);
    }
    if (ln) {
        for (int k = 0; k < 3; k++) {
            const size_t q = (size_t)k * H;
            normalise_grad(dx + q, a->ln_ih + q, a->y_x + row * G + q, a->rstd_x[row * 3 + k], H, a->dGX + row * G + q);
            normalise_grad(du + q, a->ln_hh + q, a->y_h + row * G + q, a->rstd_h[row * 3 + k], H, a->DU + row * G + q);
        }
    }
}

/* The gains' and biases' gradients (layer norm): sums over the B rows of this step, in double, the
 * columns shared out in blocks that run down the rows (vector inner loops). */
#define RK_BLOCK 64

static inline __attribute__((always_inline)) void accumulate(const rk_gru_backward *a) {
    const int B = a->B, G = 3 * a->H;
    const size_t first = (size_t)a->t * B;
    double *acc_ih = a->acc, *acc_hh = a->acc + G, *acc_bi = a->acc + 2 * G, *acc_bh = a->acc + 3 * G;
#pragma omp for schedule(static)
    for (int q0 = 0; q0 < G; q0 += RK_BLOCK) {
        const int q1 = q0 + RK_BLOCK < G ? q0 + RK_BLOCK : G;
        for (int b = 0; b < B; b++) {
            const float *dx = a->dx + (size_t)b * G, *du = a->du + (size_t)b * G;
            const float *yx = a->y_x + (first + b) * G, *yh = a->y_h + (first + b) * G;
#pragma omp simd
            for (int q = q0; q < q1; q++) {
                acc_ih[q] += (double)(dx[q] * yx[q]);
                acc_hh[q] += (double)(du[q] * yh[q]);
                acc_bi[q] += (double)dx[q];
                acc_bh[q] += (double)du[q];
            }
        }
    }
}

static inline __attribute__((always_inline)) void backward_body(const rk_gru_backward *a) {
#pragma omp for schedule(static)
    for (int b = 0; b < a->B; b++) backward_row(a, b);
    if (a->ln_ih) accumulate(a);
}

/* Compiled twice, for AVX2 + FMA and for any CPU (_kernels.h). */
RK_FAST static void forward_fast(const rk_gru_forward *a) {
#pragma omp parallel num_threads(a->threads)
    forward_body(a);
}
static void forward_any(const rk_gru_forward *a) {
#pragma omp parallel num_threads(a->threads)
    forward_body(a);
}
RK_FAST static void backward_fast(const rk_gru_backward *a) {
#pragma omp parallel num_threads(a->threads)
    backward_body(a);
}
static void backward_any(const rk_gru_backward *a) {
#pragma omp parallel num_threads(a->threads)
    backward_body(a);
}

static int fast_cpu = -1; /* unknown until the first call */

/* One step t (a->t) of the forward; the caller has put W_hh h_{t-1} in gh. */
void rk_gru_forward_step(const rk_gru_forward *a) {
    if (fast_cpu < 0) fast_cpu = use_fast();
    (fast_cpu ? forward_fast : forward_any)(a);
}

/* One step t (a->t) of the backward, from t = T-1 down to 0; see the top for what it leaves. */
void rk_gru_backward_step(const rk_gru_backward *a) {
    if (fast_cpu < 0) fast_cpu = use_fast();
    (fast_cpu ? backward_fast : backward_any)(a);
}
