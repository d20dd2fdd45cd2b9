"""Builds the C kernels; the rest is in pyproject.toml.

The C sources are in src/rnnkit/kernels/csrc/; the built modules go where Python imports them from,
src/rnnkit/kernels/ (their names, not their sources' folder, decide that):

- rnnkit.kernels._generate from _generate.c: the generation loop (rnnkit/kernels/cgeneration.py);
- rnnkit.kernels._cells from _lstm.c, _gru.c and _rnn.c: the element-wise part of each cell's training
  step, forward and backward, and their loops (rnnkit/kernels/clstm.py, cgru.py, crnn.py); and from _pack.c
  the packing of the weights for those loops' products (rnnkit/kernels/native.py);
- _kernels.h: what they all include.

Each extension also exports the layouts of the structs its functions take and the layer-norm epsilon
(``rk_layouts``, ``rk_layer_norm_eps``; _generate.c, and _cells.c for rnnkit.kernels._cells), which
rnnkit/kernels/layout.py checks the Python declarations against before a library is used.

Both are optional: where one does not compile, rnnkit installs without it and runs the PyTorch path.
"""

from setuptools import Extension, setup

CSRC = "src/rnnkit/kernels/csrc"  # relative: setuptools wants the sources' paths relative to this file


def kernel(name: str, sources: list[str]) -> Extension:
    """The C files ``sources`` of src/rnnkit/kernels/csrc/ as the optional extension rnnkit.kernels.<name>."""
    return Extension(
        f"rnnkit.kernels.{name}",
        [f"{CSRC}/{source}" for source in sources],
        depends=[f"{CSRC}/_kernels.h"],
        # fast-math for the vectorised expf/tanhf of glibc's libmvec; at compile time only: linking with it
        # would set flush-to-zero for the whole process. -fno-wrapv undoes Python's -fwrapv, under which
        # GCC cannot prove the loops' index arithmetic does not wrap and vectorises none of them.
        extra_compile_args=["-O3", "-fopenmp", "-ffast-math", "-fno-wrapv"],
        extra_link_args=["-fopenmp"],
        libraries=["mvec", "m"],  # glibc's vector math (libmvec), which the vectorised loops call
        optional=True,
    )


setup(
    ext_modules=[
        kernel("_generate", ["_generate.c"]),
        kernel("_cells", ["_lstm.c", "_gru.c", "_rnn.c", "_pack.c", "_cells.c"]),
    ]
)
