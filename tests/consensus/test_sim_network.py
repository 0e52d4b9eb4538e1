"""The virtual network: seeded delays, tie order, duplication and crashed nodes."""

from __future__ import annotations

from random import Random

from consensus.sim.network import Delivery, Network, NetworkConfig


def drain(network: Network) -> list[Delivery]:
    delivered = []
    while len(network):
        delivery = network.pop()
        if delivery is not None:
            delivered.append(delivery)
    return delivered


def test_deliveries_come_in_time_order_within_the_delay_bounds() -> None:
    network = Network(NetworkConfig(delay_ms_min=3, delay_ms_max=9), Random(1))
    for i in range(50):
        network.send(now_ms=100, source=0, destination=1, payload=bytes([i]))
    delivered = drain(network)
    times = [d.at_ms for d in delivered]
    assert times == sorted(times) and all(103 <= t <= 109 for t in times)
    assert len(delivered) == 50


def test_simultaneous_deliveries_keep_send_order() -> None:
    network = Network(NetworkConfig(delay_ms_min=5, delay_ms_max=5), Random(1))
    for i in range(10):
        network.send(now_ms=0, source=0, destination=1, payload=bytes([i]))
    assert [d.payload for d in drain(network)] == [bytes([i]) for i in range(10)]


def test_same_seed_same_schedule() -> None:
    def schedule(seed: int) -> list[int]:
        network = Network(NetworkConfig(delay_ms_max=100, duplicate_rate=0.3), Random(seed))
        for i in range(20):
            network.send(now_ms=i, source=0, destination=1, payload=b"x")
        return [d.at_ms for d in drain(network)]

    assert schedule(7) == schedule(7)
    assert schedule(7) != schedule(8)


def test_duplication_and_loss_knobs() -> None:
    network = Network(NetworkConfig(duplicate_rate=1.0), Random(1))
    network.send(now_ms=0, source=0, destination=1, payload=b"x")
    assert len(drain(network)) == 2 and network.stats.duplicated == 1
    lossy = Network(NetworkConfig(loss_rate=1.0), Random(1))
    lossy.send(now_ms=0, source=0, destination=1, payload=b"x")
    assert drain(lossy) == [] and lossy.stats.dropped == 1


def test_crashed_nodes_neither_send_nor_receive_even_in_flight() -> None:
    network = Network(NetworkConfig(), Random(1))
    network.send(now_ms=0, source=0, destination=2, payload=b"in flight")
    network.crash(2)
    network.send(now_ms=0, source=2, destination=0, payload=b"from crashed")
    network.send(now_ms=0, source=0, destination=1, payload=b"ok")
    assert [d.payload for d in drain(network)] == [b"ok"]
    network.restore(2)
    network.send(now_ms=0, source=2, destination=0, payload=b"back")
    assert [d.payload for d in drain(network)] == [b"back"]
