/* The element-wise part of the GRU's training steps in C (float32, CPU): reset="after" (torch's form)
 * here, reset="before" (Cho et al.) further down.
 *
 * As _lstm.c for the LSTM: rnnkit/kernels/cgru.py calls these once per step around one product W_hh h,
 * or over 16 steps or more runs the whole loop in C (rk_gru_*_steps, rk_gru_before_*_steps);
 * rnnkit/kernels/gru.py computes the same in PyTorch, and the tests compare the two.
 *
 * reset="after", forward, row b of step t (gate order r, z, n; LN normalises each gate block of H units):
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
 * after which dh_{t-1} = base + DU W_hh (one product, by the caller or the C loop). With layer norm the gains' and
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
RK_LAYOUT(rk_gru_forward, B, H, threads, t, gx, gh, ln_ih, ln_hh, b_ih, b_hh, rstd_x, rstd_h, hs, zh, valid, C, Z)

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
RK_LAYOUT(rk_gru_backward, B, H, threads, t, dh, base, d_hs, u, C, Z, y_x, y_h, rstd_x, rstd_h, ln_ih, ln_hh, dx, du,
          dGX, DU, acc)

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
    mix_row(h_out, h_prev, a->zh ? a->zh + row * H : NULL, !a->valid || a->valid[row], H);
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

static inline __attribute__((always_inline)) void accumulate(const rk_gru_backward *a) {
    const int B = a->B, G = 3 * a->H;
    const float *yx = a->y_x + (size_t)a->t * B * G, *yh = a->y_h + (size_t)a->t * B * G;
    sum_rows(a->acc, a->dx, G, yx, G, B, G);
    sum_rows(a->acc + G, a->du, G, yh, G, B, G);
    sum_rows(a->acc + 2 * G, a->dx, G, NULL, 0, B, G);
    sum_rows(a->acc + 3 * G, a->du, G, NULL, 0, B, G);
}

static inline __attribute__((always_inline)) void backward_body(const rk_gru_backward *a) {
#pragma omp for schedule(static)
    for (int b = 0; b < a->B; b++) backward_row(a, b);
    if (a->ln_ih) accumulate(a);
}

/* -- reset="before" (Cho et al.): n reads W_hn (r * h_in), so a step is two calls around that GEMM ----
 *
 * Forward:  [gh_rz = W_hrz h_in]  reset_gates: r, z, RH = r * h_in
 *           [gh_n = W_hn RH]      update: n = tanh(gx_n + gh_n), h' = n + z (h - n), mixing
 *           (gx = [LN] W_ih x + b with b = b_ih + b_hh; every product W h normalised per gate with layer norm)
 *           factors C = (h_in r(1-r), (h - n) z(1-z), (1-z)(1-n^2)), Z = z, R = r
 * Backward: gradient_n: D_z, D_n = dh' C_z, dh' C_n;  DU_n = [LN backward] D_n;  base = d_hs[t-1] + dh' z + carry
 *           [d_rh = DU_n W_hn]    gradient_r: D_r = d_rh C_r;  DU_rz, dGX = [LN backward] D_rz, D;
 *                                 base += d_rh r * mask
 *           [dh_{t-1} = base + (DU_rz W_hrz) * mask]  */

typedef struct {
    int32_t B, H, threads, t;
    float *gx;                  /* (T, B, 3H) as in rk_gru_forward, the bias b_ih + b_hh */
    float *gh_rz;               /* (T, B, 2H) raw W_hrz h_in (layer norm: normalised in place) */
    float *gh_n;                /* (T, B, H) raw W_hn (r * h_in) (layer norm: normalised in place) */
    const float *ln_ih, *ln_hh; /* (3H,) gate gains, or NULL without layer norm */
    const float *bias;          /* (3H,) with layer norm (zeros without biases), else in gx */
    const float *rec_mask;      /* (B, H) recurrent dropout, or NULL */
    float *rstd_x, *rstd_rz, *rstd_n; /* (T, B, 3), (T, B, 2), (T, B) out (layer norm) */
    float *hs;                  /* (T + 1, B, H) carried states; [0] given */
    const float *zh;            /* (T, B, H) zoneout, or NULL */
    const uint8_t *valid;       /* (T, B), or NULL */
    float *RH;                  /* (T, B, H) out: r * h_in */
    float *C;                   /* (T, B, 3H) out: the factors above */
    float *Z, *R;               /* (T, B, H) out: the gates */
} rk_gru_before_forward;
RK_LAYOUT(rk_gru_before_forward, B, H, threads, t, gx, gh_rz, gh_n, ln_ih, ln_hh, bias, rec_mask, rstd_x, rstd_rz,
          rstd_n, hs, zh, valid, RH, C, Z, R)

