"""cffi build script: compiles native/*.c into ``share_validator._native``.

The public C API is declared in ``native/*.h``; those headers are read here into
the cdef (preprocessor lines dropped), so the declarations exist in one place.
Sources under ``native/`` and ``native/internal/`` headers are compiled with -O3 for
the baseline architecture; the SHA-NI, SSE2 and AVX2 paths carry their own
``__attribute__((target(...)))`` and are picked at run time through cpuid.
"""
from __future__ import annotations

import pathlib
import re

import cffi

NATIVE_DIR = pathlib.Path(__file__).resolve().parent
PUBLIC_HEADERS = ("sha256.h", "scrypt.h", "share.h")


def read_cdef() -> str:
    parts = []
    for name in PUBLIC_HEADERS:
        text = (NATIVE_DIR / name).read_text()
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        parts.append("\n".join(lines))
    return "\n".join(parts)


def sources() -> list[str]:
    # Paths relative to the project root, where setuptools runs the build.
    root = NATIVE_DIR.parent
    return sorted(str(path.relative_to(root)) for path in NATIVE_DIR.glob("*.c"))


ffibuilder = cffi.FFI()
ffibuilder.cdef(read_cdef())
ffibuilder.set_source(
    "share_validator._native",
    "\n".join(f'#include "{name}"' for name in PUBLIC_HEADERS),
    sources=sources(),
    include_dirs=[str(NATIVE_DIR)],
    extra_compile_args=["-O3", "-std=gnu11", "-fno-strict-aliasing", "-Wall"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
