"""Runs the `mooncake` binary that the wheel carries: the entry points are the binary's
subcommands, so a pip user has the whole system without a separate install."""
import os
import sys


def path():
    """The bundled binary (or $MOONCAKE_BINARY, to run from a build tree)."""
    return os.environ.get("MOONCAKE_BINARY") or os.path.join(os.path.dirname(__file__), "bin", "mooncake")


def run(subcommand, args=None):
    """Replaces this process with `mooncake SUBCOMMAND ARGS...` (signals then reach it directly)."""
    binary = path()
    args = sys.argv[1:] if args is None else args
    if not os.access(binary, os.X_OK):
        sys.stderr.write(f"mooncake: the bundled binary {binary} is missing or not executable\n")
        sys.exit(1)
    os.execv(binary, [binary, subcommand, *args])


def master():
    """Console script `mooncake_master`: `mooncake master` with the same flags."""
    run("master")


def metadata():
    """Console script `mooncake_http_metadata_server`: `mooncake metadata`."""
    run("metadata")


def store():
    """Console script `mooncake_store_service`: `mooncake store --config FILE`."""
    run("store")
