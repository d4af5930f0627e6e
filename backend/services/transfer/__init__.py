"""Import and export's statements."""
