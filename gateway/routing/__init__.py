"""Routing: carrier selection and rate limiting."""
