"""Notifiers: one small interface, one module per channel backend."""
