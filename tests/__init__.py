"""frptw's test suite (run with ``trial tests`` or ``tox``)."""

from hypothesis import HealthCheck, settings

# The suite runs on small shared machines (CI: 2 cores, two trial workers, real frp processes
# beside them): timing-based hypothesis checks would fail for reasons unrelated to the code.
settings.register_profile(
    "frptw", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile("frptw")
