/* What the _cells extension (_lstm.c, _gru.c, _rnn.c, _pack.c and this file) exports besides its kernels:
 * rk_layouts, the layouts of the structs its functions take, and rk_layer_norm_eps (_kernels.h), which
 * rnnkit/kernels/layout.py checks the Python side's ctypes declarations against when it loads the library.
 * rk_steps is declared in _kernels.h, so its layout is made here, once; the others next to their typedefs.
 */

#include <stddef.h>
#include <stdint.h>

#include "_kernels.h"

RK_LAYOUT(rk_steps, T, B, R, K, threads, add, W, mask, scratch, x, y, base)

RK_EXPORT_LAYOUTS(rk_steps, rk_packing, rk_lstm_forward, rk_lstm_backward, rk_gru_forward, rk_gru_backward,
                  rk_gru_before_forward, rk_gru_before_backward, rk_rnn_forward, rk_rnn_backward)
