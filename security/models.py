"""Policies, scans and alerts arrive with the security issue."""
