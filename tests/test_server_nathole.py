"""frps's nat-hole controller and strategy analysis (frptw.server.nathole, nathole_analysis):
frp's pairing, texts, timings, score tables, and refusal of forged or stray messages."""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from frptw.errors import ProxyError
from frptw.server import nathole_analysis as a
from frptw.server.nathole import NatHoleController
from frptw.wire import messages as m
from frptw.wire.auth import privilege_key
from frptw.wire.nathole import classify
from tests.support import LogCapture

EASY = classify(["1.1.1.1:1", "1.1.1.1:1"], [])
HARD_REGULAR = classify(["5.6.7.8:6000", "5.6.7.8:6001"], [])
HARD_IRREGULAR = classify(["5.6.7.8:6000", "5.6.7.8:7000"], [])


class AnalysisTests(SynchronousTestCase):
    def test_fresh_pair_of_easy_nats_gets_mode_0_index_0(self):
        mode, index, c, v = a.Analyzer(3600).recommend("k", EASY, EASY, 0)
        self.assertEqual((mode, index, c, v), (0, 0, a.Behavior("sender"), a.Behavior("receiver", ttl=7)))

    def test_entries_are_tried_in_turn_until_one_succeeds(self):
        analyzer = a.Analyzer(3600)
        picks = [analyzer.recommend("k", EASY, EASY, 0)[:2] for _ in range(3)]
        self.assertEqual(picks, [(0, 0), (0, 1), (0, 2)])
        analyzer.report_success("k", 0, 2, 0)
        self.assertEqual(analyzer.recommend("k", EASY, EASY, 0)[:2], (0, 2))

    def test_public_network_peer_is_the_receiver(self):
        public = classify(["1.1.1.1:1", "1.1.1.1:1"], ["1.1.1.1"])
        _, _, c, v = a.Analyzer(3600).recommend("k", public, EASY, 0)
        self.assertEqual((c.role, v.role), ("receiver", "sender"))

    def test_mode_order_by_situation(self):
        first = lambda c, v: [e[0] for e in a.initial_scores(c, v)]  # noqa: E731
        self.assertEqual(sorted(set(first(HARD_REGULAR, EASY))), [0, 1, 2])
        self.assertEqual(first(HARD_REGULAR, EASY)[0], 1)
        self.assertEqual(first(HARD_IRREGULAR, EASY)[0], 2)
        self.assertEqual(set(first(HARD_REGULAR, HARD_REGULAR)), {3, 4})
        self.assertEqual(set(first(HARD_REGULAR, HARD_IRREGULAR)), {4})
        self.assertEqual(set(first(HARD_IRREGULAR, HARD_IRREGULAR)), {0, 1, 3})

    def test_roles_swap_so_the_hard_nat_sends_in_mode_1(self):
        _, _, c, v = a.Analyzer(3600).recommend("k", EASY, HARD_REGULAR, 0)
        self.assertEqual((c.role, v.role, c.ports_range_number), ("receiver", "sender", 10))

    def test_clean_drops_tables_older_than_the_reserve(self):
        analyzer = a.Analyzer(3600)
        analyzer.recommend("old", EASY, EASY, 0)
        analyzer.recommend("new", EASY, EASY, 3000)
        self.assertEqual(analyzer.clean(3601), (1, 2))
        self.assertEqual(len(analyzer), 1)

    def test_candidate_ports(self):
        self.assertEqual(a.candidate_ports(["5.6.7.8:6000", "5.6.7.8:6001"], 1, 10), [m.PortsRange(5995, 6007)])
        self.assertEqual(a.candidate_ports(["5.6.7.8:3"], 0, 10), [m.PortsRange(1, 8)])
        self.assertEqual(a.candidate_ports(["5.6.7.8:3"], 0, 0), [])


class Peer:
    """A control connection's view: what the controller sent it."""

    def __init__(self) -> None:
        self.sent: list = []

    def __call__(self, message) -> None:
        self.sent.append(message)


class ControllerTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1795641218)
        self.log = LogCapture(self)
        self.controller = NatHoleController(self.clock, 168)
        self.woken: list = []
        self.controller.listen("u.p", "sk", ["u"], "owner-run", self.woken.append)
        self.visitor, self.owner = Peer(), Peer()

    def visit(self, **kw):
        ts = kw.pop("timestamp", 1795641218)
        message = m.NatHoleVisitor(transaction_id="1t", proxy_name="u.p", protocol="quic", timestamp=ts,
                                   sign_key=privilege_key("sk", ts), mapped_addrs=["1.1.1.1:1", "1.1.1.1:1"],
                                   assisted_addrs=["10.0.0.1:1"])
        for key, value in kw.items():
            setattr(message, key, value)
        self.controller.handle_visitor(message, self.visitor, "u")

    def join(self, sid=None, run_id="owner-run", mapped=("5.6.7.8:6000", "5.6.7.8:6001")):
        message = m.NatHoleClient(transaction_id="3t", proxy_name="u.p", sid=sid or self.woken[-1],
                                  mapped_addrs=list(mapped), assisted_addrs=["10.0.0.2:50000"])
        self.controller.handle_client(message, self.owner, run_id)

    def test_pre_check(self):
        for name, user, error in (("u.p", "u", ""), ("u.x", "u", "xtcp server for [u.x] doesn't exist"),
                                  ("u.p", "v", "xtcp visitor user [v] not allowed for [u.p]")):
            peer = Peer()
            self.controller.handle_visitor(m.NatHoleVisitor(transaction_id="0t", proxy_name=name, pre_check=True),
                                           peer, user)
            self.assertEqual(peer.sent, [m.NatHoleResp(transaction_id="0t", error=error)])
        self.assertEqual(m.encode_body(m.NatHoleResp(transaction_id="0t")), b'{"transaction_id":"0t","detect_behavior":{}}')

    def test_refusals_have_frp_texts_and_open_no_session(self):
        self.visit(proxy_name="u.none")
        self.visit(sign_key="0" * 32)
        self.assertEqual([r.error for r in self.visitor.sent], ["xtcp server for [u.none] doesn't exist",
                                                               "xtcp connection of [u.p] auth failed"])
        self.assertEqual((self.woken, self.controller.sessions), ([], {}))
        self.assertEqual(len(self.log.reported(0)), 2)

    def test_pairing_verified_example(self):
        """wire-protocol.md §9.4 [verified 0.65]: visitor Easy, client Hard with ports 6000/6001."""
        self.visit()
        self.assertEqual(len(self.woken), 1)
        sid = self.woken[0]
        self.join()
        self.assertEqual(len(self.visitor.sent), 1)  # the receiver is answered at once
        body = m.encode_body(self.visitor.sent[0])
        self.assertEqual(body, (
            '{"transaction_id":"1t","sid":"%s","protocol":"quic","candidate_addrs":["5.6.7.8:6000","5.6.7.8:6001"],'
            '"assisted_addrs":["10.0.0.2:50000"],"detect_behavior":{"role":"receiver","mode":1,"ttl":7,'
            '"read_timeout":5000,"candidate_ports":[{"from":5995,"to":6007}]}}' % sid).encode())
        self.assertEqual(self.owner.sent, [])
        self.clock.advance(1)  # the sender's answer is 1 s late
        resp = self.owner.sent[0]
        self.assertEqual((resp.transaction_id, resp.sid, resp.candidate_addrs, resp.assisted_addrs),
                         ("3t", sid, ["1.1.1.1:1"], ["10.0.0.1:1"]))
        self.assertEqual(resp.detect_behavior, m.NatHoleDetectBehavior(role="sender", mode=1, read_timeout=5000))

    def test_report_scores_and_session_ends_after_read_timeout_plus_30s(self):
        self.visit()
        self.join()
        self.clock.advance(1)
        sid = self.woken[0]
        self.controller.handle_report(m.NatHoleReport(sid=sid, success=True))
        self.assertIn(f"sid [{sid}] report make hole success: true, mode 1, index 0", self.log.texts())
        self.clock.advance(34.9)  # 36 s after the NatHoleClient: 1 s sender delay + 5 s + 30 s
        self.assertIn(sid, self.controller.sessions)
        self.clock.advance(0.2)
        self.assertEqual(self.controller.sessions, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_owner_silent_for_10s_drops_the_session(self):
        self.visit()
        self.clock.advance(10)
        self.assertEqual(self.controller.sessions, {})
        self.join()  # too late
        self.assertEqual((self.visitor.sent, self.owner.sent), ([], []))

    def test_forged_sid_and_foreign_client_are_ignored_with_one_line(self):
        self.visit()
        mark = self.log.mark()
        self.join(sid="1795641218deadbeefdeadbeef")
        self.join(run_id="intruder")
        self.assertEqual((self.visitor.sent, self.owner.sent), ([], []))
        self.assertEqual(len(self.log.reported(mark)), 2)
        self.join()  # the real owner still gets through
        self.assertEqual(len(self.visitor.sent), 1)
        self.join()  # a second NatHoleClient for the same session changes nothing
        self.clock.advance(1)
        self.assertEqual((len(self.visitor.sent), len(self.owner.sent)), (1, 1))

    def test_unclassifiable_addresses_answer_both_with_the_error(self):
        self.visit(mapped_addrs=["1.1.1.1:1"])
        self.join()
        self.assertEqual(self.visitor.sent[0].error, "classify visitor nat feature error: not enough addresses")
        self.assertEqual(self.owner.sent[0].error, "classify visitor nat feature error: not enough addresses")

    def test_closed_proxy_is_gone_and_names_are_unique(self):
        self.assertRaises(ProxyError, self.controller.listen, "u.p", "", [], "r", print)
        self.controller.close("u.p")
        self.visit()
        self.assertEqual(self.visitor.sent[0].error, "xtcp server for [u.p] doesn't exist")

    def test_stop_cancels_every_timer(self):
        self.visit()
        self.controller.stop()
        self.assertEqual((self.controller.sessions, self.clock.getDelayedCalls()), ({}, []))
