"""The stages put to work: one pass over the sources, under leases, with its helpers.

`pipeline` chains the stages for one source or many on one event loop;
`parsing/` is where parse, normalize and filters run (a thread, or a
budgeted process pool);
`recorder` is the pipeline's one database thread, and `store_process` the
database in a forked child for `ingest run`; `leases` names lease owners and
their time to live; `metrics` counts what the long-running processes do;
`trial` is `ingest try` (one source, nothing stored) and `refilter` applies
changed keep/drop rules to stored stories.  It imports the stages, the
configuration and the store, never the services or the command line, and it
prints nothing.  Importing this package imports nothing.
"""
