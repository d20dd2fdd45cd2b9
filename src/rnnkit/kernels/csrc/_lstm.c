/* The element-wise part of the LSTM's training steps in C (float32, CPU): forward and backward.
 *
 * rnnkit/kernels/lstm.py runs the recurrence as a loop of one product W_hh h per step and the step's
 * element-wise update. With layer norm and zoneout that update is ~25 small tensor operations per step
 * in each direction, each a pass over memory and a dispatch; here it is one pass per row, in cache.
 * rnnkit/kernels/clstm.py calls it once per step from a Python loop (rk_lstm_*_step, torch.mm between),
 * or, over 16 steps or more, runs the whole loop with its products in C (rk_lstm_*_steps: RK_STEPS_ENTRY
 * in _kernels.h). rnnkit/kernels/lstm.py computes the same in PyTorch, and the tests compare the two.
 *
 * Forward, row b of step t (gate order i, f, g, o of torch; LN normalises each gate block of H units):
 *     pre = LN(W_ih x) * g_ih + LN(W_hh h) * g_hh + b      (layer norm; the rows are normalised in place)
 *     pre = W_ih x + b + W_hh h                             (otherwise: the caller adds them in gx)
 *     i, f = sigmoid(pre_i [+ p_i c], pre_f [+ p_f c]),  g = tanh(pre_g)     [peepholes]
 *     c' = f * c + i * g,   o = sigmoid(pre_o [+ p_o c'])
 *     h' = o * tanh(LN(c') * w_c + b_c)   (cell norm with layer norm; else tanh(c'))
 *     (h, c) <- valid ? lerp((h', c'), (h, c), zoneout) : (h, c)
 * and the factors of the backward (see lstm.py): A = (i(1-i)g, f(1-f)c, i(1-g^2), tanh(c')o(1-o)),
 * K = o(1 - tanh(c')^2), F = f.
 *
 * Backward, row b of step t, from dh and dc (the gradients of the carried h_t and c_t):
 *     dh' = dh * Uh, dc' = dc * Uc (U = (1 - zoneout) * valid: the share that reaches the new state)
 *     dG_o = dh' A_o,  dc' += LN_c backward of dh' K  (or dh' K) [+ dG_o p_o],  dG_ifg = dc' A_ifg
 *     dc <- dc' F [+ dG_i p_i + dG_f p_f] + (dc - dc * Uc),   base <- d_hs[t-1] + (dh - dh * Uh)
 *     layer norm: dGX = LN backward of dG * g_ih, DU = LN backward of dG * g_hh
 * after which dh_{t-1} = base + DU W_hh (one product, by the caller or the C loop). The gains' and
 * biases' gradients are summed over the rows into double accumulators.
 *
 * LN backward of y = (x - mean) * rstd, given dy: dx = rstd * (dy - mean(dy) - y * mean(dy * y)).
 */

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "_kernels.h"

typedef struct {
    int32_t B, H, threads, t;
    float *gx;                  /* (T, B, 4H) in: see the top; with layer norm the normalised values on return */
    float *gh;                  /* (T, B, 4H) raw W_hh h, normalised in place (layer norm), else NULL */
    const float *ln_ih, *ln_hh; /* (4H,) gate gains, or NULL without layer norm */
    const float *bias;          /* (4H,) b_ih + b_hh (zeros without biases) with layer norm, else in gx */
    const float *ln_c_w, *ln_c_b; /* (H,) cell norm (both), or NULL */
    float *rstd_x, *rstd_h;     /* (T, B, 4) out: 1/std of each gate block (layer norm) */
    float *y_c;                 /* (T, B, H) out: normalised c' (cell norm) */
    float *rstd_c;              /* (T, B) out (cell norm) */
    float *hs, *cs;             /* (T + 1, B, H) carried states; [0] given */
    const float *zh, *zc;       /* (T, B, H) zoneout: the weight of the old state, or NULL */
    const uint8_t *valid;       /* (T, B) 1 for real steps, or NULL */
    float *A, *K, *F;           /* (T, B, 4H), (T, B, H), (T, B, H) out: the backward's factors; A may be gx
                                 * (without layer norm): each row of gx is read before A's is written */
    const float *peephole;      /* (3H,) p_i, p_f, p_o, or NULL */
    float *c_new;               /* (T, B, H) out: c' before mixing (for the peepholes' gradient), or NULL */
} rk_lstm_forward;
RK_LAYOUT(rk_lstm_forward, B, H, threads, t, gx, gh, ln_ih, ln_hh, bias, ln_c_w, ln_c_b, rstd_x, rstd_h, y_c, rstd_c,
          hs, cs, zh, zc, valid, A, K, F, peephole, c_new)

