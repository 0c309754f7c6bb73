"""Packs the wheel `mooncake-transfer-engine` from files scripts/wheel.sh staged next to this
file: the package's Python modules, the prebuilt extension mooncake/store*.so (it needs nothing
but glibc) and the static `mooncake` binary in mooncake/bin/. Nothing is compiled here; CMake built
it all. MOONCAKE_WHEEL_PLATFORM is the platform tag (manylinux_2_N_x86_64, N the extension's glibc
floor, which scripts/wheel.sh reads from its symbol versions)."""
import os

from setuptools import setup
from setuptools.dist import Distribution


class BinaryDistribution(Distribution):
    """The wheel carries a compiled extension: tag it for this Python and platform."""

    def has_ext_modules(self):
        return True


setup(
    name="mooncake-transfer-engine",
    version=os.environ.get("MOONCAKE_VERSION", "0.0.0"),
    description="mooncake: distributed KV cache for LLM inference (SGLang HiCache L3 tier)",
    packages=["mooncake"],
    package_data={"mooncake": ["store*.so", "bin/mooncake"]},
    include_package_data=False,
    distclass=BinaryDistribution,
    python_requires=">=3.8",
    entry_points={
        "console_scripts": [
            "mooncake_master = mooncake._binary:master",
            "mooncake_http_metadata_server = mooncake._binary:metadata",
            "mooncake_store_service = mooncake._binary:store",
        ]
    },
    zip_safe=False,
    options={"bdist_wheel": {"plat_name": os.environ["MOONCAKE_WHEEL_PLATFORM"]}}
    if os.environ.get("MOONCAKE_WHEEL_PLATFORM")
    else {},
)
