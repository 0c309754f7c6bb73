"""A single-server mooncake deployment started the way a user of the wheel starts it:
`python -m mooncake.http_metadata_server`, `mooncake_master`, `python -m
mooncake.mooncake_store_service --config=FILE`. Every process binds 127.0.0.1 on a port the
kernel picks (read back from its ready line) and is stopped, and checked to exit 0, at the end."""
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

BIN = os.path.dirname(sys.executable)  # the venv the wheel is installed in
MiB = 1 << 20


class Service:
    """A child process whose stdout is read line by line on a thread of its own."""

    def __init__(self, argv, ready, timeout=30):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ready_line = self.wait_for(ready, timeout)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            if line is None:
                break
            if re.search(pattern, line):
                return line
        self.proc.kill()
        raise RuntimeError(f"{self.argv} did not print {pattern!r}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


class Cluster:
    """metadata + master (+ stores), as a README user starts them."""

    def __init__(self, stores=1, store_size="256MB", master_flags=()):
        self.services = []
        self.configs = []
        metadata = self._start(
            [sys.executable, "-m", "mooncake.http_metadata_server", "--host", "127.0.0.1", "--port", "0"],
            "listening on",
        )
        self.metadata_url = re.search(r"(http://\S+/metadata)", metadata.ready_line).group(1)
        master = self._start(
            [os.path.join(BIN, "mooncake_master"), "--rpc_address", "127.0.0.1", "--port", "0",
             "--metrics_port", "0", *master_flags],
            "listening",
        )
        self.master = re.search(r"rpc=(\S+)", master.ready_line).group(1)
        self.admin = re.search(r"metrics=(\S+)", master.ready_line).group(1)
        for _ in range(stores):
            self.add_store(store_size)

    def _start(self, argv, ready):
        service = Service(argv, ready)
        self.services.append(service)
        return service

    def add_store(self, size):
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"local_hostname": "127.0.0.1", "metadata_server": self.metadata_url,
                       "master_server_address": self.master, "protocol": "tcp",
                       "global_segment_size": size, "local_buffer_size": 0}, f)
        self.configs.append(path)
        return self._start(
            [sys.executable, "-m", "mooncake.mooncake_store_service", f"--config={path}",
             "--http-port", "0", "--http-host", "127.0.0.1", "--listen-address", "127.0.0.1"],
            "serving segment",
        )

    def stop(self):
        codes = [service.stop() for service in reversed(self.services)]
        for path in self.configs:
            os.unlink(path)
        return codes


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(stores=2)
    yield c
    assert c.stop() == [0] * len(c.services)


@pytest.fixture
def store(cluster):
    from mooncake.store import MooncakeDistributedStore
    s = MooncakeDistributedStore()
    assert s.setup("127.0.0.1", cluster.metadata_url, 0, 16 * MiB, "tcp", "", cluster.master) == 0
    yield s
    s.remove_all()
    assert s.close() == 0
