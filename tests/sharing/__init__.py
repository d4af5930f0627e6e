"""Shared lists (issue 39): comments, memberships, roles."""
