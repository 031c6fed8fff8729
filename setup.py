"""The optional C part of docshift: the columnar load path's BSON scanner.

Everything else is in pyproject.toml. Where it cannot be compiled, docshift installs
without it and loads every document through the row path.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("docshift._bsonscan", ["src/docshift/_bsonscan.c"],
                             optional=True)])
