"""Fast paths behind the layers' ``backend=`` seam and for generation (imported by ``rnnkit.layers``).

- ``fused``: :func:`fused_cell` runs one cell over a sequence as a fused recurrence with hand-written
  backpropagation through time (``lstm.py``, ``gru.py``, ``rnn.py``; shared pieces in ``common.py``).
  It covers every cell option; ``rnnkit.layers`` registers it as the ``"fused"`` backend.
- ``generation``: token-by-token sampling without per-step module overhead.
"""

from rnnkit.kernels.fused import fused_cell

__all__ = ["fused_cell"]
