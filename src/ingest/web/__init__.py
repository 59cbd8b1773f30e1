"""What downstream sites read over HTTP: the collection page, the JSON API, feeds, static export.

`ingest serve` runs `app.create_app(store)` under uvicorn (`app.serve`);
`ingest export` writes the same page, JSON and feeds as files
(`export.export_site`).  The modules split by job: `params` validates API
queries and cursors (pure), `feeds` renders Atom 1.0 and JSON Feed 1.1
(pure), `page` renders the Jinja2 templates (pure), `site` asks the Store and
hands finished bodies to both the app and the exporter, `app` adds HTTP:
routes, ETag / Last-Modified and 304s.  Nothing here writes to the database.
See docs/downstream.md.
"""
