"""Tenants through the wheel, as SGLang uses them (`setup(..., tenant_id=...)`): each tenant's objects
are its own, and with quotas on (`mooncake_master --enable_multi_tenants`) each writes within its
quota, evicting only its own objects. Real processes: metadata service, master, stores."""
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from conftest import BIN, Cluster, MiB, Service

from mooncake.store import MooncakeDistributedStore, ReplicateConfig

INVALID_PARAMS = -600
ILLEGAL_CLIENT = -601
NO_AVAILABLE_HANDLE = -200


def connect(cluster, tenant=None):
    s = MooncakeDistributedStore()
    kwargs = {} if tenant is None else {"tenant_id": tenant}
    assert s.setup("127.0.0.1", cluster.metadata_url, 0, 16 * MiB, "tcp", "", cluster.master,
                   None, **kwargs) == 0
    return s


def call(method, url, body=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(cluster, name, tenant):
    _, text = call("GET", f"http://{cluster.admin}/metrics")
    found = re.search(rf'^{name}{{tenant_id="{re.escape(tenant)}"}} (\d+)$', text, re.M)
    return int(found.group(1)) if found else None


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(stores=1, store_size="64MB")
    yield c
    assert c.stop() == [0] * len(c.services)


def test_two_tenants_writing_the_same_keys_read_only_their_own(cluster):
    a, b, d = connect(cluster, "tenant-a"), connect(cluster, "tenant-b"), connect(cluster)
    keys = [f"page_{i}" for i in range(8)]
    for name, s in (("a", a), ("b", b), ("d", d)):
        assert s.put_batch(keys, [f"{name}:{k}".encode() * (1 + (name == "b")) for k in keys]) == 0
    assert a.put("only_a", b"secret") == 0
    for name, s in (("a", a), ("b", b), ("d", d)):
        assert s.get_batch(keys) == [f"{name}:{k}".encode() * (1 + (name == "b")) for k in keys]
        assert s.batch_is_exist(keys) == [1] * 8
    assert [s.is_exist("only_a") for s in (a, b, d)] == [1, 0, 0]
    assert b.get("only_a") == b"" and d.get_size("only_a") < 0
    assert a.get_size("page_0") == len(b"a:page_0") and b.get_size("page_0") == 2 * len(b"b:page_0")
    # The admin port lists each tenant's keys apart; the default tenant's without a tenant_id.
    assert call("GET", f"http://{cluster.admin}/get_all_keys?tenant_id=tenant-a")[1].split() == \
        sorted(keys + ["only_a"])
    assert call("GET", f"http://{cluster.admin}/get_all_keys")[1].split() == sorted(keys)
    assert metric(cluster, "mooncake_tenant_objects", "tenant-a") == 9
    assert metric(cluster, "mooncake_tenant_bytes", "tenant-b") == sum(2 * len(f"b:{k}") for k in keys)

    # remove_all and remove_by_regex of one tenant leave the others' objects alone.
    assert a.remove_all() == 9
    assert a.batch_is_exist(keys) == [0] * 8
    assert b.remove_by_regex("^page_[0-3]$") == 4
    assert b.batch_is_exist(keys) == [0] * 4 + [1] * 4
    assert d.batch_is_exist(keys) == [1] * 8
    assert d.remove("page_7") == 0 and b.is_exist("page_7") == 1
    # The same key again in a tenant that removed it: a new object of that tenant only.
    assert a.put("page_0", b"again") == 0
    assert (a.get("page_0"), b.get("page_0"), d.get("page_0")) == (b"again", b"", b"d:page_0")
    for s in (a, b, d):
        s.remove_all()
        assert s.close() == 0


def test_zero_copy_calls_keep_tenants_apart(cluster):
    import numpy as np
    a, b = connect(cluster, "tenant-a"), connect(cluster, "tenant-b")
    buffers = {}
    for name, s in (("a", a), ("b", b)):
        buf = np.full(4 * 4096, ord(name), dtype=np.uint8)
        assert s.register_buffer(buf.ctypes.data, buf.nbytes) == 0
        buffers[name] = buf
        keys = [f"zc_{i}" for i in range(4)]
        ptrs = [buf.ctypes.data + i * 4096 for i in range(4)]
        assert s.batch_put_from(keys, ptrs, [4096] * 4) == [0] * 4
    for name, s in (("a", a), ("b", b)):
        out = np.zeros(4 * 4096, dtype=np.uint8)
        assert s.register_buffer(out.ctypes.data, out.nbytes) == 0
        keys = [f"zc_{i}" for i in range(4)]
        got = s.batch_get_into(keys, [out.ctypes.data + i * 4096 for i in range(4)], [4096] * 4)
        assert got == [4096] * 4
        assert (out == ord(name)).all()
        assert s.unregister_buffer(out.ctypes.data) == 0
    for name, s in (("a", a), ("b", b)):
        assert s.remove_all() == 4
        assert s.unregister_buffer(buffers[name].ctypes.data) == 0
        assert s.close() == 0


def test_bad_tenant_names_are_refused(cluster):
    for bad in ["", "_system", "a\x01b", "line\nbreak", "x" * 129]:
        s = MooncakeDistributedStore()
        assert s.setup("127.0.0.1", cluster.metadata_url, 0, MiB, "tcp", "", cluster.master, None,
                       tenant_id=bad) == INVALID_PARAMS, repr(bad)
    # On the wire, too: the master answers 400 with a message naming the member.
    url = f"http://{cluster.master}/v1/BatchExistKey"
    status, body = call("POST", url, {"keys": ["k"], "tenant_id": "_x"})
    assert status == 400 and "tenant_id" in json.loads(body)["error"]["message"]
    status, body = call("POST", url, {"keys": ["k"], "tenant_id": 7})
    assert status == 400 and "tenant_id" in json.loads(body)["error"]["message"]
    # Keys of the default tenant cannot pose as another tenant's.
    status, body = call("POST", url, {"keys": ["\u0000tenant-a\u0000page_0"]})
    assert status == 400 and "NUL" in json.loads(body)["error"]["message"]
    assert call("POST", url, {"keys": ["k"], "tenant_id": "t"})[0] == 200
    # Without quotas the policy API says so (409), as the original's does.
    status, body = call("GET", f"http://{cluster.admin}/api/v1/tenant_quotas")
    assert status == 409 and "--enable_multi_tenants" in json.loads(body)["error"]["message"]


class QuotaCluster:
    """A cluster whose master enforces the policy in a file of its own."""

    def __init__(self, policy):
        fd, self.policy = tempfile.mkstemp(suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(policy)
        self.flags = ["--enable_multi_tenants", f"--tenant_quota_connector_uri={self.policy}"]
        self.cluster = Cluster(stores=1, store_size="64MB", master_flags=self.flags)

    def restart_master(self):
        """Stops the master and starts another on the same port, with the same flags."""
        c = self.cluster
        master = c.services[1]
        assert master.stop() == 0
        port = c.master.rsplit(":", 1)[1]
        admin_port = c.admin.rsplit(":", 1)[1]
        c.services[1] = Service(
            [os.path.join(BIN, "mooncake_master"), "--rpc_address", "127.0.0.1", "--port", port,
             "--metrics_port", admin_port, *self.flags], "listening")

    def stop(self):
        codes = self.cluster.stop()
        os.unlink(self.policy)
        return codes


@pytest.fixture
def quotas():
    q = QuotaCluster("version: 1\ntenants:\n  - name: tenant-a\n    quota: 4MiB\n"
                     "  - name: tenant-b\n    quota: 4 MiB\n")
    yield q
    assert q.stop() == [0] * len(q.cluster.services)


def test_quotas_refuse_and_evict_within_a_tenant(quotas):
    c = quotas.cluster
    a, b = connect(c, "tenant-a"), connect(c, "tenant-b")
    d, x = connect(c), connect(c, "tenant-x")
    mib = b"m" * MiB
    # Tenants without a policy, the default one included, may not write.
    assert d.put("k", b"v") == ILLEGAL_CLIENT and x.put("k", b"v") == ILLEGAL_CLIENT
    for i in range(4):
        assert a.put(f"a{i}", mib) == 0
    assert b.put_batch(["b0", "b1"], [mib, mib]) == 0
    # Past tenant-a's quota: its own oldest objects make room, never tenant-b's.
    assert a.put("a4", mib) == 0
    assert a.is_exist("a0") == 0 and a.is_exist("a4") == 1
    assert b.batch_is_exist(["b0", "b1"]) == [1, 1]
    assert metric(c, "mooncake_tenant_evict_bytes_total", "tenant-a") >= MiB
    assert metric(c, "mooncake_tenant_evict_bytes_total", "tenant-b") == 0
    # Larger than the whole quota: refused, nothing evicted.
    assert b.put("huge", b"h" * (5 * MiB)) == NO_AVAILABLE_HANDLE
    assert b.batch_is_exist(["b0", "b1"]) == [1, 1]
    # Hard-pinned objects cannot be evicted: past the quota they leave no room.
    pinned = ReplicateConfig()
    pinned.with_hard_pin = True
    assert b.put("pinned", b"p" * (3 * MiB), pinned) == 0
    assert b.put("more", b"m" * (2 * MiB)) == NO_AVAILABLE_HANDLE
    assert metric(c, "mooncake_tenant_quota_used_bytes", "tenant-b") == 3 * MiB + (
        MiB if b.is_exist("b1") == 1 else 0)
    assert metric(c, "mooncake_tenant_quota_requested_bytes", "tenant-a") == 4 * MiB
    _, text = call("GET", f"http://{c.admin}/metrics")
    assert re.search(r'^mooncake_tenant_quota_reject_total\{tenant_id="tenant-x",'
                     r'reason="unregistered"\} 1$', text, re.M), text
    for s in (a, b, d, x):
        s.remove_all()
        assert s.close() == 0


def test_quota_api_and_the_policy_surviving_a_restart(quotas):
    c = quotas.cluster
    api = f"http://{c.admin}/api/v1/tenant_quotas"
    status, body = call("GET", api)
    assert status == 200
    listed = {t["tenant_id"]: t for t in json.loads(body)["tenants"]}
    assert set(listed) == {"tenant-a", "tenant-b"}
    assert listed["tenant-a"]["requested_quota_bytes"] == 4 * MiB
    assert listed["tenant-a"]["effective_quota_bytes"] == 4 * MiB  # the pool holds both

    # A new tenant, registered while the master runs, may write at once.
    status, body = call("PUT", api + "?tenant_id=tenant-c", {"requested_quota_bytes": 2 * MiB})
    assert status == 200, body
    assert json.loads(body)["requested_quota_bytes"] == 2 * MiB
    cc = connect(c, "tenant-c")
    assert cc.put_batch(["k0", "k1"], [b"c" * 1000, b"c" * 24]) == 0
    status, body = call("GET", api + "?tenant_id=tenant-c")
    assert status == 200
    snapshot = json.loads(body)
    assert (snapshot["used_bytes"], snapshot["object_count"]) == (1024, 2)

    # Bad requests, each with a status and a message.
    for query, payload, expected in [
            ("?tenant_id=tenant-d", {"requested_quota_bytes": 0}, 400),
            ("?tenant_id=tenant-d", b'{"requested_quota_bytes": 18446744073709551616}', 400),
            ("?tenant_id=tenant-d", {"requested_quota_bytes": -1}, 400),
            ("?tenant_id=tenant-d", {"quota": 1}, 400),
            ("?tenant_id=tenant-d", b"not json", 400),
            ("?tenant_id=_hidden", {"requested_quota_bytes": 1}, 400),
            ("?tenant_id=a%01b", {"requested_quota_bytes": 1}, 400),
            ("", {"requested_quota_bytes": 1}, 400)]:
        status, body = call("PUT", api + query, payload)
        assert status == expected, (query, payload, body)
        assert json.loads(body)["error"]["message"]
    assert call("GET", api + "?tenant_id=nobody")[0] == 404
    assert call("DELETE", api + "?tenant_id=nobody")[0] == 404
    # A tenant that holds objects keeps its policy (the original's TENANT_NOT_EMPTY).
    status, body = call("DELETE", api + "?tenant_id=tenant-c")
    assert status == 409 and "TENANT_NOT_EMPTY" in json.loads(body)["error"]["message"]
    assert call("PUT", api + "?tenant_id=tenant-gone", {"requested_quota_bytes": 1})[0] == 200
    assert call("DELETE", api + "?tenant_id=tenant-gone")[0] == 200
    assert "tenant-gone" not in open(quotas.policy).read()
    assert "tenant-c" in open(quotas.policy).read()

    # A restarted master reads the policy its predecessor wrote, and the store's index brings
    # each object back into its own tenant.
    quotas.restart_master()
    api = f"http://{c.admin}/api/v1/tenant_quotas"
    deadline = time.monotonic() + 30  # until the store has mounted again with its index
    while True:
        status, body = call("GET", api + "?tenant_id=tenant-c")
        if status == 200 and json.loads(body)["object_count"] == 2:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    assert json.loads(body)["used_bytes"] == 1024
    assert cc.get("k0") == b"c" * 1000
    other = connect(c, "tenant-a")
    assert other.is_exist("k0") == 0
    # Its objects are tenant-c's again: its policy stays while they do.
    assert call("DELETE", api + "?tenant_id=tenant-c")[0] == 409
    for s in (cc, other):
        assert s.close() == 0


def test_a_malformed_policy_stops_the_master():
    fd, path = tempfile.mkstemp(suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write("version: 1\ntenants:\n  - name: a\n    quota: 0\n")
    try:
        done = subprocess.run(
            [os.path.join(BIN, "mooncake_master"), "--rpc_address", "127.0.0.1", "--port", "0",
             "--metrics_port", "0", "--enable_multi_tenants",
             f"--tenant_quota_connector_uri={path}"],
            capture_output=True, text=True, timeout=30)
        assert done.returncode != 0
        assert path in done.stderr + done.stdout and "quota 0" in done.stderr + done.stdout
    finally:
        os.unlink(path)
