"""Fast paths behind the layers' ``backend=`` seam and for generation (imported by ``rnnkit.layers`` and
``rnnkit.decoding``; they import nothing above :mod:`rnnkit.cells`).

- ``dispatch``: the one place that decides which path runs (backends, thresholds, environment switches),
  returning a :class:`~rnnkit.kernels.dispatch.Plan` that the autograd Functions execute.
- ``fused``: :func:`~rnnkit.kernels.fused.fused_cell` runs one cell over a sequence as a fused recurrence
  with hand-written backpropagation through time (``lstm.py``, ``gru.py``, ``rnn.py``; shared pieces,
  TorchScript for the step loops and a pool of scratch buffers in ``common.py``). It covers every cell
  option. On the CPU in float32 every cell's steps do their element-wise work in C (``clstm.py``,
  ``cgru.py``, ``crnn.py`` over ``csrc/_lstm.c``, ``_gru.c``, ``_rnn.c``; the LSTM's projection excepted).
- ``stepper``: token-by-token stepping for :func:`rnnkit.generate` through the cells' own equations,
  without per-step module overhead; ``cstepper``: the whole generation loop in C (``csrc/_generate.c``) on
  the CPU, where Python's per-operation cost is most of a token's time.
- ``_ext``: loading rnnkit's C extensions and handing them tensors; ``_abi``: the structs they take,
  declared once and checked at load against the layouts each library exports (``layout``). Optional:
  each path falls back to PyTorch without them.
"""
