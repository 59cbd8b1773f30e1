"""ingest: keeps a publisher's news lists current from feeds and pages.

The package is a one-way pipeline (see docs/architecture.md):
Source -> fetch -> Fetched -> parse -> RawEntry -> normalize -> Item ->
dedupe -> store -> SourceReport.  This module only names the version; import
the stages from their own modules.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
