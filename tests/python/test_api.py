"""Every method of MooncakeDistributedStore and its documented return values (SPEC.md §5),
against real mooncake processes."""
import ctypes
import re
import urllib.request

import numpy as np
import pytest
import torch

from mooncake.store import (MooncakeDistributedStore, MooncakeHostMemAllocator, ReplicateConfig,
                            SoftPinAction)

MiB = 1 << 20
OBJECT_NOT_FOUND, OBJECT_HAS_LEASE, INVALID_PARAMS, INVALID_KEY = -704, -706, -600, -400
BUFFER_OVERFLOW, UNAVAILABLE = -10, -1010


@pytest.fixture
def pool(store):
    """A registered host buffer, as SGLang registers its KV pool."""
    allocator = MooncakeHostMemAllocator()
    size = 8 * MiB
    ptr = allocator.alloc(size)
    assert store.register_buffer(ptr, size) == 0
    yield ptr, size
    assert store.unregister_buffer(ptr) == 0
    assert allocator.free(ptr) == 0


def write(ptr, data):
    ctypes.memmove(ptr, data, len(data))


def read(ptr, n):
    return ctypes.string_at(ptr, n)


def test_put_get_exists_size_remove(store, cluster):
    assert store.put("api_a", b"hello") == 0
    assert store.get("api_a") == b"hello"
    assert store.is_exist("api_a") == 1
    assert store.get_size("api_a") == 5
    assert store.remove("api_a") == 0  # this client's read is done: it holds no lease
    # Another client's read holds its lease until that client tells the master (next call).
    assert store.put("api_a", b"hello") == 0
    reader = MooncakeDistributedStore()
    assert reader.setup("127.0.0.1", cluster.metadata_url, 0, 16 * MiB, "tcp", "",
                        cluster.master) == 0
    assert reader.get("api_a") == b"hello"
    assert store.remove("api_a") == OBJECT_HAS_LEASE
    assert store.batch_remove(["api_a"], force=True) == [0]
    assert store.is_exist("api_a") == 0
    assert reader.close() == 0


def test_get_batch_reads_each_value_into_its_bytes(store, cluster):
    """get/get_batch read values straight into the bytes they return: right bytes at every size,
    b"" for a key that is absent, and no local buffer needed where no NIC needs registered
    memory (local_buffer_size 0)."""
    rng = np.random.default_rng(5)
    values = {f"gb_{n}": rng.integers(0, 256, n, dtype=np.uint8).tobytes()
              for n in (1, 4095, 4096, 65537, 3 * MiB + 3)}
    for key, value in values.items():
        assert store.put(key, value) == 0
    keys = list(values)
    keys.insert(2, "gb_absent")
    reader = MooncakeDistributedStore()
    assert reader.setup("127.0.0.1", cluster.metadata_url, 0, 0, "tcp", "", cluster.master) == 0
    got = reader.get_batch(keys)
    assert [len(g) for g in got] == [len(values.get(k, b"")) for k in keys]
    assert got == [values.get(k, b"") for k in keys]
    assert all(type(g) is bytes for g in got)
    assert reader.get("gb_4096") == values["gb_4096"]
    assert reader.close() == 0


def test_absent_keys(store):
    assert store.get("api_absent") == b""
    assert store.get_batch(["api_absent"]) == [b""]
    assert store.is_exist("api_absent") == 0
    assert store.get_size("api_absent") == OBJECT_NOT_FOUND
    assert store.remove("api_absent") == OBJECT_NOT_FOUND
    assert store.get_buffer("api_absent") is None
    assert store.batch_is_exist(["api_absent"]) == [0]


def test_second_put_succeeds_and_keeps_the_value(store):
    assert store.put("api_once", b"first") == 0
    assert store.put("api_once", b"second") == 0
    assert store.get("api_once") == b"first"
    assert store.put_batch(["api_once", "api_twice"], [b"x", b"y"]) == 0
    assert store.get_batch(["api_once", "api_twice"]) == [b"first", b"y"]


