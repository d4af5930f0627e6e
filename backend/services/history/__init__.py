"""History: the change feed, the activity log and the trash."""
