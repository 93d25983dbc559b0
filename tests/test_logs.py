"""frp's log.level filters frptw's log events before they are built."""

from twisted.internet.defer import fail
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from frptw.errors import ConfigError, FrpError
from frptw.logs import FrpLogger, set_level, unexpected


class LevelTests(SynchronousTestCase):
    def setUp(self):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.addCleanup(set_level, "debug")
        self.log = FrpLogger(namespace="frptw.test")

    def levels(self):
        return [e["log_level"] for e in self.events if e.get("log_namespace", "").startswith("tests.test_logs")
                or e.get("log_namespace") == "frptw.test"]

    def emitAll(self):
        self.log.debug("d")
        self.log.info("i")
        self.log.warn("w")
        self.log.error("e")

    def test_everything_by_default(self):
        self.emitAll()
        self.assertEqual(self.levels(), [LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error])

    def test_warn_drops_debug_and_info(self):
        set_level("warn")
        self.emitAll()
        self.assertEqual(self.levels(), [LogLevel.warn, LogLevel.error])

    def test_trace_is_debug_and_unknown_is_info(self):
        set_level("trace")
        self.emitAll()
        self.assertEqual(len(self.levels()), 4)
        self.events.clear()
        set_level("loud")
        self.emitAll()
        self.assertEqual(self.levels(), [LogLevel.info, LogLevel.warn, LogLevel.error])

    def test_class_attribute_loggers_keep_filtering(self):
        class Thing:
            log = FrpLogger()  # as a descriptor, namespace = this module + class

        set_level("error")
        Thing().log.info("dropped")
        Thing().log.error("kept")
        self.assertEqual(self.levels(), [LogLevel.error])


class UnexpectedTests(SynchronousTestCase):
    """``unexpected``: an errback that ends reported failures and logs bugs with their traceback."""

    def test_expected_failures_end_quietly(self):
        fail(ConfigError("reported already")).addErrback(unexpected(FrpLogger(), "doing {what}", FrpError, what="x"))
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_anything_else_is_logged_with_its_traceback(self):
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        fail(KeyError("a bug")).addErrback(unexpected(FrpLogger(), "doing {what}", FrpError, what="x"))
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        [event] = [e for e in events if "log_failure" in e]
        self.assertEqual((event["log_format"], event["what"]), ("doing {what}", "x"))