def test_upsert_inserts_or_replaces(store, pool):
    assert store.put("ups_a", b"old value") == 0
    assert store.upsert("ups_a", b"the new value") == 0
    assert store.get("ups_a") == b"the new value"
    assert store.get_size("ups_a") == 13
    assert store.upsert("ups_fresh", bytearray(b"inserted")) == 0
    assert store.get("ups_fresh") == b"inserted"
    config = ReplicateConfig()
    config.soft_pin_action = SoftPinAction.ENABLE
    config.soft_pin_ttl_ms = 60000
    assert store.upsert("ups_a", b"pinned", config) == 0
    config.soft_pin_action = SoftPinAction.DISABLE
    assert store.upsert("ups_a", b"unpinned", config) == INVALID_PARAMS  # a TTL without ENABLE
    config.soft_pin_ttl_ms = None
    assert store.upsert("ups_a", b"unpinned", config) == 0
    assert store.get("ups_a") == b"unpinned"
    ptr, _ = pool
    write(ptr, b"Z" * 100)
    assert store.batch_upsert_from(["ups_a", "ups_b"], [ptr, ptr], [100, 50]) == [0, 0]
    assert store.get_batch(["ups_a", "ups_b"]) == [b"Z" * 100, b"Z" * 50]
    with pytest.raises(TypeError):
        store.upsert("ups_a", "str")


def test_values_of_every_buffer_type(store):
    array = np.arange(1000, dtype=np.int32)
    tensor = torch.arange(256, dtype=torch.float32)
    values = {"api_bytes": b"b" * 10, "api_bytearray": bytearray(b"ba" * 7),
              "api_memoryview": memoryview(b"mv" * 9), "api_numpy": array,
              "api_torch": tensor.numpy()}
    for key, value in values.items():
        assert store.put(key, value) == 0, key
        assert store.get(key) == bytes(memoryview(value).cast("B")), key
    with pytest.raises(TypeError):
        store.put("api_str", "a str is not bytes")
    with pytest.raises(TypeError):
        store.put("api_strided", np.arange(10)[::2])  # not contiguous
    with pytest.raises(TypeError):
        store.put(123, b"key must be a str")
    with pytest.raises(TypeError):
        store.get_into("api_bytes", "not a pointer", 10)


def test_keys_are_checked(store):
    assert store.put("", b"v") == INVALID_KEY
    assert store.put("k" * 4097, b"v") == INVALID_KEY
    assert store.put("k" * 4096, b"v") == 0
    assert store.put("api_empty_value", b"") == INVALID_PARAMS


def test_batch_is_exist_takes_any_sequence_of_str_or_bytes(store):
    """batch_is_exist views its keys where Python keeps them instead of copying them: str (as
    UTF-8), bytes and bytearray keys, in a list, a tuple or any other sequence, answer as the same
    keys would one by one; anything else is a TypeError, as before."""
    assert store.put("kl_a", b"1") == 0
    assert store.put("kl_\u00e9t\u00e9", b"2") == 0
    keys = ["kl_a", "kl_absent", "kl_\u00e9t\u00e9"]
    expected = [1, 0, 1]
    assert store.batch_is_exist(keys) == expected
    assert store.batch_is_exist(tuple(keys)) == expected
    assert store.batch_is_exist([k.encode() for k in keys]) == expected
    assert store.batch_is_exist([bytearray(k.encode()) for k in keys]) == expected
    assert store.batch_is_exist([]) == []
    assert store.batch_is_exist(["kl_a", ""]) == [1, -1]  # an empty key is invalid, not absent
    assert store.batch_is_exist([b"kl_\xff"]) == [-1]  # not UTF-8: the master cannot be asked

    class Fresh:
        """A sequence that builds each key when asked: only the call holds a reference to it, so
        a view kept without one would read freed memory (here, most likely the next key)."""

        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            if i >= self.n:
                raise IndexError(i)
            return "".join(["kl_", "fresh_", str(i)])

    for i in range(0, 64, 2):
        assert store.put(f"kl_fresh_{i}", b"v") == 0
    assert store.batch_is_exist(Fresh(64)) == [1 - i % 2 for i in range(64)]

    for bad in ("kl_a", b"kl_a", ["kl_a", 1], ["kl_\ud800"], 5, None):
        with pytest.raises(TypeError):
            store.batch_is_exist(bad)
    assert store.batch_is_exist(keys) == expected  # and the store still serves


def test_parts_batches_and_buffers(store):
    assert store.put_parts("api_parts", b"ab", bytearray(b"cd"), memoryview(b"ef")) == 0
    assert store.get("api_parts") == b"abcdef"
    assert store.put_parts("api_parts_cfg", b"x", config=ReplicateConfig()) == 0
    with pytest.raises(TypeError):
        store.put_parts("api_parts_bad", b"x", bogus=1)
    buffer = store.get_buffer("api_parts")
    assert bytes(memoryview(buffer)) == b"abcdef"
    assert buffer.size() == 6 and len(buffer) == 6 and buffer.ptr() != 0
    handles = store.batch_get_buffer(["api_parts", "api_nope"])
    assert bytes(memoryview(handles[0])) == b"abcdef" and handles[1] is None


