"""Import and export (specs/import-export.md): a file another app wrote read into a `Plan`
(`sources/`), a plan written through the services every door uses (`importer`), and the
caller's own data streamed out as a zip (`exporter`)."""
