/* The generation loop of rnnkit.generate in C, for the cells on the CPU (float32).
 *
 * Per token and per sequence n of the N generated at once:
 *     x      = E[token_n]                                       embedding lookup, (I,)
 *     layer  : LSTM  g = W_ih x + b_ih + W_hh h + b_hh  (4H: i f g o)
 *                    c' = sigmoid(f) * c + sigmoid(i) * tanh(g),  h' = sigmoid(o) * tanh(c')
 *              GRU   r, z = sigmoid(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z})
 *                    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h
 *                    reset="before" (Cho et al.): n = tanh(W_in x + b_in + b_hn + W_hn (r * h))
 *              RNN   h' = tanh|relu(W_ih x + b_ih + W_hh h + b_hh)
 *              with layer norm every product W x becomes LN(W x) * gain, per gate block (before the
 *              biases), and the LSTM's h' = sigmoid(o) * tanh(LN(c') * w_c + b_c); with zoneout (eval
 *              mode) h <- h' + p (h - h'), and c likewise
 *     logits = W_out h_top + b_out                              (V,)
 *     token  = argmax_v p_v / q_v,  p = softmax(logits / T),  q ~ Exp(1) given by the caller
 * (the exponential race torch's sampler runs, so the tokens are those of the PyTorch path), or
 * argmax_v logits_v when T = 0.
 *
 * Why C: at batch 1 a step is a few matrix-vector products of 0.1-10 MB of weights; from Python every
 * one of the step's ~15 tensor operations costs more dispatch time than its arithmetic. Here the
 * weights stream through once per step, in the order they lie in memory, and serve all N sequences
 * (matvec_body, _kernels.h).
 *
 * Built by setuptools at install time as an (optional) extension module, with OpenMP for the threads
 * (torch's own thread count), and loaded with ctypes by rnnkit/kernels/cgeneration.py; it has no
 * Python API of its own.
 */

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_kernels.h"

enum { RK_LSTM = 0, RK_GRU = 1, RK_RNN_TANH = 2, RK_RNN_RELU = 3 };

typedef struct {
    int32_t kind;          /* RK_* */
    int32_t input_size;    /* I */
    int32_t hidden_size;   /* H */
    const float *w_ih;     /* W_ih (G*H, I) packed in panels (see matvec), G = 4 (LSTM), 3 (GRU), 1 (RNN) */
    const float *w_hh;     /* W_hh (G*H, H) packed in panels */
    const float *b_ih;     /* (G*H,) or NULL */
    const float *b_hh;     /* (G*H,) or NULL */
    float *h;              /* (N, H), read and updated */
    float *c;              /* (N, H) for the LSTM, else NULL */
    const float *w_hn;     /* GRU reset="before": W_hn (H, H) packed, w_hh then holds W_hr, W_hz only; else NULL */
    const float *ln_ih;    /* (G*H,) layer-norm gains of W_ih x, or NULL (then ln_hh, ln_c_* are NULL too) */
    const float *ln_hh;    /* (G*H,) of W_hh h */
    const float *ln_c_w;   /* (H,) LSTM cell norm: weight and bias, or NULL */
    const float *ln_c_b;
    float zoneout;         /* eval-mode zoneout: h <- h' + p (h - h'), likewise c; 0 for none */
    const float *peephole; /* LSTM: (3H,) p_i, p_f, p_o (zeros for none) */
    const float *w_hr;     /* LSTM projection: W_hr (P, H) packed, or NULL */
    int32_t output_size;   /* P: the size of h (H without a projection) */
} rk_layer;
RK_LAYOUT(rk_layer, kind, input_size, hidden_size, w_ih, w_hh, b_ih, b_hh, h, c, w_hn, ln_ih, ln_hh, ln_c_w, ln_c_b,
          zoneout, peephole, w_hr, output_size)

/* y (N rows of `stride`), each of its `blocks` gate blocks of H: y <- LN(y) * gain + bias (bias may be NULL). */
static inline __attribute__((always_inline)) void norm_gates(float *y, int N, int stride, int blocks, int H,
                                                             const float *gain, const float *bias) {
#pragma omp for schedule(static)
    for (int nk = 0; nk < N * blocks; nk++) {
        const int k = nk % blocks;
        float *u = y + (size_t)(nk / blocks) * stride + (size_t)k * H;
        const float *g = gain + (size_t)k * H, *b = bias ? bias + (size_t)k * H : NULL;
        normalise(u, H);
#pragma omp simd
        for (int j = 0; j < H; j++) u[j] = u[j] * g[j] + (b ? b[j] : 0.0f);
    }
}

