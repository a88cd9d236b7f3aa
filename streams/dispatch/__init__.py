"""Dispatch: alerts in, one message per recipient and channel out, each at most once.

``pipeline.py`` runs the stages (plan, dedupe, send, record, fallback) against ports;
``runner.py`` runs records concurrently; ``agent.py`` is the Faust shell. docs/dispatch.md.
"""
