"""The long-running processes: the scheduler, the dispatcher and the worker.

`scheduler` is `ingest schedule` (and scheduler.py); `distributed/` is the
procrastinate-backed mode (`ingest dispatch`, `ingest worker`); `health`
judges their heartbeats for `ingest health`.  They keep a `Pipeline` or a
queue going until a signal stops them; the pipeline itself is the runtime's.
Importing this package imports nothing.
"""