/* gx <- W_ih x + b_ih, gh <- W_hh h + b_hh (`rows` of W_hh), or with layer norm LN(W x) * gain + b per gate. */
static inline __attribute__((always_inline)) void products(const rk_layer *L, const float *x, int N, int G, int rows,
                                                           float *gx, float *gh) {
    const int H = L->hidden_size, ln = L->ln_ih != NULL;
    matvec_body(L->w_ih, ln ? NULL : L->b_ih, NULL, x, N, G * H, L->input_size, gx);
    matvec_body(L->w_hh, ln ? NULL : L->b_hh, NULL, L->h, N, rows, L->output_size, gh);
    if (ln) {
        norm_gates(gx, N, G * H, G, H, L->ln_ih, L->b_ih);
        norm_gates(gh, N, rows, rows / H, H, L->ln_hh, L->b_hh);
    }
}

/* One layer step for all N sequences; gx (N, G*H), gh (N, G*H) and rh (N, H) are scratch. Called by every
 * thread of the team: the matrix rows and the units are shared out, with a barrier after each part.
 * The units are shared out as (sequence, unit) pairs, in vector lanes (sigmoid and tanh from libmvec). */
static inline __attribute__((always_inline)) void layer_step_body(const rk_layer *L, const float *x, int N,
                                                                  float *gx, float *gh, float *rh) {
    const int H = L->hidden_size, G = L->kind == RK_LSTM ? 4 : L->kind == RK_GRU ? 3 : 1;
    const int before = L->w_hn != NULL;
    products(L, x, N, G, before ? 2 * H : G * H, gx, gh);
    const size_t GH = (size_t)G * H;
    const float p = L->zoneout;
    float *hs = L->h, *cs = L->c;
    if (L->kind == RK_LSTM) {
        /* peepholes always (zeros without): a branch-free loop; the cell norm and the projection need
         * whole rows, so then o and c' wait in the spent gate buffers for a second pass */
        const int rows_after = L->ln_c_w != NULL || L->w_hr != NULL;
        const float *pp = L->peephole;
#pragma omp for simd collapse(2) schedule(static)
        for (int n = 0; n < N; n++) {
            for (int j = 0; j < H; j++) {
                float *a = gx + n * GH, *b = gh + n * GH;
                const size_t u = (size_t)n * H + j;
                const float c_old = cs[u];
                const float i = sigmoidf(a[j] + b[j] + pp[j] * c_old);
                const float f = sigmoidf(a[H + j] + b[H + j] + pp[H + j] * c_old);
                const float g = tanhf(a[2 * H + j] + b[2 * H + j]), c = f * c_old + i * g;
                const float o = sigmoidf(a[3 * H + j] + b[3 * H + j] + pp[2 * H + j] * c);
                cs[u] = c + p * (c_old - c);
                if (rows_after) {
                    a[3 * H + j] = o, b[H + j] = c; /* (this unit's b[H + j] is read above) */
                } else {
                    const float h = o * tanhf(c);
                    hs[u] = h + p * (hs[u] - h);
                }
            }
        }
        if (rows_after) { /* h' = o tanh([LN] c'), then W_hr h' with a projection */
#pragma omp for schedule(static)
            for (int n = 0; n < N; n++) {
                float *c = gh + n * GH + H, *o = gx + n * GH + 3 * H;
                float *h = L->w_hr ? rh + (size_t)n * H : hs + (size_t)n * H;
                if (L->ln_c_w) {
                    normalise(c, H);
#pragma omp simd
                    for (int j = 0; j < H; j++) c[j] = c[j] * L->ln_c_w[j] + L->ln_c_b[j];
                }
#pragma omp simd
                for (int j = 0; j < H; j++) {
                    const float v = o[j] * tanhf(c[j]);
                    h[j] = L->w_hr ? v : v + p * (h[j] - v);
                }
            }
            if (L->w_hr) {
                const int P = L->output_size;
                matvec_body(L->w_hr, NULL, NULL, rh, N, P, H, gx); /* the gates are spent */
#pragma omp for simd collapse(2) schedule(static)
                for (int n = 0; n < N; n++)
                    for (int j = 0; j < P; j++) {
                        const size_t u = (size_t)n * P + j;
                        hs[u] = gx[u] + p * (hs[u] - gx[u]);
                    }
            }
        }
    } else if (L->kind == RK_GRU && before) { /* n = tanh(W_in x + b_n + W_hn (r * h)) */
#pragma omp for simd collapse(2) schedule(static)
        for (int n = 0; n < N; n++) {
            for (int j = 0; j < H; j++) {
                float *a = gx + n * GH;
                const float *b = gh + (size_t)n * 2 * H;
                const float r = sigmoidf(a[j] + b[j]);
                a[H + j] = sigmoidf(a[H + j] + b[H + j]); /* z, kept for the update */
                rh[(size_t)n * H + j] = r * hs[(size_t)n * H + j];
            }
        }
        float *ghn = gh; /* the r, z products are spent */
        matvec_body(L->w_hn, NULL, NULL, rh, N, H, H, ghn);
        if (L->ln_hh) norm_gates(ghn, N, H, 1, H, L->ln_hh + 2 * H, NULL);
#pragma omp for simd collapse(2) schedule(static)
        for (int n = 0; n < N; n++) {
            for (int j = 0; j < H; j++) {
                const float *a = gx + n * GH;
                const size_t u = (size_t)n * H + j;
                const float cand = tanhf(a[2 * H + j] + ghn[u]), h_old = hs[u];
                const float h = cand + a[H + j] * (h_old - cand);
                hs[u] = h + p * (h_old - h);
            }
        }
    } else if (L->kind == RK_GRU) {
#pragma omp for simd collapse(2) schedule(static)
        for (int n = 0; n < N; n++) {
            for (int j = 0; j < H; j++) {
                const float *a = gx + n * GH, *b = gh + n * GH;
                float r = sigmoidf(a[j] + b[j]), z = sigmoidf(a[H + j] + b[H + j]);
                float cand = tanhf(a[2 * H + j] + r * b[2 * H + j]);
                const size_t u = (size_t)n * H + j;
                const float h_old = hs[u], h = cand + z * (h_old - cand);
                hs[u] = h + p * (h_old - h);
            }
        }
    } else {
        const int relu = L->kind == RK_RNN_RELU;
#pragma omp for simd collapse(2) schedule(static)
        for (int n = 0; n < N; n++) {
            for (int j = 0; j < H; j++) {
                float v = gx[n * GH + j] + gh[n * GH + j];
                const size_t u = (size_t)n * H + j;
                const float h = relu ? (v > 0.0f ? v : 0.0f) : tanhf(v);
                hs[u] = h + p * (hs[u] - h);
            }
        }
    }
}

