"""CI's small fuzz run: every parser target of tests/fuzztargets.py gets a modest number of
hypothesis inputs (raw bytes and edited seeds) and must raise only its clean, typed errors.
The large on-demand run is bench/fuzz.py (1,000,000 inputs per target)."""

from hypothesis import HealthCheck, given, settings
from twisted.trial.unittest import SynchronousTestCase

from tests.fuzztargets import HOSTILE, TARGETS, check, inputs, seeds

#: Examples per target: the whole module stays well under 20 s on a loaded 2-core machine.
EXAMPLES = 150


class FuzzSmokeTests(SynchronousTestCase):
    def test_seeds_are_accepted(self):
        """Each target accepts at least one of its seeds (a target that refuses all its seeds
        would fuzz only its first check) and raises only clean errors on the others."""
        refused = []
        for name, target in TARGETS.items():
            accepted = 0
            for seed in seeds(name):
                check(target, seed)
                try:
                    target.run(seed)
                    accepted += 1
                except target.allowed:
                    pass
            if not accepted:
                refused.append(name)
        self.assertEqual(refused, [])

    def test_hostile_inputs(self):
        """Deep nesting and huge integers: clean errors everywhere (regression: the TOML, JSON
        and YAML config readers raised RecursionError and ValueError)."""
        for target in TARGETS.values():
            for data in HOSTILE:
                check(target, data)


def _add(name: str) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(inputs(name))
    def test(self, data: bytes) -> None:
        check(TARGETS[name], data)

    test.__doc__ = f"{name}: only clean errors on fuzzed input."
    setattr(FuzzSmokeTests, f"test_{name}", test)


for _name in TARGETS:
    _add(_name)
