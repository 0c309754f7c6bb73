"""Configuration the SGLang way: MOONCAKE_* environment variables, a JSON file named by
SGLANG_HICACHE_MOONCAKE_CONFIG_PATH, an extra-config dict; and a client that contributes its own
segment with no store service at all (the inference process is the store)."""
import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from conftest import Cluster
from mooncake.store import MooncakeDistributedStore

MiB = 1 << 20


@pytest.fixture(scope="module")
def bare():
    """metadata + master, and no store service."""
    c = Cluster(stores=0)
    yield c
    assert c.stop() == [0, 0]


def segments(cluster):
    with urllib.request.urlopen(f"http://{cluster.admin}/get_all_segments") as reply:
        return [line for line in reply.read().decode().splitlines() if line]


def sglang_setup(store, extra_config=None):
    """What SGLang's MooncakeStore does: its config from the extra-config dict, else the file named
    by SGLANG_HICACHE_MOONCAKE_CONFIG_PATH, else MOONCAKE_* variables; then setup() positionally."""
    if extra_config is not None:
        config = dict(extra_config)
    elif os.environ.get("SGLANG_HICACHE_MOONCAKE_CONFIG_PATH"):
        with open(os.environ["SGLANG_HICACHE_MOONCAKE_CONFIG_PATH"]) as f:
            config = json.load(f)
    else:
        config = {
            "local_hostname": os.getenv("MOONCAKE_LOCAL_HOSTNAME", "localhost"),
            "metadata_server": os.getenv("MOONCAKE_TE_META_DATA_SERVER", "P2PHANDSHAKE"),
            "global_segment_size": int(os.getenv("MOONCAKE_GLOBAL_SEGMENT_SIZE", 4 << 30)),
            "local_buffer_size": int(os.getenv("MOONCAKE_LOCAL_BUFFER_SIZE", 16 * MiB)),
            "protocol": os.getenv("MOONCAKE_PROTOCOL", "tcp"),
            "device_name": os.getenv("MOONCAKE_DEVICE", ""),
            "master_server_address": os.environ["MOONCAKE_MASTER"],
        }
    return store.setup(config["local_hostname"], config["metadata_server"],
                       config["global_segment_size"], config["local_buffer_size"],
                       config["protocol"], config["device_name"], config["master_server_address"])


def round_trip(store, key):
    value = os.urandom(4096)
    assert store.put(key, value) == 0
    assert store.is_exist(key) == 1
    assert store.get(key) == value


def test_from_environment_variables(bare, monkeypatch):
    monkeypatch.setenv("MOONCAKE_MASTER", bare.master)
    monkeypatch.setenv("MOONCAKE_TE_META_DATA_SERVER", bare.metadata_url)
    monkeypatch.setenv("MOONCAKE_PROTOCOL", "tcp")
    monkeypatch.setenv("MOONCAKE_GLOBAL_SEGMENT_SIZE", str(16 * MiB))  # SGLang's docs' figure
    monkeypatch.setenv("MOONCAKE_LOCAL_BUFFER_SIZE", str(16 * MiB))
    monkeypatch.setenv("MOONCAKE_LOCAL_HOSTNAME", "127.0.0.1")
    for setup in (sglang_setup, lambda s: s.init_all("tcp", "", 16 * MiB)):
        s = MooncakeDistributedStore()
        assert setup(s) == 0
        assert s.get_hostname() in segments(bare)  # it contributes its own segment
        round_trip(s, "cfg_env")
        assert s.remove_all() >= 0
        assert s.close() == 0


def test_init_all_without_a_master_is_an_error(monkeypatch):
    monkeypatch.delenv("MOONCAKE_MASTER", raising=False)
    monkeypatch.delenv("SGLANG_HICACHE_MOONCAKE_CONFIG_PATH", raising=False)
    assert MooncakeDistributedStore().init_all("tcp", "") != 0


def test_from_a_config_file(bare, monkeypatch, tmp_path):
    path = tmp_path / "mooncake.json"
    path.write_text(json.dumps({
        "local_hostname": "127.0.0.1", "metadata_server": bare.metadata_url,
        "global_segment_size": 16 * MiB, "local_buffer_size": 16 * MiB, "protocol": "tcp",
        "device_name": "", "master_server_address": bare.master}))
    monkeypatch.setenv("SGLANG_HICACHE_MOONCAKE_CONFIG_PATH", str(path))
    for setup in (sglang_setup, lambda s: s.init_all("tcp", "", 16 * MiB)):
        s = MooncakeDistributedStore()
        assert setup(s) == 0
        round_trip(s, "cfg_file")
        assert s.remove_all() >= 0
        assert s.close() == 0
    monkeypatch.setenv("SGLANG_HICACHE_MOONCAKE_CONFIG_PATH", str(tmp_path / "missing.json"))
    assert MooncakeDistributedStore().init_all("tcp", "") != 0


