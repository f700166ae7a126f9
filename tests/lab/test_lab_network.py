"""LocalNetwork: real nodes on 127.0.0.1 behind a synchronous, pandas-returning API."""

import asyncio
import math
import socket
import threading

import anyio
import pandas as pd
import pytest

from railgun_ref.drivers.udp import HostStoppedError
from railgun_ref.lab import PING_COLUMNS, Channel, LocalNetwork
from railgun_ref.node import NodeConfig

pytestmark = pytest.mark.integration


def test_every_pair_answers_and_the_table_has_one_row_per_pair(pings: pd.DataFrame) -> None:
    assert list(pings.columns) == list(PING_COLUMNS)
    assert pings.shape == (20, len(PING_COLUMNS))
    assert pings["outcome"].value_counts().to_dict() == {"pong": 20}
    pairs = set(zip(pings["src"], pings["dst"], strict=True))
    assert pairs == {(s, d) for s in range(5) for d in range(5) if s != d}
    assert (pings["rtt_ms"] > 0).all() and pings["rtt_ms"].map(math.isfinite).all()
    assert set(pings["channel"]) == {"datagram"} and set(pings["payload_size"]) == {0}


def test_ids_in_the_table_match_the_nodes(network: LocalNetwork, pings: pd.DataFrame) -> None:
    nodes = network.nodes()
    assert list(nodes.columns) == ["node", "node_id", "host", "port", "running"]
    assert nodes["running"].all() and set(nodes["host"]) == {"127.0.0.1"}
    assert nodes["port"].is_unique
    short = {i: node_id[:12] for i, node_id in zip(nodes["node"], nodes["node_id"], strict=True)}
    assert all(pings["src_id"] == pings["src"].map(short))
    assert all(pings["dst_id"] == pings["dst"].map(short))


def test_traces_hold_both_sides_of_every_ping(network: LocalNetwork, pings: pd.DataFrame) -> None:
    traces = network.traces()
    assert {"time", "t", "node", "node_id", "event", "peer_id", "rtt"} <= set(traces.columns)
    counts = traces["event"].value_counts()
    assert counts["PingReceived"] >= len(pings) and counts["PongReceived"] >= len(pings)
    assert traces["time"].is_monotonic_increasing
    assert (traces["t"] >= 0).all()


def test_counters_are_a_node_by_counter_table(network: LocalNetwork, pings: pd.DataFrame) -> None:
    counters = network.counters()
    assert counters.index.name == "node" and len(counters) == 5
    assert list(counters.columns) == sorted(counters.columns)
    assert counters["ping.answered"].sum() >= len(pings)
    assert counters["pong.received"].sum() >= len(pings)
    assert (counters.filter(like="rejected.").sum().sum()) == 0


def test_stream_pings_carry_payloads_no_datagram_could() -> None:
    with LocalNetwork.start(3, seed=2) as net:
        pings = net.ping_all_pairs(channel=Channel.STREAM, payload_size=60_000)
        one = net.ping(2, 0, channel="stream")
    assert pings["outcome"].value_counts().to_dict() == {"pong": 6}
    assert set(pings["channel"]) == {"stream"} and set(pings["payload_size"]) == {60_000}
    assert one["outcome"] == "pong" and (one["src"], one["dst"]) == (2, 0)


def test_close_stops_every_node_releases_ports_and_ends_the_thread() -> None:
    threads_before = set(threading.enumerate())
    net = LocalNetwork.start(5, seed=3)
    addresses = list(zip(net.nodes()["host"], net.nodes()["port"], strict=True))
    assert net.ping_all_pairs()["outcome"].eq("pong").all()
    net.close()
    assert net.all_stopped and not net.running
    assert not net.nodes()["running"].any()
    assert set(threading.enumerate()) == threads_before
    for host, port in addresses:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, int(port)))  # the UDP port is free again
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, int(port)))  # and nothing listens on the TCP one
            tcp.listen()
    net.close()  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        net.ping_all_pairs()


def test_the_seed_fixes_node_ids() -> None:
    with LocalNetwork.start(4, seed=5) as a:
        ids_a = list(a.nodes()["node_id"])
    with LocalNetwork.start(4, seed=5) as b:
        ids_b = list(b.nodes()["node_id"])
    with LocalNetwork.start(4, seed=6) as c:
        ids_c = list(c.nodes()["node_id"])
    assert ids_a == ids_b and not set(ids_a) & set(ids_c)


def test_restart_changes_the_size_and_keeps_the_first_ids() -> None:
    with LocalNetwork.start(3, seed=8) as net:
        before = list(net.nodes()["node_id"])
        net.restart(6)
        after = net.nodes()
        pings = net.ping_all_pairs()
    assert net.size == 6 and list(after["node_id"])[:3] == before
    assert len(pings) == 30 and pings["outcome"].eq("pong").all()


def test_a_stopped_node_is_reported_as_timeouts_and_sends_nothing() -> None:
    with LocalNetwork.start(3, seed=9, config=NodeConfig(request_timeout=1.0)) as net:
        net.stop_node(2)
        assert net.nodes()["running"].tolist() == [True, True, False]
        assert net.running  # the network serves on with the other nodes
        pings = net.ping_all_pairs()
        with pytest.raises(HostStoppedError):
            net.ping(2, 0)
        counters = net.counters()
    outcome = dict(zip(zip(pings["src"], pings["dst"], strict=True), pings["outcome"], strict=True))
    assert outcome == {(0, 1): "pong", (0, 2): "timeout", (1, 0): "pong", (1, 2): "timeout"}
    assert pings.loc[pings["outcome"] == "timeout", "rtt_ms"].isna().all()
    assert counters["request.timeout"].tolist() == [1, 1, 0]
    assert net.all_stopped


def test_bad_pairs_are_refused() -> None:
    with LocalNetwork.start(2, seed=1) as net, pytest.raises(IndexError):
        net.ping(0, 2)
    with pytest.raises(ValueError):
        LocalNetwork.start(0)


def test_sync_calls_work_while_an_event_loop_runs_in_the_calling_thread() -> None:
    # What a Jupyter cell does: plain calls from a thread whose asyncio loop is running.
    async def cell() -> pd.DataFrame:
        with LocalNetwork.start(3, seed=4) as net:
            return net.ping_all_pairs()

    assert asyncio.run(cell())["outcome"].eq("pong").all()


@pytest.mark.anyio
async def test_async_twins_do_not_block_the_callers_loop() -> None:
    net = LocalNetwork(concurrency=4)
    await net.arestart(4, seed=12)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.001)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            pings = await net.aping_all_pairs(channel="stream")
            one = await net.aping_pairs([(0, 3)])
            tg.cancel_scope.cancel()
    finally:
        await net.aclose()
    assert pings["outcome"].eq("pong").all() and len(pings) == 12
    assert one["outcome"].tolist() == ["pong"]
    assert ticks > 0 and net.all_stopped
