"""The parse workers: where parse, normalize and the filters run, off the event loop.

`pool` is the self-healing process pool and the CPU and memory budgets inside
its workers; `jobs` holds the function those workers run and starts the
pools.  Importing this package imports nothing.
"""
