"""HTTP layer: routers only. See `routes/`."""
