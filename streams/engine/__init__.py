"""The episode engine: its own OS process, a plain aiokafka loop around the pure domain.

docs/engine-runtime.md: why a process, one batch, state, timers, rebalances, failure behaviour.
"""