typedef struct {
    int32_t B, H, threads, t;
    float *dh;                  /* (B, H) in: gradient of the carried h_t */
    float *dc;                  /* (B, H) in: gradient of the carried c_t; out: of c_{t-1} */
    float *base;                /* (B, H) out: d_hs[t-1] (0 at t = 0) + the part of dh that skips the step */
    float *work;                /* (B, H) scratch: gradient of what tanh takes, c' or LN(c') w_c + b_c */
    const float *d_hs;          /* (T, B, H) gradients of the outputs */
    const float *uh, *uc;       /* (T, B, H) the share U of the carried gradients that is new, or NULL */
    const float *A, *K, *F;
    const float *y_x, *y_h, *rstd_x, *rstd_h, *ln_ih, *ln_hh; /* layer norm, else NULL */
    const float *y_c, *rstd_c, *ln_c_w;                       /* cell norm, else NULL */
    float *dG;                  /* (T, B, 4H) out: gradient of the gate pre-activations */
    float *dGX, *DU;            /* (T, B, 4H) out: of the raw W_ih x and W_hh h (layer norm) */
    double *acc;                /* (14H,) += d g_ih (4H), d g_hh (4H), d b (4H), d w_c (H), d b_c (H) */
    const float *peephole;      /* (3H,), or NULL */
} rk_lstm_backward;
RK_LAYOUT(rk_lstm_backward, B, H, threads, t, dh, dc, base, work, d_hs, uh, uc, A, K, F, y_x, y_h, rstd_x, rstd_h,
          ln_ih, ln_hh, y_c, rstd_c, ln_c_w, dG, dGX, DU, acc, peephole)

/* The gates, c' and (without cell norm) h' of one row: ln, cell_norm and peep are constants at each call,
 * so that every variant is compiled to its own branch-free vector loop. */
static inline __attribute__((always_inline)) void gates_row(const int ln, const int cell_norm, const int peep,
                                                            const float *gx, const float *gh, const float *gi,
                                                            const float *gg, const float *bias, const float *pp,
                                                            const float *c_prev, int H, float *Ar, float *Kr,
                                                            float *Fr, float *h_out, float *c_out) {
#pragma omp simd
    for (int j = 0; j < H; j++) {
        const int q0 = j, q1 = H + j, q2 = 2 * H + j, q3 = 3 * H + j;
        const float p0 = ln ? gx[q0] * gi[q0] + gh[q0] * gg[q0] + bias[q0] : gx[q0];
        const float p1 = ln ? gx[q1] * gi[q1] + gh[q1] * gg[q1] + bias[q1] : gx[q1];
        const float p2 = ln ? gx[q2] * gi[q2] + gh[q2] * gg[q2] + bias[q2] : gx[q2];
        const float p3 = ln ? gx[q3] * gi[q3] + gh[q3] * gg[q3] + bias[q3] : gx[q3];
        const float cp = c_prev[j];
        const float i = sigmoidf(peep ? p0 + pp[q0] * cp : p0), f = sigmoidf(peep ? p1 + pp[q1] * cp : p1);
        const float g = tanhf(p2);
        const float c = f * cp + i * g;
        const float o = sigmoidf(peep ? p3 + pp[q2] * c : p3);
        Ar[q0] = i * (1.0f - i) * g;
        Ar[q1] = f * (1.0f - f) * cp;
        Ar[q2] = i * (1.0f - g * g);
        Fr[j] = f;
        c_out[j] = c; /* before mixing */
        if (cell_norm) {
            Ar[q3] = o; /* o until the cell norm is known */
        } else {
            const float tc = tanhf(c);
            Ar[q3] = tc * o * (1.0f - o);
            Kr[j] = o * (1.0f - tc * tc);
            h_out[j] = o * tc;
        }
    }
}