typedef struct {
    int32_t B, H, threads, t;
    const float *dh;            /* (B, H) in: gradient of the carried h_t */
    float *base;                /* (B, H) out: see above */
    const float *d_rh;          /* (B, H) in (gradient_r): DU_n W_hn */
    const float *d_hs;          /* (T, B, H) gradients of the outputs */
    const float *u;             /* (T, B, H) the share U of the carried gradient that is new, or NULL */
    const float *rec_mask;      /* (B, H), or NULL */
    const float *C, *Z, *R;
    const float *y_x, *y_rz, *y_n, *rstd_x, *rstd_rz, *rstd_n, *ln_ih, *ln_hh; /* layer norm, else NULL */
    float *D;                   /* (B, 3H) scratch: gradients of the pre-activations r, z, n before the norms */
    float *dGX, *DU_rz, *DU_n;  /* (T, B, 3H), (T, B, 2H), (T, B, H) out: of gx, gh_rz, gh_n as the caller made them */
    double *acc;                /* (9H,) += d g_ih (3H), d g_hh (3H), d b (3H) (layer norm) */
} rk_gru_before_backward;
RK_LAYOUT(rk_gru_before_backward, B, H, threads, t, dh, base, d_rh, d_hs, u, rec_mask, C, Z, R, y_x, y_rz, y_n, rstd_x,
          rstd_rz, rstd_n, ln_ih, ln_hh, D, dGX, DU_rz, DU_n, acc)

/* r, z, r * h_in and the factor of d_r for one row; ln is a constant at each call (branch-free loops). */
static inline __attribute__((always_inline)) void reset_gates(const int ln, const float *gx, const float *gh,
                                                              const float *gi, const float *gg, const float *bias,
                                                              const float *h, const float *mask, int H, float *Rr,
                                                              float *Zr, float *rh, float *Cr) {
#pragma omp simd
    for (int j = 0; j < H; j++) {
        const int q0 = j, q1 = H + j;
        const float pr = ln ? gx[q0] * gi[q0] + bias[q0] + gh[q0] * gg[q0] : gx[q0] + gh[q0];
        const float pz = ln ? gx[q1] * gi[q1] + bias[q1] + gh[q1] * gg[q1] : gx[q1] + gh[q1];
        const float r = sigmoidf(pr), z = sigmoidf(pz), h_in = mask ? h[j] * mask[j] : h[j];
        Rr[j] = r, Zr[j] = z, rh[j] = r * h_in;
        Cr[j] = h_in * r * (1.0f - r);
    }
}

static inline __attribute__((always_inline)) void reset_row(const rk_gru_before_forward *a, int b) {
    const int B = a->B, H = a->H;
    const size_t row = (size_t)a->t * B + b, G = 3 * (size_t)H;
    float *gx = a->gx + row * G, *gh = a->gh_rz + row * 2 * H;
    const float *h = a->hs + row * H, *mask = a->rec_mask ? a->rec_mask + (size_t)b * H : NULL;
    float *Cr = a->C + row * G, *Zr = a->Z + row * H, *Rr = a->R + row * H, *rh = a->RH + row * H;
    if (a->ln_ih) {
        for (int k = 0; k < 3; k++) a->rstd_x[row * 3 + k] = normalise(gx + (size_t)k * H, H);
        for (int k = 0; k < 2; k++) a->rstd_rz[row * 2 + k] = normalise(gh + (size_t)k * H, H);
        reset_gates(1, gx, gh, a->ln_ih, a->ln_hh, a->bias, h, mask, H, Rr, Zr, rh, Cr);
    } else {
        reset_gates(0, gx, gh, NULL, NULL, NULL, h, mask, H, Rr, Zr, rh, Cr);
    }
}

/* n, h' and the factors of d_z and d_n for one row; ln is a constant at each call. */
static inline __attribute__((always_inline)) void update_gates(const int ln, const float *gx, const float *gh,
                                                               const float *gi, const float *gg, const float *bias,
                                                               const float *h_prev, const float *Zr, int H, float *Cr,
                                                               float *h_out) {
#pragma omp simd
    for (int j = 0; j < H; j++) {
        const float p = ln ? gx[j] * gi[j] + bias[j] + gh[j] * gg[j] : gx[j] + gh[j];
        const float n = tanhf(p), z = Zr[j];
        Cr[H + j] = (h_prev[j] - n) * z * (1.0f - z);
        Cr[2 * H + j] = (1.0f - z) * (1.0f - n * n);
        h_out[j] = n + z * (h_prev[j] - n);
    }
}

