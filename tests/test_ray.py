"""The Ray executor on a real Ray cluster of two nodes on this machine, bound to the
loopback address only: tasks spread over the nodes under the one cap, the agent's commits
come back as the task's branch, cancel ends a remote agent that ignores SIGTERM, a
supervisor killed with -9 re-adopts its running actor, a node that dies has its
attempt run again on another node, and while no cluster answers the queue waits.

The cluster is started once for the module (a few seconds); each test has its own home,
so its own actor names. Agents are counted from the process table (every node is a set
of processes on this machine), not from kugetsu's own counters.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.helpers.harness import FAKE_AGENT, Kugetsu, git, make_repo, script, wait_until

ray_cluster_utils = pytest.importorskip("ray.cluster_utils")

AGENTS_PER_NODE = 2


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head and one worker node, each holding AGENTS_PER_NODE agents, on 127.0.0.1."""
    # Without it Ray advertises the machine's own address; tests stay on loopback.
    old = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    made = ray_cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"kugetsu_agent": AGENTS_PER_NODE},
            "node_ip_address": "127.0.0.1",
            "include_dashboard": False,
            # A killed node is noticed within a couple of seconds, not the default ~15.
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3},
        },
    )
    made.add_node(num_cpus=1, resources={"kugetsu_agent": AGENTS_PER_NODE}, node_ip_address="127.0.0.1")
    made.wait_for_nodes()
    try:
        yield made
    finally:
        made.shutdown()
        if old is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = old


class RayKugetsu(Kugetsu):
    """A test's home whose config always runs its agents on the cluster."""

    address = ""

    def write_config(self, **sections: Any) -> dict[str, Any]:
        sections = {
            "executor": {"kind": "ray", "address": self.address},
            "agents": {"fake": {"command": [sys.executable, FAKE_AGENT, "{prompt}"], "est_rss": "32MiB"}},
            **sections,
        }
        return super().write_config(**sections)

    def cleanup(self) -> None:
        """Also the node-local folders of this home's actors (clones, worktrees, logs)."""
        super().cleanup()
        from kugetsu_tui.engine.executor.ray_shared import home_id
        from kugetsu_tui.engine.home import Home

        for left in Path(tempfile.gettempdir()).glob(f"kugetsu-{home_id(Home(self.home))}-*"):
            shutil.rmtree(left, ignore_errors=True)


@pytest.fixture
def rk(tmp_path: Path, cluster: Any) -> Iterator[RayKugetsu]:
    RayKugetsu.address = cluster.address
    harness = RayKugetsu(tmp_path)
    harness.env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        yield harness
    finally:
        harness.cleanup()


def remote_agents(home: Path) -> list[psutil.Process]:
    """The fake agents started on any node for this home: they run in the node-local
    folders named by the home's id."""
    from kugetsu_tui.engine.executor.ray_shared import home_id
    from kugetsu_tui.engine.home import Home

    where = str(Path(tempfile.gettempdir()) / f"kugetsu-{home_id(Home(home))}-")
    found = []
    for proc in psutil.process_iter():
        try:
            cmd = proc.cmdline()
            if len(cmd) < 2 or cmd[1] != FAKE_AGENT:
                continue
            if proc.cwd().startswith(where) and not proc.environ().get("FAKE_AGENT_CHILD"):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def node_of(kg: Kugetsu, task_id: int) -> dict[str, str] | None:
    """Where `status --json` says the task runs (or last ran)."""
    node: dict[str, str] | None = kg.task(task_id)["node"]
    return node


def kill_node(cluster: Any, node: Any) -> None:
    """As if the node's machine died: its Ray processes (raylet and workers) killed at
    once. The agents it ran are left to the executor's own watchdog, as they would be
    where only Ray went down."""
    raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
    workers = [p for p in raylet.children(recursive=True) if p.name().startswith("ray::")]
    cluster.remove_node(node, allow_graceful=False)
    for proc in workers:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def listening_outside_loopback() -> list[tuple[str, Any]]:
    """Ray processes (of any cluster of this machine) listening outside 127.0.0.0/8."""
    outside = []
    for proc in psutil.process_iter():
        try:
            name = " ".join(proc.cmdline()[:2])
            if "ray" not in name and "gcs_server" not in name and "raylet" not in name:
                continue
            conns = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        for conn in conns:
            if conn.status != psutil.CONN_LISTEN:
                continue
            ip = ipaddress.ip_address(conn.laddr.ip)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            if not ip.is_loopback:
                outside.append((name, conn.laddr))
    return outside


