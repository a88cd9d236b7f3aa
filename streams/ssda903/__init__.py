"""The statutory SSDA903 Missing table: export (and import) of episode periods."""
