"""CalDAV (issue 62): the VTODO mapping (`vtodo`) and recurring completions
(`recurrence_forms`)."""
