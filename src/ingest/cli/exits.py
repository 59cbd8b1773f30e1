"""The exit codes of the `ingest` command: 0 all went well, 1 something failed, 2 misuse.

One job: name the three codes every subcommand returns, so that the modules
of the command line share them without importing one another.
"""

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE"]

EXIT_OK = 0  # everything asked for was done
EXIT_FAILED = 1  # a source failed, a check found problems, the database refused...
EXIT_USAGE = 2  # bad arguments, or a sources file that does not validate
