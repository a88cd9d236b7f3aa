"""HTTP endpoints served by the worker's own (Faust/aiohttp) web server."""