static inline __attribute__((always_inline)) void forward_row(const rk_lstm_forward *a, int b) {
    const int B = a->B, H = a->H, t = a->t;
    const size_t row = (size_t)t * B + b, G = 4 * (size_t)H;
    float *gx = a->gx + row * G, *Ar = a->A + row * G, *Kr = a->K + row * H, *Fr = a->F + row * H;
    const float *h_prev = a->hs + row * H, *c_prev = a->cs + row * H;
    float *h_out = a->hs + (row + B) * H, *c_out = a->cs + (row + B) * H;
    if (a->ln_ih) {
        float *gh = a->gh + row * G;
        for (int k = 0; k < 4; k++) {
            a->rstd_x[row * 4 + k] = normalise(gx + (size_t)k * H, H);
            a->rstd_h[row * 4 + k] = normalise(gh + (size_t)k * H, H);
        }
        const float *gi = a->ln_ih, *gg = a->ln_hh, *bias = a->bias, *pp = a->peephole;
        if (a->ln_c_w && pp)
            gates_row(1, 1, 1, gx, gh, gi, gg, bias, pp, c_prev, H, Ar, Kr, Fr, h_out, c_out);
        else if (a->ln_c_w)
            gates_row(1, 1, 0, gx, gh, gi, gg, bias, NULL, c_prev, H, Ar, Kr, Fr, h_out, c_out);
        else
            gates_row(1, 0, 0, gx, gh, gi, gg, bias, NULL, c_prev, H, Ar, Kr, Fr, h_out, c_out);
    } else if (a->peephole) {
        gates_row(0, 0, 1, gx, NULL, NULL, NULL, NULL, a->peephole, c_prev, H, Ar, Kr, Fr, h_out, c_out);
    } else {
        gates_row(0, 0, 0, gx, NULL, NULL, NULL, NULL, NULL, c_prev, H, Ar, Kr, Fr, h_out, c_out);
    }
    if (a->ln_c_w) {
        float *yc = a->y_c + row * H;
        for (int j = 0; j < H; j++) yc[j] = c_out[j];
        a->rstd_c[row] = normalise(yc, H);
        const float *w = a->ln_c_w, *bc = a->ln_c_b;
#pragma omp simd
        for (int j = 0; j < H; j++) {
            const float o = Ar[3 * H + j], tc = tanhf(yc[j] * w[j] + bc[j]);
            Ar[3 * H + j] = tc * o * (1.0f - o);
            Kr[j] = o * (1.0f - tc * tc);
            h_out[j] = o * tc;
        }
    }
    if (a->c_new) {
        float *c_new = a->c_new + row * H;
        for (int j = 0; j < H; j++) c_new[j] = c_out[j];
    }
    const int valid = !a->valid || a->valid[row];
    mix_row(h_out, h_prev, a->zh ? a->zh + row * H : NULL, valid, H);
    mix_row(c_out, c_prev, a->zc ? a->zc + row * H : NULL, valid, H);
}

static inline __attribute__((always_inline)) void forward_body(const rk_lstm_forward *a) {
#pragma omp for schedule(static)
    for (int b = 0; b < a->B; b++) forward_row(a, b);
}

