"""Loopback ports for servers the tests start."""

import random
import socket


def free_port() -> int:
    """A port free on 127.0.0.1 now (the caller binds it soon after)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Temporal's port layout from the frontend port (aios/stack/cluster.py Ports): the services'
# ports above it, the membership ports 300 below, which must fit Postgres's smallint.
CLUSTER_OFFSETS = (0, 1, 2, 6, 10, -300, -299, -298, -294)


def free_cluster_port() -> int:
    """A frontend port for the cluster profile whose neighbours are free too."""
    for _ in range(200):
        port = random.randrange(21000, 31000)
        if all(_free(port + offset) for offset in CLUSTER_OFFSETS):
            return port
    raise AssertionError("no free block of ports for the cluster's services")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0
