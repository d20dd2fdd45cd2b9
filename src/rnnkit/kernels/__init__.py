"""Fast paths behind the layers' ``backend=`` seam and for generation (imported by ``rnnkit.layers``).

- ``fused``: :func:`fused_cell` runs one cell over a sequence as a fused recurrence with hand-written
  backpropagation through time (``lstm.py``, ``gru.py``, ``rnn.py``; shared pieces, TorchScript for
  the step loops and a pool of scratch buffers in ``common.py``). It covers every cell option;
  ``rnnkit.layers`` registers it as the ``"fused"`` backend and ``"auto"`` uses it for every
  configuration torch's own kernels do not compute. On the CPU in float32 every cell's steps do their
  element-wise work in C (``clstm.py``/``_lstm.c``, ``cgru.py``/``_gru.c``, ``crnn.py``/``_rnn.c``,
  built at install; the LSTM's projection excepted).
- ``generation``: token-by-token stepping for :func:`rnnkit.generate` without per-step module
  overhead (imported by :mod:`rnnkit.decoding`).
- ``cgeneration``: the whole generation loop in C (``_generate.c``, built at install) on the CPU,
  where Python's per-operation cost is most of a token's time.
- ``native``: finding the C extensions and handing them tensors (optional: each path falls back to
  PyTorch without them).
"""

from rnnkit.kernels.fused import fused_cell

__all__ = ["fused_cell"]
