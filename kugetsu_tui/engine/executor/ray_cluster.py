"""The Ray cluster as the supervisor sees it: whether its head answers, and what its nodes
hold (the `kugetsu_agent` slots, CPUs and memory Ray reports), for the capacity advisor,
the admission hold while the cluster is out of reach, and status's per-node lines."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kugetsu_tui.engine.executor.ray_shared import CONNECT_TIMEOUT, RESOURCE
from kugetsu_tui.engine.runner import SpawnError


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
    """SpawnError unless the head's port answers: ray.init and Ray's calls wait minutes
    for a head that does not, where this takes at most CONNECT_TIMEOUT."""
    if address == "auto":
        return  # the address is found by Ray itself; only connecting tells
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except (OSError, ValueError) as err:
        raise SpawnError(f"cannot reach the Ray cluster at {address}: {err}") from None


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
