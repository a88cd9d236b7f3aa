"""The stream-processing side: the Faust app, topics, tables, agents and the pure episode
domain (``streams.episodes``) they call."""