static inline __attribute__((always_inline)) void update_row(const rk_gru_before_forward *a, int b) {
    const int B = a->B, H = a->H;
    const size_t row = (size_t)a->t * B + b, G = 3 * (size_t)H;
    const float *gx = a->gx + row * G + 2 * H, *h_prev = a->hs + row * H, *Zr = a->Z + row * H;
    float *gh = a->gh_n + row * H, *Cr = a->C + row * G, *h_out = a->hs + (row + B) * H;
    if (a->ln_ih) {
        a->rstd_n[row] = normalise(gh, H);
        update_gates(1, gx, gh, a->ln_ih + 2 * H, a->ln_hh + 2 * H, a->bias + 2 * H, h_prev, Zr, H, Cr, h_out);
    } else {
        update_gates(0, gx, gh, NULL, NULL, NULL, h_prev, Zr, H, Cr, h_out);
    }
    mix_row(h_out, h_prev, a->zh ? a->zh + row * H : NULL, !a->valid || a->valid[row], H);
}

static inline __attribute__((always_inline)) void gradient_n_row(const rk_gru_before_backward *a, int b) {
    const int B = a->B, H = a->H, t = a->t;
    const size_t row = (size_t)t * B + b, G = 3 * (size_t)H;
    const float *dh = a->dh + (size_t)b * H, *Cr = a->C + row * G, *Zr = a->Z + row * H;
    const float *u = a->u ? a->u + row * H : NULL, *d_prev = t > 0 ? a->d_hs + (row - B) * H : NULL;
    const int ln = a->ln_ih != NULL;
    float *D = ln ? a->D + (size_t)b * G : a->dGX + row * G, *base = a->base + (size_t)b * H;
    float *du_n = a->DU_n + row * H;
#pragma omp simd
    for (int j = 0; j < H; j++) {
        const float d = u ? dh[j] * u[j] : dh[j];
        D[H + j] = d * Cr[H + j];
        D[2 * H + j] = d * Cr[2 * H + j];
        base[j] = (d_prev ? d_prev[j] : 0.0f) + d * Zr[j] + (dh[j] - d);
    }
    if (ln)
        normalise_grad(D + 2 * H, a->ln_hh + 2 * H, a->y_n + row * H, a->rstd_n[row], H, du_n);
    else
        for (int j = 0; j < H; j++) du_n[j] = D[2 * H + j];
}

static inline __attribute__((always_inline)) void gradient_r_row(const rk_gru_before_backward *a, int b) {
    const int B = a->B, H = a->H;
    const size_t row = (size_t)a->t * B + b, G = 3 * (size_t)H;
    const float *Cr = a->C + row * G, *Rr = a->R + row * H, *d_rh = a->d_rh + (size_t)b * H;
    const float *mask = a->rec_mask ? a->rec_mask + (size_t)b * H : NULL;
    const int ln = a->ln_ih != NULL;
    float *D = ln ? a->D + (size_t)b * G : a->dGX + row * G, *base = a->base + (size_t)b * H;
    float *du_rz = a->DU_rz + row * 2 * H;
#pragma omp simd
    for (int j = 0; j < H; j++) {
        D[j] = d_rh[j] * Cr[j];
        base[j] += mask ? d_rh[j] * Rr[j] * mask[j] : d_rh[j] * Rr[j];
    }
    if (!ln) {
        for (int j = 0; j < 2 * H; j++) du_rz[j] = D[j];
    } else {
        for (int k = 0; k < 3; k++) {
            const size_t q = (size_t)k * H;
            normalise_grad(D + q, a->ln_ih + q, a->y_x + row * G + q, a->rstd_x[row * 3 + k], H, a->dGX + row * G + q);
        }
        for (int k = 0; k < 2; k++) {
            const size_t q = (size_t)k * H;
            normalise_grad(D + q, a->ln_hh + q, a->y_rz + row * 2 * H + q, a->rstd_rz[row * 2 + k], H, du_rz + q);
        }
    }
}

static inline __attribute__((always_inline)) void reset_body(const rk_gru_before_forward *a) {
#pragma omp for schedule(static)
    for (int b = 0; b < a->B; b++) reset_row(a, b);
}
static inline __attribute__((always_inline)) void update_body(const rk_gru_before_forward *a) {
#pragma omp for schedule(static)
    for (int b = 0; b < a->B; b++) update_row(a, b);
}
static inline __attribute__((always_inline)) void gradient_n_body(const rk_gru_before_backward *a) {
#pragma omp for schedule(static)
    for (int b = 0; b < a->B; b++) gradient_n_row(a, b);
}
static inline __attribute__((always_inline)) void gradient_r_body(const rk_gru_before_backward *a) {
    const int B = a->B, H = a->H, G = 3 * H;
#pragma omp for schedule(static)
    for (int b = 0; b < B; b++) gradient_r_row(a, b);
    if (a->ln_ih) { /* the gains' and the bias's gradients from D (B, 3H) */
        const size_t first = (size_t)a->t * B;
        sum_rows(a->acc, a->D, G, a->y_x + first * G, G, B, G);
        sum_rows(a->acc + G, a->D, G, a->y_rz + first * 2 * H, 2 * H, B, 2 * H);
        sum_rows(a->acc + G + 2 * H, a->D + 2 * H, G, a->y_n + first * H, H, B, H);
        sum_rows(a->acc + 2 * G, a->D, G, NULL, 0, B, G);
    }
}

