"""Task API: a multi-user task (todo) REST API."""
