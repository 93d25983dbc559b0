"""frptw's test suite (run with ``trial tests`` or ``tox``)."""
