"""Where parse, normalize and the filters run: a thread of the polling process, or workers.

`pool` is the self-healing process pool and the CPU and memory budgets inside
its workers; `jobs` holds the functions both paths run (`sift_here` for the
small documents read at linear cost, `parse_job` in a worker for the rest)
and starts the pools.  Importing this package imports nothing.
"""
