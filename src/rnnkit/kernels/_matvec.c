/* The product of weights packed in panels (matvec_body, _kernels.h) with a batch of rows, for the loops
 * that step in Python (the GRU's reset="before" form).
 *
 * y = c + x W^T: x (N, K), W (R, K) packed by rnnkit.kernels.native.pack, c and y (N, R); c may be NULL or y.
 * rnnkit.kernels.native.StepProduct calls it once per step in place of torch.mm: torch's product of one row
 * with a (4H, H) matrix runs at a tenth of the machine's speed (68 us at H = 256 here), and at batch 16-64
 * still 1.1-3x slower than the packed panels.
 */

#include <stddef.h>
#include <stdint.h>

#include "_kernels.h"

typedef struct {
    int32_t N, R, K, threads;
    const float *W; /* (ceil(R / RK_PANEL), K, RK_PANEL) */
    const float *x; /* (N, K) */
    const float *c; /* (N, R) or NULL; may be y */
    float *y;       /* (N, R) out */
} rk_product;

static inline __attribute__((always_inline)) void product_body(const rk_product *a) {
    matvec_body(a->W, NULL, a->c, a->x, a->N, a->R, a->K, a->y);
}

RK_ENTRY(rk_matvec, product_body, rk_product)