static inline __attribute__((always_inline)) void backward_row(const rk_lstm_backward *a, int b) {
    const int B = a->B, H = a->H, t = a->t;
    const size_t row = (size_t)t * B + b, G = 4 * (size_t)H;
    float *dh = a->dh + (size_t)b * H, *dc = a->dc + (size_t)b * H, *base = a->base + (size_t)b * H;
    float *work = a->work + (size_t)b * H, *dG = a->dG + row * G;
    const float *Ar = a->A + row * G, *Kr = a->K + row * H, *Fr = a->F + row * H;
    const float *uh = a->uh ? a->uh + row * H : NULL, *uc = a->uc ? a->uc + row * H : NULL;
    const float *d_prev = t > 0 ? a->d_hs + (row - B) * H : NULL;
    /* dh' = dh Uh gives dG_o and the gradient of what tanh takes (work); the rest of dh skips the step */
#pragma omp simd
    for (int j = 0; j < H; j++) {
        const float dm = uh ? dh[j] * uh[j] : dh[j];
        dG[3 * H + j] = dm * Ar[3 * H + j];
        work[j] = dm * Kr[j];
        base[j] = (d_prev ? d_prev[j] : 0.0f) + (dh[j] - dm);
    }
    float *dcn = dh; /* dh is spent: it holds dc' from here on */
    const float *pp = a->peephole;
    if (a->ln_c_w) {
        normalise_grad(work, a->ln_c_w, a->y_c + row * H, a->rstd_c[row], H, dcn);
#pragma omp simd
        for (int j = 0; j < H; j++) dcn[j] += uc ? dc[j] * uc[j] : dc[j];
    } else {
#pragma omp simd
        for (int j = 0; j < H; j++) dcn[j] = work[j] + (uc ? dc[j] * uc[j] : dc[j]);
    }
    if (pp) { /* o reads c' through p_o; i and f read c through p_i and p_f */
#pragma omp simd
        for (int j = 0; j < H; j++) {
            const float d = dcn[j] + dG[3 * H + j] * pp[2 * H + j];
            dG[j] = d * Ar[j];
            dG[H + j] = d * Ar[H + j];
            dG[2 * H + j] = d * Ar[2 * H + j];
            dc[j] = d * Fr[j] + dG[j] * pp[j] + dG[H + j] * pp[H + j] + (uc ? dc[j] - dc[j] * uc[j] : 0.0f);
        }
    } else {
#pragma omp simd
        for (int j = 0; j < H; j++) {
            const float d = dcn[j];
            dG[j] = d * Ar[j];
            dG[H + j] = d * Ar[H + j];
            dG[2 * H + j] = d * Ar[2 * H + j];
            dc[j] = d * Fr[j] + (uc ? dc[j] - dc[j] * uc[j] : 0.0f);
        }
    }
    if (a->ln_ih) {
        for (int k = 0; k < 4; k++) {
            const size_t q = (size_t)k * H;
            normalise_grad(dG + q, a->ln_ih + q, a->y_x + row * G + q, a->rstd_x[row * 4 + k], H, a->dGX + row * G + q);
            normalise_grad(dG + q, a->ln_hh + q, a->y_h + row * G + q, a->rstd_h[row * 4 + k], H, a->DU + row * G + q);
        }
    }
}

/* The gains' and biases' gradients: sums over the B rows of this step (_kernels.h). */
static inline __attribute__((always_inline)) void accumulate(const rk_lstm_backward *a) {
    const int B = a->B, H = a->H, G = 4 * H;
    const size_t first = (size_t)a->t * B;
    const float *dG = a->dG + first * G;
    sum_rows(a->acc, dG, G, a->y_x + first * G, G, B, G);
    sum_rows(a->acc + G, dG, G, a->y_h + first * G, G, B, G);
    sum_rows(a->acc + 2 * G, dG, G, NULL, 0, B, G);
    if (a->ln_c_w) {
        sum_rows(a->acc + 3 * G, a->work, H, a->y_c + first * H, H, B, H);
        sum_rows(a->acc + 3 * G + H, a->work, H, NULL, 0, B, H);
    }
}

static inline __attribute__((always_inline)) void backward_body(const rk_lstm_backward *a) {
#pragma omp for schedule(static)
    for (int b = 0; b < a->B; b++) backward_row(a, b);
    if (a->ln_ih) accumulate(a);
}

/* One step t (a->t) of the forward; the caller has put W_hh h_{t-1} in gh (or added it to gx). */
RK_ENTRY(rk_lstm_forward_step, forward_body, rk_lstm_forward)
/* One step t (a->t) of the backward, from t = T-1 down to 0; see the top for what it leaves. */
RK_ENTRY(rk_lstm_backward_step, backward_body, rk_lstm_backward)
/* All T steps of the forward and of the backward with their products (rk_steps, _kernels.h). */
RK_STEPS_ENTRY(rk_lstm_forward_steps, forward_body, rk_lstm_forward, 1)
RK_STEPS_ENTRY(rk_lstm_backward_steps, backward_body, rk_lstm_backward, 0)
