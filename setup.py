"""Builds the C kernels; the rest is in pyproject.toml.

- src/rnnkit/kernels/_generate.c: the generation loop (rnnkit/kernels/cgeneration.py);
- src/rnnkit/kernels/_lstm.c: the LSTM training step's element-wise part (rnnkit/kernels/clstm.py);
- src/rnnkit/kernels/_gru.c, _rnn.c: the same for the GRU and the vanilla RNN (cgru.py, crnn.py);
- src/rnnkit/kernels/_kernels.h: what they all include.

All are optional: where one does not compile, rnnkit installs without it and runs the PyTorch path.
"""

from setuptools import Extension, setup


def kernel(name: str) -> Extension:
    """src/rnnkit/kernels/<name>.c as the optional extension rnnkit.kernels.<name>."""
    return Extension(
        f"rnnkit.kernels.{name}",
        [f"src/rnnkit/kernels/{name}.c"],
        depends=["src/rnnkit/kernels/_kernels.h"],
        # fast-math for the vectorised expf/tanhf of glibc's libmvec; at compile time only: linking with it
        # would set flush-to-zero for the whole process. -fno-wrapv undoes Python's -fwrapv, under which
        # GCC cannot prove the loops' index arithmetic does not wrap and vectorises none of them.
        extra_compile_args=["-O3", "-fopenmp", "-ffast-math", "-fno-wrapv"],
        extra_link_args=["-fopenmp"],
        libraries=["mvec", "m"],  # glibc's vector math (libmvec), which the vectorised loops call
        optional=True,
    )


setup(ext_modules=[kernel(name) for name in ("_generate", "_lstm", "_gru", "_rnn")])
