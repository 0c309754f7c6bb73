"""The wheel against masters elected in etcd, with the segment descriptors in the same etcd (no
metadata service): `setup` takes etcd:// for both addresses, and a kill -9 of the leading master
loses no object and returns no wrong byte. Real etcd (Debian's etcd-server), real processes on
127.0.0.1 ports picked free."""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import time
import urllib.request

import pytest

from conftest import BIN, MiB, Service

ETCD = "/usr/bin/etcd"
CLUSTER_ID = "wheel_ha"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def etcd_call(endpoint, path, request):
    body = json.dumps(request).encode()
    req = urllib.request.Request(f"http://{endpoint}{path}", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=2) as answer:
        return json.loads(answer.read())


def leader(endpoint):
    """The leading master's RPC address etcd names, or None."""
    key = base64.b64encode(f"mooncake/{CLUSTER_ID}/master/leader".encode()).decode()
    try:
        kvs = etcd_call(endpoint, "/v3/kv/range", {"key": key}).get("kvs", [])
    except OSError:
        return None
    return base64.b64decode(kvs[0]["value"]).decode() if kvs else None


def wait_until(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    return None


@pytest.fixture
def ha_cluster():
    if not os.access(ETCD, os.X_OK):
        pytest.skip(f"{ETCD} is missing (Debian's etcd-server)")
    root = tempfile.mkdtemp(prefix="mooncake-ha-")
    client_port, peer_port = free_port(), free_port()
    endpoint = f"127.0.0.1:{client_port}"
    etcd = subprocess.Popen(
        [ETCD, "--name", "m0", "--data-dir", os.path.join(root, "m0"),
         "--listen-client-urls", f"http://{endpoint}", "--advertise-client-urls", f"http://{endpoint}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
         "--initial-cluster", f"m0=http://127.0.0.1:{peer_port}", "--log-level", "error",
         "--logger", "zap"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    services, configs = [], []
    try:
        def healthy():
            try:
                with urllib.request.urlopen(f"http://{endpoint}/health", timeout=1) as answer:
                    return b'"true"' in answer.read()
            except OSError:
                return False
        assert wait_until(healthy, 30), "etcd did not start"
        masters = {}
        for _ in range(2):
            master = Service([os.path.join(BIN, "mooncake_master"), "--rpc_address", "127.0.0.1",
                              "--port", "0", "--metrics_port", "0", "--enable_ha",
                              f"--etcd_endpoints={endpoint}", f"--cluster_id={CLUSTER_ID}",
                              "--client_live_ttl_sec", "2"], "listening")
            services.append(master)
            address = master.ready_line.split("rpc=")[1].split()[0]
            masters[address] = master
        assert wait_until(lambda: leader(endpoint), 20), "no master leads"
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"local_hostname": "127.0.0.1", "metadata_server": f"etcd://{endpoint}",
                       "master_server_address": f"etcd://{endpoint}/{CLUSTER_ID}",
                       "protocol": "tcp", "global_segment_size": "128MB",
                       "local_buffer_size": 0}, f)
        configs.append(path)
        services.append(Service(
            [sys.executable, "-m", "mooncake.mooncake_store_service",
             f"--config={path}", "--http-port", "0", "--http-host", "127.0.0.1",
             "--listen-address", "127.0.0.1"], "serving segment"))
        yield endpoint, masters
    finally:
        codes = [service.stop() for service in reversed(services)]
        etcd.kill()
        etcd.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
        for path in configs:
            os.unlink(path)
    # Every process but the killed leader stopped cleanly.
    assert sorted(codes) in ([-signal.SIGKILL, 0, 0], [0, 0, 0]), codes


def test_setup_with_etcd_addresses_survives_a_killed_leader(ha_cluster):
    from mooncake.store import MooncakeDistributedStore

    endpoint, masters = ha_cluster
    store = MooncakeDistributedStore()
    assert store.setup("127.0.0.1", f"etcd://{endpoint}", 0, 16 * MiB, "tcp", "",
                       f"etcd://{endpoint}/{CLUSTER_ID}") == 0
    values = {f"ha-{i}": os.urandom(100_000 + i) for i in range(16)}
    for key, value in values.items():
        assert store.put(key, value) == 0, key
    old = leader(endpoint)
    masters[old].proc.kill()
    masters[old].proc.wait(timeout=10)
    # Through the new leader, once the store has mounted its segment there with its index.
    assert wait_until(lambda: (leader(endpoint) or old) != old, 20), "no new leader"
    assert wait_until(lambda: store.is_exist("ha-0") == 1, 20), "the store did not remount"
    for key, value in values.items():
        assert store.get(key) == value, key
    assert store.put("after", b"x" * 5000) == 0
    assert store.get("after") == b"x" * 5000
    store.remove_all()
    assert store.close() == 0
