"""Observability: structured logs (`logging`), Prometheus metrics (`metrics`) and the one ASGI
middleware that feeds both (`middleware`)."""