/* The products and the layer step compiled twice, for AVX2 + FMA and for any CPU (_kernels.h). */
static int fast_cpu; /* set by rk_generate before its threads start */

RK_FAST static void matvec_fast(const float *W, const float *b, const float *x, int N, int R, int K, float *y) {
    matvec_body(W, b, NULL, x, N, R, K, y);
}
static void matvec_any(const float *W, const float *b, const float *x, int N, int R, int K, float *y) {
    matvec_body(W, b, NULL, x, N, R, K, y);
}
RK_FAST static void layer_step_fast(const rk_layer *L, const float *x, int N, float *gx, float *gh, float *rh) {
    layer_step_body(L, x, N, gx, gh, rh);
}
static void layer_step_any(const rk_layer *L, const float *x, int N, float *gx, float *gh, float *rh) {
    layer_step_body(L, x, N, gx, gh, rh);
}

static void matvec(const float *W, const float *b, const float *x, int N, int R, int K, float *y) {
    (fast_cpu ? matvec_fast : matvec_any)(W, b, x, N, R, K, y);
}
static void layer_step(const rk_layer *L, const float *x, int N, float *gx, float *gh, float *rh) {
    (fast_cpu ? layer_step_fast : layer_step_any)(L, x, N, gx, gh, rh);
}

/* The k-th largest of a[0..n), 1 <= k <= n, by quickselect (a is reordered). */
static float kth_largest(float *a, int n, int k) {
    int lo = 0, hi = n - 1;
    const int target = k - 1; /* position in descending order */
    while (lo < hi) {
        const float pivot = a[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                const float t = a[i];
                a[i++] = a[j], a[j--] = t;
            }
        }
        if (target <= j)
            hi = j;
        else if (target >= i)
            lo = i;
        else
            break; /* a[j+1..i-1] all equal the pivot */
    }
    return a[target];
}

/* The token drawn from one row of logits (V,): see the top of the file. With top_k in 1..V-1 only the
 * tokens whose logit reaches the k-th largest take part, as in sample_logits; work holds V floats. */
static int64_t draw(const float *logits, const float *race, int V, float temperature, int top_k, float *work) {
    int64_t best = 0;
    if (temperature == 0.0f || race == NULL) {
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        return best;
    }
    float floor = -FLT_MAX; /* no infinities: fast-math assumes there are none */
    if (top_k > 0 && top_k < V) {
        memcpy(work, logits, sizeof(float) * V);
        floor = kth_largest(work, V, top_k);
    }
    float m = logits[0];
    for (int v = 1; v < V; v++) m = logits[v] > m ? logits[v] : m;
    /* p_v is proportional to exp((l_v - max) / T); the normalisation does not move the argmax. */
    float best_score = -1.0f;
    for (int v = 0; v < V; v++) {
        if (logits[v] < floor) continue;
        float score = expf((logits[v] - m) / temperature) / race[v];
        if (score > best_score) best_score = score, best = v;
    }
    return best;
}

