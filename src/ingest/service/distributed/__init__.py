"""Distributed mode: one dispatcher queues polls, many workers run them (docs/scaling.md).

`queue` is what both share (the procrastinate app, the task, its schema),
`dispatcher` is `ingest dispatch` and `worker` is `ingest worker`.
Importing this package imports nothing.
"""