def test_ray_listens_on_loopback_only(cluster: Any) -> None:
    outside = listening_outside_loopback()
    assert not outside, f"Ray listens outside 127.0.0.0/8: {outside}"


def test_tasks_spread_over_nodes_under_the_cap_and_their_commits_come_back(
    rk: Kugetsu, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "app")
    starts = tmp_path / "starts"
    rk.write_config(capacity={"cap": 3})
    ids = [
        rk.add(
            script(
                ["record", starts],
                ["write", f"out-{n}.txt", f"made by task {n}"],
                ["git-commit", f"task {n} did its work"],
                ["sleep", 1.5],
            ),
            "--repo",
            str(repo),
        )
        for n in range(5)
    ]
    most = 0
    done = threading.Event()

    def count() -> None:
        nonlocal most
        while not done.is_set():
            most = max(most, len(remote_agents(rk.home)))
            done.wait(0.05)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        run = rk.run(timeout=120)
    finally:
        done.set()
        counter.join()
    assert run.returncode == 0, run.stderr
    tasks = rk.tasks()
    assert [tasks[i]["state"] for i in ids] == ["succeeded"] * 5
    assert 2 <= most <= 3, f"at most the cap (3) of agents at once across the cluster, saw {most}"
    nodes = {node_of(rk, i)["node_id"] for i in ids}  # type: ignore[index]
    assert len(nodes) == 2, "the tasks ran on both nodes"
    # Each ran in a worktree on its node, not in the one here.
    assert not any(r["cwd"].startswith(str(rk.home)) for r in records(starts))
    for n, task_id in enumerate(ids):
        branch = tasks[task_id]["branch"]
        assert git(repo, "log", "-1", "--format=%s", branch).strip() == f"task {n} did its work"
        assert git(repo, "show", f"{branch}:out-{n}.txt") == f"made by task {n}"
        assert "made by" not in (repo / "README.md").read_text()
    code, out, _ = rk.main("status")
    assert code == 0 and "NODE" in out


def test_cancel_ends_a_remote_agent_that_ignores_sigterm(rk: Kugetsu) -> None:
    task = rk.add(script(["ignore-term"], ["sleep", 60]))
    supervisor = rk.start_supervisor()
    rk.wait_state(task, "running")
    wait_until(lambda: remote_agents(rk.home), "the agent to start on a node")
    # Its process tree is measured on its node, and the reading comes back.
    usage = wait_until(
        lambda: (u := rk.task(task)["usage"]) and u["procs"] == 2 and u, "the agent's tree to be measured"
    )
    assert usage["rss"] > 2**20, usage  # the wrapper and the agent, on their node
    # Status's per-node lines and the advisor's figures are the cluster's.
    status = wait_until(
        lambda: (s := rk.status())["nodes"] and sum(n["live"] for n in s["nodes"]) == 1 and s,
        "status to count the agent on its node",
    )
    where = node_of(rk, task)["node_id"]  # type: ignore[index]
    assert {n["node_id"]: n["live"] for n in status["nodes"]}[where] == 1
    assert [n["slots"] for n in status["nodes"]] == [AGENTS_PER_NODE] * 2
    assert all(n["address"] == "127.0.0.1" and n["cpus"] == 1 and n["memory"] > 0 for n in status["nodes"])
    assert status["machine"]["scope"] == "cluster" and status["machine"]["slots"] == 2 * AGENTS_PER_NODE
    assert status["cap_reason"].startswith("cluster of 2 nodes: 4 kugetsu_agent slots"), status["cap_reason"]
    assert status["suggested_cap"] == 2 * AGENTS_PER_NODE, status
    code, out, _ = rk.main("status")
    assert code == 0 and "cluster: 2 nodes, 4 agent slots, 2 CPUs" in out, out
    assert out.count(" 1/2 agents live, 1 CPUs") == 1 and out.count(" 0/2 agents live, 1 CPUs") == 1, out
    code, _, err = rk.main("cancel", str(task))
    assert code == 0, err
    rk.wait_state(task, "cancelled")
    wait_until(lambda: not remote_agents(rk.home), "the remote agent to be gone", timeout=10)
    rk.stop_supervisor(supervisor)