/* Generate n_steps tokens for N sequences from their current tokens and state, on n_threads threads.
 *
 * tokens (N,): the last token of each sequence, overwritten with the newest; out (n_steps, N): the
 * tokens; race (n_steps, N, V): Exp(1) draws, or NULL for greedy decoding; top_k: 0 for none. With skip
 * (skip connections) every layer above the first reads [x, h of the layer below] and the head reads the
 * h of every layer, concatenated. Returns 0, -1 on a token outside the embedding table, or -2 when the
 * scratch memory cannot be had.
 */
int rk_generate(int n_layers, const rk_layer *layers, const float *embedding, int V_in, int E,
                const float *head_w, const float *head_b, int V, int N, int n_steps, int64_t *tokens,
                const float *race, float temperature, int top_k, int64_t *out, int n_threads, int skip) {
    int width = 0, widest = 0, all = 0; /* the largest G*H and H of the layers, the sum of their P */
    for (int l = 0; l < n_layers; l++) {
        int G = layers[l].kind == RK_LSTM ? 4 : layers[l].kind == RK_GRU ? 3 : 1;
        if (G * layers[l].hidden_size > width) width = G * layers[l].hidden_size;
        if (layers[l].hidden_size > widest) widest = layers[l].hidden_size;
        all += layers[l].output_size;
    }
    for (int n = 0; n < N; n++)
        if (tokens[n] < 0 || tokens[n] >= V_in) return -1;
    fast_cpu = use_fast();
    /* scratch: inputs (N, E), both sides' gate pre-activations (N, width) each, logits (N, V), top-k's V,
     * r * h of the GRU's reset="before" form or the LSTM's h before its projection (N, widest), and with
     * skip connections a layer's input (N, E + widest) and the head's (N, all) */
    const size_t cat = skip ? (size_t)N * (E + widest + all) : 0;
    float *scratch = malloc(sizeof(float) * ((size_t)N * (E + 2 * (size_t)width + V + widest) + V + cat));
    if (scratch == NULL) return -2;
    float *x = scratch, *gx = x + (size_t)N * E, *gh = gx + (size_t)N * width, *logits = gh + (size_t)N * width;
    float *work = logits + (size_t)N * V, *rh = work + V, *layer_in = rh + (size_t)N * widest;
    float *head_in = layer_in + (size_t)N * (E + widest);
    /* One team for the whole run: the threads share out each matrix's rows and meet at the barriers
     * that end every `omp for` and `omp single`, instead of forking for every product. */
#pragma omp parallel num_threads(n_threads)
    for (int t = 0; t < n_steps; t++) {
#pragma omp single
        for (int n = 0; n < N; n++) memcpy(x + (size_t)n * E, embedding + (size_t)tokens[n] * E, sizeof(float) * E);
        const float *input = x;
        for (int l = 0; l < n_layers; l++) {
            if (skip && l > 0) { /* [x, h of the layer below] */
                const int P = layers[l - 1].output_size;
#pragma omp single
                for (int n = 0; n < N; n++) {
                    memcpy(layer_in + (size_t)n * (E + P), x + (size_t)n * E, sizeof(float) * E);
                    memcpy(layer_in + (size_t)n * (E + P) + E, layers[l - 1].h + (size_t)n * P, sizeof(float) * P);
                }
                input = layer_in;
            }
            layer_step(&layers[l], input, N, gx, gh, rh);
            input = layers[l].h;
        }
        int K = layers[n_layers - 1].output_size;
        if (skip) { /* the head reads every layer's h */
#pragma omp single
            for (int n = 0; n < N; n++)
                for (int l = 0, at = 0; l < n_layers; at += layers[l].output_size, l++)
                    memcpy(head_in + (size_t)n * all + at, layers[l].h + (size_t)n * layers[l].output_size,
                           sizeof(float) * layers[l].output_size);
            input = head_in, K = all;
        }
        matvec(head_w, head_b, input, N, V, K, logits);
#pragma omp single
        for (int n = 0; n < N; n++) {
            const float *q = race ? race + ((size_t)t * N + n) * V : NULL;
            tokens[n] = draw(logits + (size_t)n * V, q, V, temperature, top_k, work);
            out[(size_t)t * N + n] = tokens[n];
        }
    }
    free(scratch);
    return 0;
}

/* rk_layouts and rk_layer_norm_eps (_kernels.h): what the Python side checks its declarations against. */
RK_EXPORT_LAYOUTS(rk_layer)
