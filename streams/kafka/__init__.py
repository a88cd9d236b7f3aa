"""Kafka plumbing shared by the engine, dispatch, the API and the CLI: clients, topics and
their codecs, durable sends, readers, lag, partitioning and the decoding of input records."""
