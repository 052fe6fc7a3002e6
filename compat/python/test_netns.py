"""A node cut off from a 3-node cluster is fenced and leads nothing; reconnected, it
rejoins and leads its partitions again, with every record it held.

The cluster runs in network namespaces made by this test (netns.py: a hub with a
bridge, one namespace per node, veths), removed afterwards whatever happened. A node
is cut off by setting the hub's end of its veth down, which is a real partition: its
TCP connections stall, as on a pulled cable, rather than being refused. Two cases:
the cut-off node is a plain broker (node 2, unless it is the active controller), or
it is the active controller, so the other two must elect a new one before they can
fence it.

Replication factor is 1, so the cut-off node's partitions have no other replica to
move to: while it is fenced they must have no leader at all, and the partitions on
the other nodes must keep taking writes. The views each node gave are printed as a
timeline at the end, also when the test passes.
"""

from __future__ import annotations

import os
import time

import pytest

from netns import NetnsCluster, namespaces_with_prefix

TOPIC = "netns-cut"
PARTITIONS = 6
CUT = 2
RECORDS_PER_STEP = 3
READY_TIMEOUT_S = 30.0
# broker.session.timeout.ms is 3 s; a new controller may have to be elected first
# (1-2 s) when node 2 was the active one.
FENCE_TIMEOUT_S = 20.0
# How long the node stays cut off at least: long enough for it to stand for election
# a few times (raft election timeout 1-2 s), so it comes back with a higher term than
# the others — the rejoin that can disturb the quorum.
CUT_HOLD_S = 8.0
REJOIN_TIMEOUT_S = 20.0


@pytest.fixture
def cluster(tmp_path):
    runnel = os.environ.get("RUNNEL_BIN")
    assert runnel, "RUNNEL_BIN is not set: build with `cargo build -p runnel-cli` and export its path"
    assert os.access(runnel, os.X_OK), f"RUNNEL_BIN={runnel} is not an executable file"
    netns = NetnsCluster(runnel, tmp_path)
    try:
        try:
            netns.create_network()
        except AssertionError as error:
            raise AssertionError(
                "cannot build the test network (this test needs root and `ip netns`; "
                f"it is never skipped): {error}"
            ) from None
        netns.start_nodes()
        yield netns
    finally:
        print(f"\nwhat each node said (changes only):\n{netns.timeline()}")
        errors = netns.destroy()
        leftovers = namespaces_with_prefix(netns.prefix)
        assert not errors and not leftovers, (
            f"network not removed: errors {errors}, namespaces left {leftovers}"
        )


def wait_for(netns: NetnsCluster, what: str, timeout_s: float, probe):
    """Calls `probe()` until it returns (True, observed); returns (seconds taken,
    observed). On timeout fails with the last observation and every node's log."""
    start = time.monotonic()
    observed = None
    while time.monotonic() - start < timeout_s:
        dead = netns.dead_nodes()
        assert not dead, f"{what}: {dead}\n{netns.logs()}"
        done, observed = probe()
        if done:
            return time.monotonic() - start, observed
        time.sleep(0.25)
    raise AssertionError(
        f"{what}: not within {timeout_s}s; last seen {observed}\n{netns.logs()}"
    )


def views(netns: NetnsCluster, node_ids, topic=None) -> dict:
    """Each node's own answer to DescribeCluster (and Metadata for `topic`)."""
    by_id = {node.node_id: node for node in netns.nodes}
    return {i: netns.describe(by_id[i].bootstrap, topic) for i in node_ids}


def produce(netns: NetnsCluster, bootstrap: str, records: dict) -> None:
    result = netns.client({
        "action": "produce", "bootstrap": bootstrap, "topic": TOPIC,
        "records": {str(p): v for p, v in records.items()},
    })
    delivered = {int(p): len(o) for p, o in result.get("delivered", {}).items()}
    wanted = {p: len(v) for p, v in records.items()}
    assert not result.get("error") and not result["errors"] and delivered == wanted, (
        f"produce via {bootstrap}: {result}\n{netns.logs()}"
    )