/* One step t (a->t) of the forward; the caller has put W_hh h_{t-1} in gh. */
RK_ENTRY(rk_gru_forward_step, forward_body, rk_gru_forward)
/* One step t (a->t) of the backward, from t = T-1 down to 0; see the top for what it leaves. */
RK_ENTRY(rk_gru_backward_step, backward_body, rk_gru_backward)
/* All T steps of the forward and of the backward with their products (rk_steps, _kernels.h). */
RK_STEPS_ENTRY(rk_gru_forward_steps, forward_body, rk_gru_forward, 1)
RK_STEPS_ENTRY(rk_gru_backward_steps, backward_body, rk_gru_backward, 0)
/* reset="before", the four calls of a step (see above) */
RK_ENTRY(rk_gru_before_reset, reset_body, rk_gru_before_forward)
RK_ENTRY(rk_gru_before_update, update_body, rk_gru_before_forward)
RK_ENTRY(rk_gru_before_gradient_n, gradient_n_body, rk_gru_before_backward)
RK_ENTRY(rk_gru_before_gradient_r, gradient_r_body, rk_gru_before_backward)

/* reset="before" over all T steps in one team of threads, with both products of a step in C: rz is the
 * W_rz h product as rk_steps describes it (_kernels.h), n the W_n one around the reset:
 *   forward,  t = 0 .. T-1: gh_rz[t] = (h_t * mask) W_rz^T, reset, gh_n[t] = RH[t] W_n^T, update
 *             (n: x = RH (T, B, H), y = gh_n (T, B, H), W = W_n packed);
 *   backward, t = T-1 .. 0: gradient_n, d_rh = DU_n[t] W_n, gradient_r, dh = base + (DU_rz[t] W_rz) * mask
 *             (n: x = DU_n (T, B, H), y = d_rh (B, H), W = W_n^T packed). */
static inline __attribute__((always_inline)) void before_forward_loop(const rk_steps *rz, const rk_steps *n,
                                                                      const rk_gru_before_forward *a) {
    rk_gru_before_forward step = *a; /* each thread's own copy */
    for (int t = 0; t < rz->T; t++) {
        const size_t rows = (size_t)t * n->B;
        step.t = t;
        steps_forward_product(rz, t);
        reset_body(&step);
        matvec_body(n->W, NULL, NULL, n->x + rows * n->K, n->B, n->R, n->K, n->y + rows * n->R);
        update_body(&step);
    }
}

static inline __attribute__((always_inline)) void before_backward_loop(const rk_steps *rz, const rk_steps *n,
                                                                       const rk_gru_before_backward *a) {
    rk_gru_before_backward step = *a;
    for (int t = rz->T - 1; t >= 0; t--) {
        step.t = t;
        gradient_n_body(&step);
        matvec_body(n->W, NULL, NULL, n->x + (size_t)t * n->B * n->K, n->B, n->R, n->K, n->y);
        gradient_r_body(&step);
        steps_backward_product(rz, t);
    }
}

#define RK_BEFORE_ENTRY(name, loop, type)                                                   \
    RK_FAST static void name##_fast(const rk_steps *rz, const rk_steps *n, const type *a) { \
        _Pragma("omp parallel num_threads(rz->threads)") loop(rz, n, a);                    \
    }                                                                                       \
    static void name##_any(const rk_steps *rz, const rk_steps *n, const type *a) {          \
        _Pragma("omp parallel num_threads(rz->threads)") loop(rz, n, a);                    \
    }                                                                                       \
    void name(const rk_steps *rz, const rk_steps *n, const type *a) {                       \
        static int fast = -1;                                                               \
        if (fast < 0) fast = use_fast();                                                    \
        (fast ? name##_fast : name##_any)(rz, n, a);                                        \
    }

RK_BEFORE_ENTRY(rk_gru_before_forward_steps, before_forward_loop, rk_gru_before_forward)
RK_BEFORE_ENTRY(rk_gru_before_backward_steps, before_backward_loop, rk_gru_before_backward)
