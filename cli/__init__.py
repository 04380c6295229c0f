"""The ``greenapi-migrate`` command line."""
