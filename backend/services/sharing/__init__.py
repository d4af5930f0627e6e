"""Sharing: lists, their members and invitations."""
