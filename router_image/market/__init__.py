"""The lab's market side: the venue (exchange simulator) that fills child orders, the load generator
that sends parent orders to the routers, and the echo baseline for the benchmark."""

__all__: list[str] = []
