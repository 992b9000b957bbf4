"""Shared infrastructure every layer may use: configuration, message catalogs, clock, cache, logging.

Nothing here knows the chat transport; `core.cache` reads the data revision through models/.
"""
