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
import urllib.error
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
    yield from start_ha_cluster([])


POLICY = "version: 1\ntenants:\n  - name: tenant-a\n    quota: 64MB\n  - name: default\n    quota: 64MB\n"


@pytest.fixture(params=["file", "etcd"])
def ha_tenant_cluster(request):
    """Masters enforcing tenants' quotas from one policy: a file both read (a shared volume, as
    docs/tenants.md asks of masters on different hosts), or the HA etcd."""
    if request.param == "etcd":
        # The policy is in etcd before the masters start, as an operator would put it there.
        yield from start_ha_cluster(["--enable_multi_tenants", "--tenant_quota_connector_type=etcd"],
                                    policy=POLICY)
        return
    fd, policy = tempfile.mkstemp(suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(POLICY)
    try:
        yield from start_ha_cluster(["--enable_multi_tenants",
                                     f"--tenant_quota_connector_uri={policy}"])
    finally:
        os.unlink(policy)


def start_ha_cluster(master_flags, policy=None):
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
        if policy is not None:  # what the etcd connector reads
            etcd_call(endpoint, "/v3/kv/put",
                      {"key": base64.b64encode(f"mooncake/{CLUSTER_ID}/tenant_quotas".encode()).decode(),
                       "value": base64.b64encode(policy.encode()).decode()})
        masters = {}
        for _ in range(2):
            master = Service([os.path.join(BIN, "mooncake_master"), "--rpc_address", "127.0.0.1",
                              "--port", "0", "--metrics_port", "0", "--enable_ha",
                              f"--etcd_endpoints={endpoint}", f"--cluster_id={CLUSTER_ID}",
                              "--client_live_ttl_sec", "2", *master_flags], "listening")
            services.append(master)
            address = master.ready_line.split("rpc=")[1].split()[0]
            master.admin = master.ready_line.split("metrics=")[1].split()[0]
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


def test_tenants_and_their_quotas_survive_a_killed_leader(ha_tenant_cluster):
    from mooncake.store import MooncakeDistributedStore

    endpoint, masters = ha_tenant_cluster
    stores = {}
    for tenant in ("tenant-a", "default"):
        stores[tenant] = MooncakeDistributedStore()
        assert stores[tenant].setup("127.0.0.1", f"etcd://{endpoint}", 0, 16 * MiB, "tcp", "",
                                    f"etcd://{endpoint}/{CLUSTER_ID}", tenant_id=tenant) == 0
    values = {tenant: {f"page-{i}": os.urandom(10_000 + i) for i in range(8)} for tenant in stores}
    for tenant, store in stores.items():
        for key, value in values[tenant].items():
            assert store.put(key, value) == 0, (tenant, key)
    old = leader(endpoint)
    standby = next(m for address, m in masters.items() if address != old)

    def quota_api(master, method, query, body=None):
        request = urllib.request.Request(
            f"http://{master.admin}/api/v1/tenant_quotas{query}", method=method,
            data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    # Only the leader answers; it registers tenant-b in the shared policy file.
    assert quota_api(standby, "GET", "")[0] == 503
    assert quota_api(masters[old], "PUT", "?tenant_id=tenant-b",
                     {"requested_quota_bytes": 8 * MiB})[0] == 200
    masters[old].proc.kill()
    masters[old].proc.wait(timeout=10)
    assert wait_until(lambda: (leader(endpoint) or old) != old, 20), "no new leader"
    # The new leader read the policy again (tenant-b is in it) and took each object back into
    # its tenant from the store's index.
    assert wait_until(lambda: quota_api(standby, "GET", "?tenant_id=tenant-a")[1].get(
        "object_count") == 8, 20), "the store did not remount"
    status, b = quota_api(standby, "GET", "?tenant_id=tenant-b")
    assert status == 200 and b["requested_quota_bytes"] == 8 * MiB
    for tenant, store in stores.items():
        for key, value in values[tenant].items():
            assert store.get(key) == value, (tenant, key)
    other = MooncakeDistributedStore()
    assert other.setup("127.0.0.1", f"etcd://{endpoint}", 0, 16 * MiB, "tcp", "",
                       f"etcd://{endpoint}/{CLUSTER_ID}", tenant_id="tenant-b") == 0
    assert other.batch_is_exist(list(values["default"])) == [0] * 8
    assert other.put("page-0", b"b") == 0 and other.get("page-0") == b"b"
    for store in (*stores.values(), other):
        store.remove_all()
        assert store.close() == 0
