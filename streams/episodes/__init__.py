"""Pure episode domain: state, risk tiering, ladder evaluation and the state machine.

Nothing here imports Faust or does I/O; time comes in as an argument so tests inject a clock.
"""
