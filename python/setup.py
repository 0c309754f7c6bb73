"""The Python distribution `mooncake-transfer-engine`, in one of two ways:

- Packing prebuilt files (scripts/wheel.sh): the package's modules, the extension
  mooncake/store*.so (it needs nothing but glibc) and the static `mooncake` binary in mooncake/bin/,
  staged next to this file. Nothing is compiled. MOONCAKE_WHEEL_PLATFORM is the platform tag
  (manylinux_2_N_x86_64, N the extension's glibc floor, read from its symbol versions).
- From the source distribution (scripts/sdist.sh), whose root holds this file and the source tree:
  `pip install mooncake_transfer_engine-<version>.tar.gz` runs CMake to build the extension for the
  CPython that runs pip, and the `mooncake` binary behind the entry points (docs/python.md lists
  what the build needs).
"""
import os
import re
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
FROM_SOURCE = os.path.exists(os.path.join(HERE, "CMakeLists.txt"))


class BinaryDistribution(Distribution):
    """The wheel carries a compiled extension: tag it for this Python and platform."""

    def has_ext_modules(self):
        return True


class CMakeBuild(build_ext):
    """Builds the extension and the binary with the project's CMake build, then puts both where
    the package expects them."""

    def build_extension(self, ext):
        build = os.path.abspath(self.build_temp)
        os.makedirs(build, exist_ok=True)
        configure = [
            "cmake", "-S", HERE, "-B", build,
            "-DCMAKE_BUILD_TYPE=Release",
            "-DMOONCAKE_BUILD_TESTS=OFF",
            "-DMOONCAKE_WERROR=OFF",  # another compiler may warn where ours does not
            # The system's abseil: its RE2 may be built against it (Debian 13's is), and two
            # abseils in one program do not link.
            "-DMOONCAKE_ABSL_FROM_SOURCE=OFF",
            f"-DPYTHON_EXECUTABLE={sys.executable}",
        ]
        if shutil.which("ninja"):
            configure += ["-G", "Ninja"]
        try:  # pybind11 from the Python environment, when the build has it (else the system's)
            import pybind11

            configure.append(f"-Dpybind11_DIR={pybind11.get_cmake_dir()}")
        except ImportError:
            pass
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
        subprocess.check_call(configure)
        subprocess.check_call(["cmake", "--build", build, "--parallel", jobs,
                               "--target", "mooncake_store_py", "mooncake"])
        built = [f for f in os.listdir(os.path.join(build, "python", "mooncake"))
                 if f.startswith("store") and f.endswith(".so")]
        if len(built) != 1:
            raise RuntimeError(f"expected one extension in {build}/python/mooncake, found {built}")
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(build, "python", "mooncake", built[0]), target)
        binary = os.path.join(self.build_lib, "mooncake", "bin", "mooncake")
        os.makedirs(os.path.dirname(binary), exist_ok=True)
        shutil.copyfile(os.path.join(build, "src", "mooncake"), binary)
        os.chmod(binary, 0o755)


def version():
    if os.environ.get("MOONCAKE_VERSION"):
        return os.environ["MOONCAKE_VERSION"]
    if FROM_SOURCE:
        with open(os.path.join(HERE, "CMakeLists.txt")) as f:
            return re.search(r"project\(mooncake VERSION ([0-9.]+)", f.read()).group(1)
    return "0.0.0"


common = dict(
    name="mooncake-transfer-engine",
    version=version(),
    description="mooncake: distributed KV cache for LLM inference (SGLang HiCache L3 tier)",
    license="Apache-2.0",
    packages=["mooncake"],
    python_requires=">=3.8",
    entry_points={
        "console_scripts": [
            "mooncake_master = mooncake._binary:master",
            "mooncake_http_metadata_server = mooncake._binary:metadata",
            "mooncake_store_service = mooncake._binary:store",
        ]
    },
    zip_safe=False,
)

if FROM_SOURCE:
    setup(
        **common,
        package_dir={"mooncake": "python/mooncake"},
        ext_modules=[Extension("mooncake.store", sources=[])],
        cmdclass={"build_ext": CMakeBuild},
    )
else:
    setup(
        **common,
        package_data={"mooncake": ["store*.so", "bin/mooncake"]},
        include_package_data=False,
        distclass=BinaryDistribution,
        options={"bdist_wheel": {"plat_name": os.environ["MOONCAKE_WHEEL_PLATFORM"]}}
        if os.environ.get("MOONCAKE_WHEEL_PLATFORM")
        else {},
    )
