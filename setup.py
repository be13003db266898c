# setuptools reads everything from pyproject.toml; only the cffi hook lives here,
# because cffi_modules is a setup() keyword with no pyproject.toml spelling.
from setuptools import setup

setup(cffi_modules=["native/build_native.py:ffibuilder"])
