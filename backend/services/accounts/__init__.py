"""Accounts and their credentials: users, app passwords, stream tickets."""