def test_zero_copy_calls(store, pool):
    ptr, size = pool
    write(ptr, b"0123456789")
    assert store.put_from("api_zc", ptr, 10) == 0
    assert store.get_into("api_zc", ptr + 100, 10) == 10
    assert read(ptr + 100, 10) == b"0123456789"
    assert store.get_into("api_zc", ptr + 200, 9) == BUFFER_OVERFLOW
    keys = [f"api_zc_{i}" for i in range(4)]
    for i in range(4):
        write(ptr + 1000 + i * 100, bytes([i]) * 50)
    assert store.batch_put_from(keys, [ptr + 1000 + i * 100 for i in range(4)], [50] * 4) == [0] * 4
    got = store.batch_get_into(keys + ["api_zc_absent"], [ptr + 5000 + i * 100 for i in range(5)],
                               [100] * 5)
    assert got == [50, 50, 50, 50, OBJECT_NOT_FOUND]
    for i in range(4):
        assert read(ptr + 5000 + i * 100, 50) == bytes([i]) * 50


def test_unregistered_pointers_are_refused_not_crashed(store, pool):
    ptr, size = pool
    outside = ctypes.create_string_buffer(64)
    address = ctypes.addressof(outside)
    assert store.put_from("api_unreg", address, 64) == INVALID_PARAMS
    assert store.put("api_unreg_src", b"data") == 0
    assert store.get_into("api_unreg_src", address, 64) == INVALID_PARAMS
    assert store.get_into("api_unreg_src", ptr + size - 2, 4) == INVALID_PARAMS  # past the end
    assert store.put_from("api_unreg", 0, 64) == INVALID_PARAMS
    assert store.is_exist("api_unreg") == 0
    with pytest.raises(TypeError):
        store.put_from("api_neg", -1, 4)


def test_mismatched_batch_lengths(store, pool):
    ptr, _ = pool
    assert store.batch_put_from(["a1", "a2"], [ptr], [1, 1]) == [INVALID_PARAMS] * 2
    assert store.batch_get_into(["a1", "a2"], [ptr, ptr], [1]) == [INVALID_PARAMS] * 2
    assert store.put_batch(["a1", "a2"], [b"x"]) == INVALID_PARAMS
    assert store.batch_put_from_multi_buffers(["a1"], [[ptr, ptr]], [[1]]) == [INVALID_PARAMS]


def test_multi_buffer_calls(store, pool):
    ptr, _ = pool
    write(ptr, b"AAAA")
    write(ptr + 64, b"BBBBBB")
    assert store.batch_put_from_multi_buffers(["api_multi"], [[ptr, ptr + 64]], [[4, 6]]) == [0]
    assert store.get("api_multi") == b"AAAABBBBBB"
    got = store.batch_get_into_multi_buffers(["api_multi"], [[ptr + 1000, ptr + 2000]], [[3, 7]])
    assert got == [10]
    assert read(ptr + 1000, 3) == b"AAA" and read(ptr + 2000, 7) == b"ABBBBBB"


def test_get_into_ranges(store, pool):
    ptr, size = pool
    write(ptr, bytes(range(200)))
    assert store.put_from("rng_a", ptr, 200) == 0
    assert store.put("rng_b", b"abcdefghij") == 0
    dst = ptr + 4096
    result = store.get_into_ranges(
        [dst, dst + 1000],
        [["rng_a", "rng_missing"], ["rng_b", "rng_a", "rng_bad_shape"]],
        [[[0, 100], [0]], [[0], [10, size], [0, 1]]],
        [[[10, 150], [0]], [[2], [0, 0], [0]]],
        [[[5, 50], [4]], [[3], [8, 8], [1]]])
    assert result[0][0] == [5, 50]
    assert result[0][1] == [OBJECT_NOT_FOUND]
    assert result[1][0] == [3]
    assert result[1][1] == [8, INVALID_PARAMS]  # the second destination is past the buffer
    assert result[1][2] == [INVALID_PARAMS]     # its range lists differ in length
    assert read(dst, 5) == bytes(range(10, 15))
    assert read(dst + 100, 50) == bytes(range(150, 200))
    assert read(dst + 1000, 3) == b"cde"
    assert read(dst + 1010, 8) == bytes(range(8))
    # Past the object's end.
    assert store.get_into_ranges([dst], [["rng_b"]], [[[0]]], [[[8]]], [[[3]]]) == [[[INVALID_PARAMS]]]


def test_remove_by_regex_and_remove_all(store):
    for key in ("rx_1_k", "rx_1_v", "rx_2_k", "rx_other"):
        assert store.put(key, b"v") == 0
    assert store.remove_by_regex("^rx_[0-9]+_k$") == 2
    assert store.remove_by_regex("(") < 0
    assert store.remove_all() >= 2
    assert store.batch_is_exist(["rx_1_v", "rx_other"]) == [0, 0]


