"""Build pylb._native: the Cython boundary linked with native/ against DPDK.

DPDK is found with pkg-config (libdpdk). Optimised by default; set
PYLB_MARCH (e.g. PYLB_MARCH=x86-64-v2) for a portable build.
"""
import glob
import os
import shlex
import subprocess
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NATIVE_SOURCES = sorted(glob.glob("native/src/*.c"))
NATIVE_WARNINGS = ["-Wall", "-Wextra"]


def dpdk_flags():
    try:
        out = {
            what: shlex.split(subprocess.run(
                ["pkg-config", what, "libdpdk"], check=True, capture_output=True, text=True
            ).stdout)
            for what in ("--cflags", "--libs")
        }
    except (OSError, subprocess.CalledProcessError):
        sys.exit("pylb: DPDK development files not found (pkg-config libdpdk); "
                 "install them with: apt-get install libdpdk-dev")
    march = os.environ.get("PYLB_MARCH", "native")
    cflags = [f for f in out["--cflags"] if not f.startswith("-march=")]
    return cflags + ["-O3", f"-march={march}", "-DALLOW_EXPERIMENTAL_API"], out["--libs"] + ["-lm"]


class BuildExt(build_ext):
    """Compiles native/ with its own warning flags, then links it into the extension."""

    def build_extension(self, ext):
        cflags, _ = dpdk_flags()
        objects = self.compiler.compile(
            NATIVE_SOURCES, output_dir=self.build_temp,
            include_dirs=["native/include"],
            extra_postargs=cflags + NATIVE_WARNINGS + ["-fPIC", "-fvisibility=hidden"],
            depends=glob.glob("native/**/*.h", recursive=True))
        ext.extra_objects = objects
        super().build_extension(ext)


cflags, libs = dpdk_flags()
ext = Extension(
    "pylb._native",
    sources=["pylb/_native.pyx"],
    include_dirs=["native/include"],
    extra_compile_args=cflags,
    extra_link_args=libs,
    depends=NATIVE_SOURCES + glob.glob("native/**/*.h", recursive=True),
)

setup(
    ext_modules=cythonize([ext], compiler_directives={"language_level": "3"}),
    cmdclass={"build_ext": BuildExt},
)
