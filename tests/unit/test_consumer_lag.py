"""Consumer lag: end of the log minus finished work, per assigned partition; revoked ones disappear."""

from __future__ import annotations

from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from sitewright_runtime.instrument import LagGauge


class FakeConsumer:
    """What LagGauge reads from an aiokafka consumer: assignment, highwater and position."""

    def __init__(self, high: dict[TopicPartition, int | None], positions: dict[TopicPartition, int]):
        self.high = high
        self.positions = positions

    def assignment(self) -> set[TopicPartition]:
        return set(self.high)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.high[tp]

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


def lag(group: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value("sitewright_consumer_lag", {"group": group, "partition": str(partition)})


async def test_lag_per_partition_and_revoked_partitions_removed(unique: str):
    group = f"g-{unique}"
    tp0, tp1, tp2 = (TopicPartition("t", p) for p in range(3))
    gauge = LagGauge(group, interval_s=0)
    consumer = FakeConsumer({tp0: 100, tp1: 40, tp2: None}, {tp1: 35})
    # tp0: finished below 90 (work in flight counts as lag); tp1: nothing fetched yet, so the position.
    await gauge.update(consumer, {tp0: 90, tp1: None})  # type: ignore[arg-type]
    assert lag(group, 0) == 10
    assert lag(group, 1) == 5
    assert lag(group, 2) is None  # no fetch answered yet: unknown, not zero
    consumer.high = {tp1: 40}  # a rebalance moved partition 0 elsewhere
    await gauge.update(consumer, {tp1: 40})  # type: ignore[arg-type]
    assert lag(group, 0) is None
    assert lag(group, 1) == 0
    gauge.clear()
    assert lag(group, 1) is None
