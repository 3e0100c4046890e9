"""Tests of hailuo_async.simulator, against the running server with raw aiohttp requests."""