def test_from_extra_config_and_the_dict_form(bare):
    extra = {"local_hostname": "127.0.0.1", "metadata_server": "P2PHANDSHAKE",
             "global_segment_size": 16 * MiB, "local_buffer_size": 16 * MiB, "protocol": "tcp",
             "device_name": "", "master_server_address": bare.master}
    s = MooncakeDistributedStore()
    assert sglang_setup(s, extra) == 0
    round_trip(s, "cfg_extra")
    assert s.remove_all() >= 0
    assert s.close() == 0
    s = MooncakeDistributedStore()
    assert s.setup({"local_hostname": "127.0.0.1", "global_segment_size": "16MiB",
                    "local_buffer_size": "4 MB", "master_server_addr": bare.master}) == 0
    round_trip(s, "cfg_dict")
    assert s.remove_all() >= 0
    assert s.close() == 0


def test_inference_processes_are_the_store(bare):
    """Two clients, each contributing 32 MiB, and no store service: each reads what the other
    wrote into its own segment."""
    a, b = MooncakeDistributedStore(), MooncakeDistributedStore()
    for s in (a, b):
        assert s.setup("127.0.0.1", bare.metadata_url, 32 * MiB, 16 * MiB, "tcp", "", bare.master) == 0
    assert sorted(segments(bare)) == sorted([a.get_hostname(), b.get_hostname()])
    values = {f"self_{i}": os.urandom(100000) for i in range(20)}
    assert a.put_batch(list(values), list(values.values())) == 0
    assert b.get_batch(list(values)) == list(values.values())
    assert a.close() == 0 and b.close() == 0
    assert segments(bare) == []  # closing unmounted both


def test_interpreter_exit_closes_the_store(bare):
    """A process that never calls close(): its segment is unmounted as the interpreter exits, not
    left for the master's liveness timeout."""
    script = (
        "from mooncake.store import MooncakeDistributedStore\n"
        "s = MooncakeDistributedStore()\n"
        f"assert s.setup('127.0.0.1', '{bare.metadata_url}', 16 << 20, 1 << 20, 'tcp', '',"
        f" '{bare.master}') == 0\n"
        "assert s.put('exit_key', b'v') == 0\n"
        "print(s.get_hostname(), flush=True)\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() != ""
    assert segments(bare) == []


def test_client_http_server(bare):
    with socket.socket() as probe:  # a port that is free now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = MooncakeDistributedStore()
    assert s.setup("127.0.0.1", bare.metadata_url, 0, MiB, "tcp", "", bare.master, None,
                   enable_client_http_server=True, client_http_port=port) == 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as reply:
        assert reply.status == 200

    def series(name):  # this process's value of a series on the client's /metrics
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as reply:
            for line in reply.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        raise AssertionError(f"{name} is not on /metrics")

    # The calls of this process's clients are counted there (other tests' clients too: deltas).
    exist_keys = series('mooncake_client_keys_total{op="exist"}')
    exist_misses = series('mooncake_client_key_misses_total{op="exist"}')
    gets = series('mooncake_client_requests_total{op="get"}')
    get_misses = series('mooncake_client_key_misses_total{op="get"}')
    assert s.batch_is_exist(["absent_a", "absent_b"]) == [0, 0]
    assert s.get("absent_c") == b""
    assert series('mooncake_client_keys_total{op="exist"}') - exist_keys == 2
    assert series('mooncake_client_key_misses_total{op="exist"}') - exist_misses == 2
    assert series('mooncake_client_requests_total{op="get"}') - gets == 1
    assert series('mooncake_client_key_misses_total{op="get"}') - get_misses == 1
    assert series("process_open_fds") > 0
    assert s.close() == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
    assert s.setup("127.0.0.1", bare.metadata_url, 0, MiB, "tcp", "", bare.master,
                   enable_ssd_offload=True) != 0  # not in this build: refused, not ignored
