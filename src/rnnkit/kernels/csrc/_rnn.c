/* The element-wise part of the vanilla RNN's training steps in C (float32, CPU), as _lstm.c for the LSTM.
 *
 * rnnkit/kernels/crnn.py calls these once per step around one product W_hh h, or over 16 steps or more
 * runs the whole loop in C (rk_rnn_*_steps); rnnkit/kernels/rnn.py computes the same in PyTorch, and the
 * tests compare the two.
 *
 * Forward, row b of step t:
 *     pre = LN(W_ih x) * g_ih + LN(W_hh h) * g_hh + b    (layer norm; the rows are normalised in place)
 *     pre = W_ih x + b + W_hh h                           (otherwise: the caller adds them in gx)
 *     h' = tanh(pre) or relu(pre),  h <- valid ? lerp(h', h, zoneout) : h
 * and the backward's factor C = 1 - h'^2 (tanh) or [h' > 0] (relu).
 *
 * Backward, row b of step t, from dh (the gradient of the carried h_t):
 *     dh' = dh * U,  D = dh' C,  base <- d_hs[t-1] + (dh - dh')
 *     layer norm: dGX = LN backward of D * g_ih, DU = LN backward of D * g_hh; else both are D
 * after which dh_{t-1} = base + DU W_hh (one product, by the caller or the C loop).
 */

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "_kernels.h"

typedef struct {
    int32_t B, H, threads, t, relu;
    float *gx;                  /* (T, B, H) pre-activation (W_ih x + b + W_hh h), or raw W_ih x (layer norm) */
    float *gh;                  /* (T, B, H) raw W_hh h (layer norm), else NULL */
    const float *ln_ih, *ln_hh; /* (H,) gains, or NULL without layer norm */
    const float *bias;          /* (H,) b_ih + b_hh with layer norm (zeros without biases), else in gx */
    float *rstd_x, *rstd_h;     /* (T, B) out (layer norm) */
    float *hs;                  /* (T + 1, B, H) carried states; [0] given */
    const float *zh;            /* (T, B, H) zoneout, or NULL */
    const uint8_t *valid;       /* (T, B), or NULL */
    float *C;                   /* (T, B, H) out: the derivative of the non-linearity */
} rk_rnn_forward;
RK_LAYOUT(rk_rnn_forward, B, H, threads, t, relu, gx, gh, ln_ih, ln_hh, bias, rstd_x, rstd_h, hs, zh, valid, C)

typedef struct {
    int32_t B, H, threads, t;
    const float *dh;            /* (B, H) in: gradient of the carried h_t */
    float *base;                /* (B, H) out */
    const float *d_hs, *u, *C;  /* (T, B, H); u: the share U of the carried gradient that is new, or NULL */
    const float *y_x, *y_h, *rstd_x, *rstd_h, *ln_ih, *ln_hh; /* layer norm, else NULL */
    float *D;                   /* (T, B, H) out: gradient of the pre-activation (before the norms) */
    float *dGX, *DU;            /* (T, B, H) out (layer norm): of the raw W_ih x and W_hh h */
    double *acc;                /* (3H,) += d g_ih, d g_hh, d b (layer norm) */
} rk_rnn_backward;
RK_LAYOUT(rk_rnn_backward, B, H, threads, t, dh, base, d_hs, u, C, y_x, y_h, rstd_x, rstd_h, ln_ih, ln_hh, D, dGX, DU,
          acc)

/* h' and its derivative for one row: ln and relu are constants at each call (branch-free loops). */
static inline __attribute__((always_inline)) void cell_row(const int ln, const int relu, const float *gx,
                                                           const float *gh, const float *gi, const float *gg,
                                                           const float *bias, int H, float *Cr, float *h_out) {
#pragma omp simd
    for (int j = 0; j < H; j++) {
        const float p = ln ? gx[j] * gi[j] + gh[j] * gg[j] + bias[j] : gx[j];
        const float h = relu ? (p > 0.0f ? p : 0.0f) : tanhf(p);
        Cr[j] = relu ? (p > 0.0f ? 1.0f : 0.0f) : 1.0f - h * h;
        h_out[j] = h;
    }
}