def test_replicate_config(store, cluster):
    config = ReplicateConfig()
    assert config.replica_num == 1 and not config.with_soft_pin and not config.with_hard_pin
    assert config.soft_pin_action == SoftPinAction.PRESERVE and config.soft_pin_ttl_ms is None
    config.replica_num = 2
    config.with_hard_pin = True
    config.group_ids = ["g"]
    assert store.put("api_two", b"2" * 1000, config) == 0
    segments = store_segments(cluster)
    assert len(segments) == 2
    config = ReplicateConfig()
    config.soft_pin_ttl_ms = 1000
    assert store.put("api_ttl", b"t", config) == INVALID_PARAMS  # only with ENABLE
    config.soft_pin_action = SoftPinAction.ENABLE
    assert store.put("api_ttl", b"t", config) == 0
    for bad in (-1, 2 ** 64, 1.5, "10"):
        with pytest.raises(TypeError):
            config.soft_pin_ttl_ms = bad
    config.soft_pin_ttl_ms = 2 ** 64 - 1
    config.soft_pin_ttl_ms = None
    config = ReplicateConfig()
    config.preferred_segment = segments[0]
    assert store.put("api_pref", b"p", config) == 0


def store_segments(cluster):
    """What SGLang polls to wait for the cluster: the master's /get_all_segments."""
    with urllib.request.urlopen(f"http://{cluster.admin}/get_all_segments") as reply:
        return [line for line in reply.read().decode().splitlines() if line]


def test_hostname_health_and_close(cluster):
    s = MooncakeDistributedStore()
    assert s.put("api_before_setup", b"v") == UNAVAILABLE
    assert s.setup("127.0.0.1", cluster.metadata_url, 0, MiB, "tcp", "", cluster.master) == 0
    assert re.fullmatch(r"127\.0\.0\.1:\d+", s.get_hostname())
    assert s.health_check() == 0
    assert s.close() == 0
    assert s.close() == 0
    assert s.put("api_after_close", b"v") == UNAVAILABLE
    assert s.is_exist("api_after_close") == -1
    assert s.get("api_after_close") == b""


def test_copying_calls_need_a_local_buffer(cluster):
    s = MooncakeDistributedStore()
    assert s.setup("127.0.0.1", cluster.metadata_url, 0, 0, "tcp", "", cluster.master) == 0
    assert s.put("api_no_buffer", b"v") != 0
    assert s.is_exist("api_no_buffer") == 0
    assert s.close() == 0


def test_setup_forms_and_keywords(cluster):
    s = MooncakeDistributedStore()
    with pytest.raises(TypeError, match="unknown_option"):
        s.setup("127.0.0.1", cluster.metadata_url, 0, MiB, "tcp", "", cluster.master, None,
                unknown_option=1)
    assert s.setup("127.0.0.1", cluster.metadata_url, 0, MiB, "tcp", "", cluster.master, None,
                   enable_client_http_server=False, tenant_id="default") == 0
    assert s.setup("127.0.0.1", cluster.metadata_url, 0, MiB, "tcp", "", cluster.master) != 0
    assert s.close() == 0
    # A tenant, by keyword or dict key (test_tenants.py: what it changes); null is the default.
    assert s.setup("127.0.0.1", cluster.metadata_url, 0, MiB, "tcp", "", cluster.master, None,
                   tenant_id="tenant-a") == 0
    assert s.close() == 0
    assert s.setup({"master_server_addr": cluster.master, "metadata_server": cluster.metadata_url,
                    "local_hostname": "127.0.0.1", "tenant_id": None}) == 0
    assert s.close() == 0
    assert s.setup({"local_hostname": "127.0.0.1", "metadata_server": cluster.metadata_url,
                    "global_segment_size": "16MB", "local_buffer_size": "16 MB",
                    "protocol": "tcp", "rdma_devices": "", "master_server_addr": cluster.master}) == 0
    assert s.put("api_dict", b"d") == 0 and s.get("api_dict") == b"d"
    assert s.close() == 0
    assert s.setup({"master_server_addr": cluster.master, "global_segment_size": "50%"}) != 0
    assert s.setup_dummy(0, MiB, cluster.master) == 0
    assert s.close() == 0


def test_host_memory_allocator():
    allocator = MooncakeHostMemAllocator()
    ptr = allocator.alloc(MiB)
    assert ptr % 4096 == 0
    ctypes.memset(ptr, 7, MiB)
    assert allocator.free(ptr) == 0
    assert allocator.free(ptr) == INVALID_PARAMS
    with pytest.raises(ValueError):
        allocator.alloc(0)