@pytest.mark.parametrize("role", ["broker", "active-controller"])
def test_cut_off_node_is_fenced_and_rejoins(cluster: NetnsCluster, role: str):
    """`role` is what the cut-off node is besides a broker: node 2 when it is not the
    active controller ("broker"), or the active controller, whichever node that is;
    then nodes 1 and 3 (or the two left) must first elect a new one."""
    netns = cluster
    everyone = [node.node_id for node in netns.nodes]
    first = netns.nodes[0].bootstrap
    all_bootstrap = ",".join(node.bootstrap for node in netns.nodes)

    # 1. The cluster forms; the topic's partitions are led by all three nodes.
    took, seen = wait_for(netns, "every node lists all three brokers", READY_TIMEOUT_S,
                          lambda: _all_listed(netns, everyone))
    print(f"\ncluster formed in {took:.1f}s")
    created = netns.cli(first, "topics", "create", TOPIC, "--partitions", str(PARTITIONS),
                        "--replication-factor", "1")
    assert created.returncode == 0, f"topics create: {created.stderr}\n{netns.logs()}"
    _, seen = wait_for(netns, "every partition has a leader in every node's view",
                       READY_TIMEOUT_S, lambda: _all_led(netns, everyone))
    leaders = seen[1]["leaders"]
    assert set(leaders.values()) == set(everyone), f"leaders do not cover all nodes: {seen}"
    controller = seen[1]["controller"]
    if role == "active-controller":
        cut = controller
    else:
        cut = CUT if controller != CUT else next(i for i in everyone if i != controller)
    others = [i for i in everyone if i != cut]
    others_bootstrap = ",".join(n.bootstrap for n in netns.nodes if n.node_id != cut)
    on_cut = sorted(p for p, leader in leaders.items() if leader == cut)
    on_others = sorted(p for p in leaders if p not in on_cut)
    print(f"leaders {leaders}; controller {controller}; cutting node {cut}, which leads {on_cut}")

    written = {p: [] for p in range(PARTITIONS)}

    def write(bootstrap: str, partitions, step: str) -> None:
        batch = {p: [f"{step}-p{p}-{i}" for i in range(RECORDS_PER_STEP)] for p in partitions}
        produce(netns, bootstrap, batch)
        for p, values in batch.items():
            written[p] += values

    write(all_bootstrap, range(PARTITIONS), "before")

    # 2. Cut off, the node is fenced by the others and leads nothing; the rest writes.
    cut_at = time.monotonic()
    netns.cut(cut)
    took, seen = wait_for(netns, f"nodes {others} fence node {cut}", FENCE_TIMEOUT_S,
                          lambda: _fenced(netns, cut, others, on_cut))
    print(f"node {cut} fenced {took:.1f}s after the cut; views {seen}")
    write(others_bootstrap, on_others, "during")
    isolated = netns.nodes[cut - 1]
    print(f"node {cut}'s own view while cut off (not asserted): "
          f"{netns.describe(isolated.bootstrap, TOPIC, isolated.namespace)}")
    time.sleep(max(0.0, CUT_HOLD_S - (time.monotonic() - cut_at)))
    done, seen = _fenced(netns, cut, others, on_cut)
    assert done, f"node {cut} is no longer fenced while still cut off: {seen}\n{netns.logs()}"
    # The cut-off node has not heard from a controller for a whole session: it
    # has fenced itself too and refuses writes to the partitions it led, so a
    # client that can still reach it is sent elsewhere (NOT_LEADER_OR_FOLLOWER).
    host, port = isolated.bootstrap.rsplit(":", 1)
    refused = netns.client(
        {"action": "produce_error_code", "host": host, "port": port, "topic": TOPIC,
         "partition": on_cut[0]},
        namespace=isolated.namespace,
    )
    assert refused.get("error_code") == 6, (
        f"node {cut} did not answer NOT_LEADER_OR_FOLLOWER while cut off: {refused}\n{netns.logs()}"
    )
    print(f"node {cut} answers NOT_LEADER_OR_FOLLOWER for partition {on_cut[0]} while cut off")

    # 3. Reconnected, the node is listed again and leads its partitions again.
    netns.reconnect(cut)
    took, seen = wait_for(netns, f"node {cut} rejoins", REJOIN_TIMEOUT_S,
                          lambda: _rejoined(netns, everyone, leaders))
    print(f"node {cut} leads {on_cut} again {took:.1f}s after the reconnect; "
          f"controller {seen[1]['controller']}")
    write(all_bootstrap, range(PARTITIONS), "after")

    # Everything written is there, in order, once: from before the cut, during it
    # (the other nodes' partitions only) and after.
    result = netns.client({
        "action": "consume", "bootstrap": all_bootstrap, "topic": TOPIC,
        "expect": {str(p): len(v) for p, v in written.items()},
    })
    assert "error" not in result, f"consume: {result}\n{netns.logs()}"
    read = {int(p): values for p, values in result["records"].items()}
    assert read == written, (
        f"records differ; read {read}, written {written}; errors {result['errors']}\n"
        f"{netns.logs()}"
    )


def _all_listed(netns, everyone):
    seen = views(netns, everyone)
    return all(v.get("brokers") == everyone for v in seen.values()), seen


def _all_led(netns, everyone):
    seen = views(netns, everyone, TOPIC)
    done = all(
        "error" not in v
        and len(v["leaders"]) == PARTITIONS
        and all(v["leaders"][p] == v["replicas"][p][0] for p in v["leaders"])
        and v["leaders"] == seen[everyone[0]]["leaders"]
        and v["controller"] == seen[everyone[0]]["controller"]
        for v in seen.values()
    )
    return done, seen


def _fenced(netns, cut, others, on_cut):
    """In each other node's view: the cut node is no broker and not the controller,
    its partitions have no leader, and it leads nothing."""
    seen = views(netns, others, TOPIC)
    done = all(
        "error" not in v
        and cut not in v["brokers"]
        and v["controller"] in others
        and all(v["leaders"][p] == -1 and v["replicas"][p] == [cut] for p in on_cut)
        and cut not in v["leaders"].values()
        for v in seen.values()
    )
    return done, seen


def _rejoined(netns, everyone, leaders):
    seen = views(netns, everyone, TOPIC)
    done = all(
        "error" not in v and v["brokers"] == everyone and v["leaders"] == leaders
        for v in seen.values()
    )
    return done, seen
