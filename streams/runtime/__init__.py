"""What both processes of a worker run on: the clock, the GC policy, the due-time index and
the state of a durable timer."""
