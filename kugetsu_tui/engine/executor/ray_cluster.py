"""The Ray cluster as the supervisor sees it: its one connection to it (made on first
use, made anew when the head answers again after an outage), whether its head answers,
and what its nodes hold (the `kugetsu_agent` slots, CPUs and memory Ray reports), for
the capacity advisor, the admission hold while the cluster is out of reach, and status's
per-node lines."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kugetsu_tui.engine.executor.ray_shared import (
    CONNECT_TIMEOUT,
    NAMESPACE,
    RESOURCE,
    first_line,
    import_ray,
)
from kugetsu_tui.engine.runner import SpawnError

RECONNECT_ENV = "RAY_gcs_rpc_server_reconnect_timeout_s"
RECONNECT_FOR = 10**7  # seconds (months): as good as never giving up


class Unreachable(SpawnError):
    """The cluster does not answer: the attempt was not started and is not to blame."""


@dataclass(frozen=True, slots=True)
class NodeReading:
    node_id: str
    host: str
    address: str
    slots: int  # the kugetsu_agent resources the node holds
    cpus: float
    memory: int  # bytes Ray may hand out to tasks and actors on it
    live: int  # attempts of this supervisor running on it

    def to_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "host": self.host,
            "address": self.address,
            "live": self.live,
            "slots": self.slots,
            "cpus": self.cpus,
            "memory": self.memory,
        }


@dataclass(frozen=True, slots=True)
class ClusterReading:
    """The alive nodes and the cluster's totals (and what of them is not held now)."""

    nodes: tuple[NodeReading, ...]
    slots: int
    cpus: float
    memory: int
    memory_available: int


def probe(address: str) -> None:
    """Unreachable unless the head's port answers: ray.init and Ray's calls wait minutes
    for a head that does not, where this takes at most CONNECT_TIMEOUT."""
    if address == "auto":
        return  # the address is found by Ray itself; only connecting tells
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except (OSError, ValueError) as err:
        raise Unreachable(f"cannot reach the Ray cluster at {address}: {err}") from None


def read(ray: Any, live: Mapping[str, int]) -> ClusterReading:
    """The cluster now, from a connected Ray; live: node id -> attempts running there."""
    nodes = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        held = node.get("Resources") or {}
        node_id = str(node.get("NodeID", ""))
        nodes.append(
            NodeReading(
                node_id=node_id,
                host=str(node.get("NodeManagerHostname", "?")),
                address=str(node.get("NodeManagerAddress", "?")),
                slots=int(held.get(RESOURCE, 0)),
                cpus=float(held.get("CPU", 0)),
                memory=int(held.get("memory", 0)),
                live=live.get(node_id, 0),
            )
        )
    total, free = ray.cluster_resources(), ray.available_resources()
    return ClusterReading(
        nodes=tuple(nodes),
        slots=int(total.get(RESOURCE, 0)),
        cpus=float(total.get("CPU", 0)),
        memory=int(total.get("memory", 0)),
        memory_available=int(free.get("memory", 0)),
    )


class Connection:
    """The supervisor's connection to the cluster (Ray allows one per process)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.generation = 0  # how many times it was made anew after an outage
        self._connected = False
        self._lost = False  # connected, then the head stopped answering: connect anew once it does
        self._lock = threading.Lock()

    def ray(self) -> Any:
        """Ray, connected (again, after an outage); Unreachable if the head does not answer."""
        ray = import_ray()
        with self._lock:
            if self._lost:
                self._start_over(ray)
            if not self._connected:
                if not ray.is_initialized():
                    self._init(ray)
                self._connected = True
        return ray

    def probe(self) -> None:
        """Unreachable unless the head answers now (and then, connect anew when it does)."""
        try:
            probe(self.address)
        except Unreachable:
            self._lost = self._lost or self._connected
            raise

    def read(self, live: Mapping[str, int]) -> ClusterReading:
        """The cluster now (see read()); Unreachable while it cannot be."""
        self.probe()  # a head gone since: said at once, not after Ray's retries
        ray = self.ray()
        try:
            return read(ray, live)
        except Exception as err:  # whatever Ray raised, the cluster did not answer
            raise Unreachable(f"cannot reach the Ray cluster at {self.address}: {first_line(err)}") from None

    def _init(self, ray: Any) -> None:
        options: dict[str, Any] = {}
        probe(self.address)  # ray.init waits minutes for a head that does not answer
        host = self.address.rpartition(":")[0]
        if host.startswith("127.") or host == "localhost":
            options["_node_ip_address"] = "127.0.0.1"
        # Ray ends a driver whose head has been gone a minute; the supervisor must outlive
        # an outage (admission waits) and carry on once the head answers again.
        os.environ.setdefault(RECONNECT_ENV, str(RECONNECT_FOR))
        try:
            ray.init(
                address=self.address,
                namespace=NAMESPACE,
                log_to_driver=False,
                logging_level="ERROR",
                **options,
            )
        except Exception as err:
            raise Unreachable(f"cannot reach the Ray cluster at {self.address}: {err}") from None

    def _start_over(self, ray: Any) -> None:
        """The head answers again after an outage, perhaps as a new cluster: connect anew.
        What ran on the old one is lost to it (its looks fail: interrupted, run again)."""
        with contextlib.suppress(Exception):
            ray.shutdown()
        self._connected = self._lost = False
        self.generation += 1  # the old connection's actor handles and object refs are dead