static inline __attribute__((always_inline)) void forward_row(const rk_rnn_forward *a, int b) {
    const int B = a->B, H = a->H;
    const size_t row = (size_t)a->t * B + b;
    float *gx = a->gx + row * H, *Cr = a->C + row * H, *h_out = a->hs + (row + B) * H;
    const float *h_prev = a->hs + row * H;
    if (a->ln_ih) {
        float *gh = a->gh + row * H;
        a->rstd_x[row] = normalise(gx, H);
        a->rstd_h[row] = normalise(gh, H);
        if (a->relu)
            cell_row(1, 1, gx, gh, a->ln_ih, a->ln_hh, a->bias, H, Cr, h_out);
        else
            cell_row(1, 0, gx, gh, a->ln_ih, a->ln_hh, a->bias, H, Cr, h_out);
    } else if (a->relu) {
        cell_row(0, 1, gx, NULL, NULL, NULL, NULL, H, Cr, h_out);
    } else {
        cell_row(0, 0, gx, NULL, NULL, NULL, NULL, H, Cr, h_out);
    }
    mix_row(h_out, h_prev, a->zh ? a->zh + row * H : NULL, !a->valid || a->valid[row], H);
}

static inline __attribute__((always_inline)) void forward_body(const rk_rnn_forward *a) {
#pragma omp for schedule(static)
    for (int b = 0; b < a->B; b++) forward_row(a, b);
}

static inline __attribute__((always_inline)) void backward_row(const rk_rnn_backward *a, int b) {
    const int B = a->B, H = a->H, t = a->t;
    const size_t row = (size_t)t * B + b;
    const float *dh = a->dh + (size_t)b * H, *Cr = a->C + row * H;
    const float *u = a->u ? a->u + row * H : NULL, *d_prev = t > 0 ? a->d_hs + (row - B) * H : NULL;
    float *D = a->D + row * H, *base = a->base + (size_t)b * H;
#pragma omp simd
    for (int j = 0; j < H; j++) {
        const float d = u ? dh[j] * u[j] : dh[j];
        D[j] = d * Cr[j];
        base[j] = (d_prev ? d_prev[j] : 0.0f) + (dh[j] - d);
    }
    if (a->ln_ih) {
        normalise_grad(D, a->ln_ih, a->y_x + row * H, a->rstd_x[row], H, a->dGX + row * H);
        normalise_grad(D, a->ln_hh, a->y_h + row * H, a->rstd_h[row], H, a->DU + row * H);
    }
}

static inline __attribute__((always_inline)) void backward_body(const rk_rnn_backward *a) {
    const int B = a->B, H = a->H;
#pragma omp for schedule(static)
    for (int b = 0; b < B; b++) backward_row(a, b);
    if (a->ln_ih) { /* the gains' and the bias's gradients (_kernels.h) */
        const size_t first = (size_t)a->t * B * H;
        sum_rows(a->acc, a->D + first, H, a->y_x + first, H, B, H);
        sum_rows(a->acc + H, a->D + first, H, a->y_h + first, H, B, H);
        sum_rows(a->acc + 2 * H, a->D + first, H, NULL, 0, B, H);
    }
}

/* One step t (a->t) of the forward; the caller has put W_hh h_{t-1} in gh (or added it to gx). */
RK_ENTRY(rk_rnn_forward_step, forward_body, rk_rnn_forward)
/* One step t (a->t) of the backward, from t = T-1 down to 0; see the top for what it leaves. */
RK_ENTRY(rk_rnn_backward_step, backward_body, rk_rnn_backward)
/* All T steps of the forward and of the backward with their products (rk_steps, _kernels.h). */
RK_STEPS_ENTRY(rk_rnn_forward_steps, forward_body, rk_rnn_forward, 1)
RK_STEPS_ENTRY(rk_rnn_backward_steps, backward_body, rk_rnn_backward, 0)
