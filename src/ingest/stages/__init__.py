"""The pipeline's stages: one poll's work from a `Source` to the `Plan` the store writes.

One job per module, each a step or a rule of a step: `fetch` (the only network
code, with `transport`, `netguard`, `fetch_request`, `envrefs`, `decoding`
and `challenge`), `parse/` (bytes to `RawEntry` values), `normalize` (to
`Item` values, with `urls`, `talks`, `entry_rules` and `controls`),
`filters` and `rules` (what a source keeps), `bounds` (what one document may
cost), `dedupe` (new, changed or the same), and the pure timing rules
`policy` (when a source is polled next) and `politeness` (host-wide
cool-downs and spacing).  Stages import only `ingest.model`, `ingest.errors`
and one another: never the configuration file, the database, the runtime or
the command line.  Importing this package imports nothing.
"""
