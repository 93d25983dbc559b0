"""What the twistd tap does to the process, and only it: open-file limit, exit on a fatal login."""

import atexit
import resource

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from frptw.logs import set_level
from frptw.tap import ClientOptions, makeService
from frptw.tap.collector import MemorySweep, mallocTrim, manageMemory
from tests.fakes import CAPTURE_TIME, PLAIN, refuse


class FrpcTapTests(SynchronousTestCase):
    def makeService(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(f'serverAddr = "127.0.0.1"\nserverPort = 7000\n{PLAIN}')
        options = ClientOptions()
        options.parseOptions(["--config", path])
        self.reactor = MemoryReactorClock()
        self.reactor.advance(CAPTURE_TIME)
        self.addCleanup(set_level, "debug")  # the tap sets the process-wide level; tests expect all
        service = makeService(options, self.reactor)
        self.addCleanup(service.stopService)
        return service

    def test_raises_open_file_limit(self) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        lowered = min(soft, 256)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        self.makeService()
        # An unlimited hard limit cannot be the soft one for descriptors: then fs.nr_open is.
        if hard == resource.RLIM_INFINITY:
            with open("/proc/sys/fs/nr_open") as f:
                expected = (int(f.read()), hard)
        else:
            expected = (hard, hard)
        self.assertEqual(resource.getrlimit(resource.RLIMIT_NOFILE), expected)

    def test_first_failed_login_exits_the_process(self) -> None:
        """login_fail_exit (frp's default): the tap's onFatal stops the reactor and arranges
        exit status 1, as frpc exits."""
        registered = []
        self.patch(atexit, "register", registered.append)
        service = self.makeService()
        service.startService()
        refuse(self.reactor)
        self.assertFalse(service.getServiceNamed("frpc").running)
        self.assertEqual(len(registered), 1)
        # The memory policy (collector tuning and sweeps), asked for when the service was made, then the stop.
        self.assertEqual([hook[0] for hook in self.reactor.whenRunningHooks], [manageMemory, self.reactor.stop])


class FakeCollector:
    """The part of ``gc`` a MemorySweep uses: young collections are counted by the test."""

    def __init__(self) -> None:
        self.young = 0
        self.full = 0

    def get_stats(self):
        return [{"collections": self.young}, {"collections": 0}, {"collections": self.full}]

    def collect(self) -> int:
        self.full += 1
        return 0


class MemorySweepTests(SynchronousTestCase):
    """The tap's periodic full collection and heap trim: only after allocation went on."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.collector = FakeCollector()
        self.trims = []
        self.sweep = MemorySweep(self.clock, 30.0, self.collector, self.trims.append)
        self.sweep.start()
        self.addCleanup(self.sweep.stop)

    def test_an_idle_process_is_not_swept(self) -> None:
        self.clock.advance(300)
        self.assertEqual((self.collector.full, self.trims), (0, []))

    def test_sweeps_and_trims_once_per_interval_after_allocation(self) -> None:
        self.collector.young += 3
        self.clock.advance(29)
        self.assertEqual(self.collector.full, 0)  # not before the interval
        self.clock.advance(1)
        self.assertEqual((self.collector.full, self.trims), (1, [0]))
        self.clock.advance(60)  # nothing allocated since: no more sweeps
        self.assertEqual(self.collector.full, 1)
        self.collector.young += 1
        self.clock.advance(30)
        self.assertEqual((self.collector.full, self.trims), (2, [0, 0]))

    def test_without_a_trim_it_still_collects(self) -> None:
        sweep = MemorySweep(self.clock, 30.0, self.collector, None)
        self.collector.young += 1
        self.assertTrue(sweep.sweep())
        self.assertFalse(sweep.sweep())
        self.assertEqual(self.collector.full, 1)

    def test_trim_is_glibc_malloc_trim_here(self) -> None:
        """This machine's C library is glibc: the trim exists and returns 0 or 1."""
        trim = mallocTrim()
        self.assertIsNotNone(trim)
        self.assertIn(trim(0), (0, 1))
