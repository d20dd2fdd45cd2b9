"""Builds the C generation loop (src/rnnkit/kernels/_generate.c); the rest is in pyproject.toml.

The extension is optional: where it does not compile, rnnkit installs without it and generates
through the PyTorch path (rnnkit/kernels/cgeneration.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "rnnkit.kernels._generate",
            ["src/rnnkit/kernels/_generate.c"],
            # fast-math for the vectorised expf/tanhf of glibc's libmvec; at compile time only: linking with it
            # would set flush-to-zero for the whole process. -fno-wrapv undoes Python's -fwrapv, under which
            # GCC cannot prove the loops' index arithmetic does not wrap and vectorises none of them.
            extra_compile_args=["-O3", "-fopenmp", "-ffast-math", "-fno-wrapv"],
            extra_link_args=["-fopenmp"],
            libraries=["mvec", "m"],  # glibc's vector math (libmvec), which the vectorised loops call
            optional=True,
        )
    ]
)
