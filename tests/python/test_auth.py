"""The auth token (SPEC.md §8) the way SGLang passes it: MOONCAKE_AUTH_TOKEN in the environment of
every process. The services and the wheel read it; a client without it, or with another, is
refused; /health stays open while /metrics needs the token."""
import urllib.error
import urllib.request

import pytest

from conftest import Cluster, MiB


def http_status(url, token=None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_token_from_the_environment_protects_the_cluster(monkeypatch):
    from mooncake.store import MooncakeDistributedStore

    monkeypatch.setenv("MOONCAKE_AUTH_TOKEN", "py-cluster-secret")
    cluster = Cluster(stores=1)  # every service inherits the environment, token included
    try:
        store = MooncakeDistributedStore()
        assert store.setup("127.0.0.1", cluster.metadata_url, 0, 16 * MiB, "tcp", "",
                           cluster.master) == 0
        value = bytes(range(256)) * 64
        assert store.put("auth_key", value) == 0
        assert store.get("auth_key") == value
        assert store.close() == 0

        for other in ("another-secret", None):
            if other is None:
                monkeypatch.delenv("MOONCAKE_AUTH_TOKEN")
            else:
                monkeypatch.setenv("MOONCAKE_AUTH_TOKEN", other)
            stranger = MooncakeDistributedStore()
            assert stranger.setup("127.0.0.1", cluster.metadata_url, 0, 16 * MiB, "tcp", "",
                                  cluster.master) != 0

        admin = f"http://{cluster.admin}"
        assert http_status(admin + "/health") == 200
        assert http_status(admin + "/metrics") == 401
        assert http_status(admin + "/metrics", "another-secret") == 401
        assert http_status(admin + "/metrics", "py-cluster-secret") == 200
        assert http_status(cluster.metadata_url + "?key=x") == 401
    finally:
        assert cluster.stop() == [0] * len(cluster.services)
