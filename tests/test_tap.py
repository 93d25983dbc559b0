"""What the twistd tap does to the process, and only it: open-file limit, exit on a fatal login."""

import atexit
import resource

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from frptw.logs import set_level
from frptw.tap import ClientOptions, makeService
from frptw.tap.collector import tuneCollector
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
        # The collector's tuning, asked for when the service was made, then the stop.
        self.assertEqual([hook[0] for hook in self.reactor.whenRunningHooks], [tuneCollector, self.reactor.stop])
