"""The Faust worker's wiring: the types every wiring module takes (``wiring.py``), and the
Faust-specific helpers (a table write's event context, timers over a table)."""
