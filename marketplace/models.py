"""Providers, offerings, access points and orders arrive with the marketplace issue."""
