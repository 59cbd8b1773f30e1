"""The `ingest` command: arguments in, printing out, exit codes.

`main` parses the command line and runs the subcommand; `run` is `ingest
run`, `sources` the commands that edit sources.yaml (`add`, `disable`,
`opml`), `distributed` the `dispatch` and `worker` subcommands, `format` how
results look (tables for people, JSON for programs) and `logs` the log
set-up.  It imports every layer below it; only `ingest.demo` imports the
command line.  Importing this package imports nothing.
"""