def test_pause_stops_the_remote_agent_and_resume_lets_it_finish(rk: Kugetsu, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    task = rk.add(script(["wait-file", gate], ["say", "went on"]))
    supervisor = rk.start_supervisor()
    rk.wait_state(task, "running")
    agent = wait_until(lambda: remote_agents(rk.home), "the agent to start on a node")[0]
    code, _, err = rk.main("pause", str(task))
    assert code == 0, err
    assert rk.task(task)["state"] == "paused"
    wait_until(lambda: agent.status() == psutil.STATUS_STOPPED, "the agent to be stopped")
    gate.touch()
    code, _, err = rk.main("resume", str(task))
    assert code == 0, err
    assert rk.wait_state(task, "succeeded", "failed")["state"] == "succeeded"
    assert "went on" in (rk.home / "runs" / str(task) / "log").read_text()
    rk.stop_supervisor(supervisor)


def test_an_agent_missing_on_the_node_fails_its_attempt_with_the_reason_in_its_log(rk: Kugetsu) -> None:
    rk.write_config(agents={"ghost": {"command": ["kugetsu-no-such-agent", "{prompt}"], "est_rss": "32MiB"}})
    task = rk.add("hello", "--agent", "ghost", "--max-attempts", "1")
    run = rk.run(timeout=60)
    assert run.returncode == 1
    assert rk.task(task)["state"] == "failed"
    log = (rk.home / "runs" / str(task) / "log").read_text()
    assert "cannot start on" in log and "'kugetsu-no-such-agent' not found on PATH" in log, log


def test_a_timeout_ends_a_remote_agent_that_ignores_sigterm(rk: Kugetsu) -> None:
    task = rk.add(
        script(["ignore-term"], ["say", "working"], ["sleep", 60]), "--timeout", "6s", "--max-attempts", "1"
    )
    run = rk.run(timeout=60)
    assert run.returncode == 1
    done = rk.task(task)
    assert done["state"] == "failed" and done["reason"] == "timed out after 6s", done
    assert not remote_agents(rk.home), "killed after kill_grace, not left running"
    assert "working" in (rk.home / "runs" / str(task) / "log").read_text(), "its log came back"


def start_head(port: int) -> Any:
    """A one-node cluster whose head listens on 127.0.0.1:port."""
    return ray_cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={
            "gcs_server_port": port,
            "num_cpus": 1,
            "resources": {"kugetsu_agent": AGENTS_PER_NODE},
            "node_ip_address": "127.0.0.1",
            "include_dashboard": False,
        },
    )


def test_an_unreachable_cluster_holds_admission_until_it_answers(rk: Kugetsu) -> None:
    """Fail closed: while no cluster answers at the address the queue waits, no attempt
    spent, and status says why; once one answers there the tasks run, once each. Both
    for a cluster not there when the supervisor starts and for one stopped under it."""
    port = free_port()
    rk.write_config(executor={"kind": "ray", "address": f"127.0.0.1:{port}"})
    unreachable = f"cluster unreachable: cannot reach the Ray cluster at 127.0.0.1:{port}"

    def held(ids: list[int]) -> None:
        status = wait_until(
            lambda: (
                (s := rk.status())["admission_blocked"]
                and s["admission_blocked"].startswith(unreachable)
                and s
            ),
            "status to say the cluster cannot be reached",
        )
        queued = [t for t in status["tasks"] if t["id"] in ids]
        assert [(t["state"], t["attempts"]) for t in queued] == [("queued", 0)] * len(ids), queued
        assert all(t["wait_reason"].startswith(unreachable) for t in queued), queued
        code, out, _ = rk.main("status")
        assert code == 0 and f"note: {unreachable}" in out, out

    def run_once(ids: list[int]) -> None:
        assert not listening_outside_loopback()
        for task_id in ids:
            done = rk.wait_state(task_id, "succeeded", "failed", timeout=90)
            assert (done["state"], done["attempts"]) == ("succeeded", 1), done
        assert rk.status()["admission_blocked"] is None

    first = [rk.add(script(["say", f"ran {n}"])) for n in range(2)]
    supervisor = rk.start_supervisor()
    held(first)
    head = start_head(port)
    try:
        run_once(first)
    finally:
        head.shutdown()
    # Stopped under a supervisor connected to it: added now, they wait for it as well.
    then = [rk.add(script(["say", f"ran {n}"])) for n in range(2)]
    held(then)
    head = start_head(port)
    try:
        run_once(then)
        rk.stop_supervisor(supervisor)
    finally:
        head.shutdown()
    notes = [e.get("error", "") for e in rk.events() if e["type"] == "supervisor_warning"]
    # Said once per outage (the supervisor looked again every few seconds), and when it ended.
    assert len([n for n in notes if n.startswith(unreachable)]) == 2, notes
    assert len([n for n in notes if "answers again" in n]) == 2, notes
    for task_id in first + then:
        kinds = [e["type"] for e in rk.events(task_id)]
        assert "task_retrying" not in kinds and "task_error" not in kinds, kinds


