"""Turning engine alerts into messages: templates, recipients, notifiers, dispatch."""
