/* Packing weights for the C products (matvec_body, _kernels.h): rnnkit.kernels.native.pack calls it once per
 * training loop or generation.
 */

#include <stddef.h>
#include <stdint.h>

#include "_kernels.h"

/* W (R, K) row-major into panels of RK_PANEL rows stored column by column (the layout matvec_body reads):
 * out[p][k][j] = W[RK_PANEL p + j][k], zero for rows past R. Blocks of 64 columns keep the panel's rows
 * in cache while their columns are spread out; torch's strided copy of the same took twice as long. */
typedef struct {
    int32_t R, K, threads;
    const float *W;
    float *out; /* (ceil(R / RK_PANEL), K, RK_PANEL) */
} rk_packing;
RK_LAYOUT(rk_packing, R, K, threads, W, out)

static inline __attribute__((always_inline)) void pack_body(const rk_packing *a) {
    const int R = a->R, K = a->K, panels = (R + RK_PANEL - 1) / RK_PANEL;
#pragma omp for schedule(static)
    for (int p = 0; p < panels; p++) {
        float *out = a->out + (size_t)p * K * RK_PANEL;
        const int rows = R - RK_PANEL * p < RK_PANEL ? R - RK_PANEL * p : RK_PANEL;
        for (int k0 = 0; k0 < K; k0 += 64) {
            const int k1 = k0 + 64 < K ? k0 + 64 : K;
            for (int j = 0; j < rows; j++) {
                const float *w = a->W + (size_t)(RK_PANEL * p + j) * K;
                for (int k = k0; k < k1; k++) out[(size_t)k * RK_PANEL + j] = w[k];
            }
            for (int j = rows; j < RK_PANEL; j++) /* past R: no row of W to read */
                for (int k = k0; k < k1; k++) out[(size_t)k * RK_PANEL + j] = 0.0f;
        }
    }
}

RK_ENTRY(rk_pack, pack_body, rk_packing)