def test_an_unknown_executor_kind_is_a_config_error(kg: Kugetsu) -> None:
    kg.write_config(executor={"kind": "cloud"})
    done = kg.cli("cap", "4")  # (reading commands run on the defaults, saying so)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "[executor] kind" in done.stderr and '"ray"' in done.stderr, (
        done.stderr
    )


def test_a_supervisor_killed_with_kill_9_re_adopts_its_running_actor(rk: Kugetsu, tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    gate = tmp_path / "gate"
    task = rk.add(script(["record", starts], ["wait-file", gate], ["say", "finished"]))
    first = rk.start_supervisor()
    rk.wait_state(task, "running")
    wait_until(lambda: records(starts), "the agent to start")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    # Pointed at no cluster, a supervisor cannot tell whether the actor runs: it refuses
    # to start rather than run the task again.
    port = free_port()
    rk.write_config(executor={"kind": "ray", "address": f"127.0.0.1:{port}"})
    refused = rk.run(timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in refused.stderr, refused.stderr
    assert rk.task(task)["state"] == "running"
    rk.write_config()
    second = rk.start_supervisor()
    wait_until(
        lambda: any(e["type"] == "task_adopted" for e in rk.events(task)), "the attempt to be re-adopted"
    )
    gate.touch()
    done = rk.wait_state(task, "succeeded", "failed")
    assert done["state"] == "succeeded", done
    assert len(records(starts)) == 1, "the agent ran once"
    assert "finished" in (rk.home / "runs" / str(task) / "log").read_text()
    rk.stop_supervisor(second)


def test_a_killed_node_interrupts_its_attempt_which_runs_again_elsewhere(
    rk: Kugetsu, cluster: Any, tmp_path: Path
) -> None:
    """Last in the module: it kills the worker node."""
    starts, ends = tmp_path / "starts", tmp_path / "ends"
    rk.write_config(capacity={"cap": 4})
    ids = [rk.add(script(["record", starts], ["sleep", 8], ["record", ends])) for _ in range(4)]
    supervisor = rk.start_supervisor()
    head = cluster.head_node.node_id
    for task_id in ids:
        wait_until(lambda t=task_id: node_of(rk, t), f"task {task_id} to be placed")
    victim = next(t for t in ids if node_of(rk, t)["node_id"] != head)  # type: ignore[index]
    lost = node_of(rk, victim)["node_id"]  # type: ignore[index]
    kill_node(cluster, next(n for n in cluster.worker_nodes))
    for task_id in ids:
        rk.wait_state(task_id, "succeeded", "failed", timeout=90)
    assert all(rk.task(t)["state"] == "succeeded" for t in ids)
    interrupted = [e for e in rk.events(victim) if e["type"] == "task_interrupted"]
    assert interrupted, "the attempt on the dead node was interrupted"
    started = [r for r in records(starts) if r["task"] == str(victim)]
    finished = [r for r in records(ends) if r["task"] == str(victim)]
    assert len(started) == 2 and len(finished) == 1, (started, finished)
    assert node_of(rk, victim)["node_id"] == head  # type: ignore[index]
    log = (rk.home / "runs" / str(victim) / "log").read_text()
    assert f"lost the attempt on node {lost}" in log, log
    rk.stop_supervisor(supervisor)
    with contextlib.suppress(Exception):
        cluster.add_node(
            num_cpus=1, resources={"kugetsu_agent": AGENTS_PER_NODE}, node_ip_address="127.0.0.1"
        )
