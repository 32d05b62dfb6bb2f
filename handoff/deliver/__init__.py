"""Delivery: one resumable command from renders to a delivered folder (issue 14)."""
