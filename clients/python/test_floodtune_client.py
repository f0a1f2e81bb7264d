"""Tests of floodtune_client against a fake server replaying the shapes of
api/openapi.yaml. Run: python3 -m unittest discover -s clients/python -v"""

import json
import math
import os
import re
import socket
import threading
import time
import unittest
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import floodtune_client as ft

LEASE = {"token": "lease-1", "deadline": "2030-01-02T03:04:05.123456789Z", "seconds": 30}
ASKED = {"number": 3, "params": {"flood_level": 0.05, "lr": 0.1}, "flood_level": 0.05, "flood_method": "flood",
         "seed": 1234567890123, "baseline": False, "attempt": 0,
         "config": {"hidden": [16], "optimizer": "momentum", "lr": 0.1, "momentum": 0, "weight_decay": 0,
                    "batch_size": 32, "epochs": 2, "flood": "flood", "flood_level": 0.05, "seed": 1234567890123}}
DROP = "drop"  # close the connection without an answer: the answer is lost


def error(status, code, message="no"):
    return status, {"error": {"code": code, "message": message}}


def trial_record(number, state="complete", value=0.9):
    return {"number": number, "state": state, "value": value, "params": {}, "intermediate": {}, "seed": 1,
            "baseline": False, "attempt": 0, "user_attrs": {}}


class FakeServer:
    """An HTTP server in a thread that records every request and answers from
    per-route scripts, then from defaults that follow the documented shapes."""

    def __init__(self, port=0):
        self.requests = []
        self.scripts = {}
        self.lease = LEASE
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one(self):
                u = urllib.parse.urlsplit(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                req = {"method": self.command, "path": u.path, "query": urllib.parse.parse_qs(u.query),
                       "headers": dict(self.headers), "raw": raw,
                       "body": json.loads(raw) if raw else None, "time": time.monotonic()}
                with fake.lock:
                    fake.requests.append(req)
                    key = f"{self.command} {u.path}"
                    queue = fake.scripts.get(key)
                    answer = queue.pop(0) if queue else None
                if answer is None:
                    answer = fake.default(req)
                if callable(answer):
                    answer = answer(req)
                if answer == DROP:
                    self.close_connection = True
                    return
                status, body = answer
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = handle_one

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def script(self, method, path, *answers):
        with self.lock:
            self.scripts.setdefault(f"{method} {path}", []).extend(answers)

    def seen(self, method, path):
        with self.lock:
            return [r for r in self.requests if r["method"] == method and r["path"] == path]

    def default(self, req):
        path = req["path"]
        if re.fullmatch(r"/v1/studies/[^/]+/ask", path):
            return 200, {"status": "leased", "trial": ASKED, "lease": self.lease}
        if path.endswith("/report"):
            return 200, {"prune": False, "lease": self.lease}
        if path.endswith("/heartbeat"):
            return 200, {"lease": self.lease}
        if path.endswith("/tell"):
            b = req["body"]
            return 200, dict(trial_record(3, b["state"], b.get("value")), user_attrs=b.get("attrs", {}))
        if path.endswith("/release"):
            return 200, dict(trial_record(3, "fail", None), fail_reason="given back by its worker through the API")
        if path == "/v1/studies":
            return 200, {"studies": []}
        return error(404, "not_found")


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.server = FakeServer()
        self.addCleanup(self.server.close)
        self.client = ft.Client(self.server.url, token="ftk_test", timeout=5, retry_for=3, backoff=0.01)

    def leased(self, **kw):
        trial = self.client.ask("s", **kw)
        self.assertIsNotNone(trial)
        return trial

    def test_auth_header(self):
        self.client.studies()
        self.assertEqual(self.server.requests[-1]["headers"]["Authorization"], "Bearer ftk_test")
        with mock.patch.dict(os.environ, {"FLOODTUNE_TOKEN": "ftk_env"}):
            ft.Client(self.server.url).studies()
        self.assertEqual(self.server.requests[-1]["headers"]["Authorization"], "Bearer ftk_env")

    def test_ask_leased(self):
        trial = self.leased(worker="w-1")
        req = self.server.seen("POST", "/v1/studies/s/ask")[0]
        self.assertEqual(req["body"], {"worker": "w-1"})
        self.assertEqual(req["headers"]["Content-Type"], "application/json")
        self.assertEqual((trial.number, trial.flood_level, trial.flood_method, trial.seed, trial.baseline,
                          trial.attempt), (3, 0.05, "flood", 1234567890123, False, 0))
        self.assertEqual(trial.params, ASKED["params"])
        self.assertEqual(trial.config["hidden"], [16])
        self.assertEqual((trial.lease_token, trial.deadline, trial.lease_seconds),
                         ("lease-1", LEASE["deadline"], 30.0))

    def test_ask_without_worker_sends_empty_object(self):
        self.leased()
        self.assertEqual(self.server.seen("POST", "/v1/studies/s/ask")[0]["body"], {})

    def test_study_name_is_escaped(self):
        self.server.script("GET", "/v1/studies/a%2Fb%20c", (200, {"name": "a/b c"}))
        self.assertEqual(self.client.study("a/b c"), {"name": "a/b c"})

    def test_exhausted_is_none(self):
        self.server.script("POST", "/v1/studies/s/ask", (200, {"status": "exhausted"}))
        self.assertIsNone(self.client.ask("s"))

    def test_report_returns_prune(self):
        trial = self.leased()
        later = dict(LEASE, deadline="2030-01-02T03:05:00Z")
        self.server.script("POST", "/v1/studies/s/trials/3/report",
                           (200, {"prune": False, "lease": LEASE}), (200, {"prune": True, "lease": later}))
        self.assertFalse(trial.report(1, 0.5))
        self.assertTrue(trial.report(2, 0.25))
        self.assertEqual(trial.deadline, later["deadline"])
        bodies = [r["body"] for r in self.server.seen("POST", "/v1/studies/s/trials/3/report")]
        self.assertEqual(bodies, [{"lease": "lease-1", "step": 1, "value": 0.5},
                                  {"lease": "lease-1", "step": 2, "value": 0.25}])

    def test_nan_sent_as_null(self):
        trial = self.leased()
        trial.report(1, float("nan"))
        trial.report(2, float("inf"))
        for r in self.server.seen("POST", "/v1/studies/s/trials/3/report"):
            self.assertNotIn(b"NaN", r["raw"])
            self.assertNotIn(b"Infinity", r["raw"])
            self.assertIsNone(r["body"]["value"])
        self.assertTrue(math.isnan(trial.last_value))
        trial.tell(float("nan"), attrs={"curve": [float("nan"), 1.0]})
        raw = self.server.seen("POST", "/v1/studies/s/trials/3/tell")[0]["raw"]
        body = json.loads(raw)
        self.assertIsNone(body["value"])
        self.assertEqual(body["attrs"], {"curve": "[NaN,1.0]"})  # inside a string only

    def test_lease_lost(self):
        trial = self.leased()
        self.server.script("POST", "/v1/studies/s/trials/3/report", error(409, "lease_lost", "reaped"))
        with self.assertRaises(ft.LeaseLost) as cm:
            trial.report(1, 0.5)
        self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.message), (409, "lease_lost", "reaped"))
        self.assertTrue(trial.lease_lost)
        self.server.script("POST", "/v1/studies/s/trials/3/tell", error(409, "finished"))
        with self.assertRaises(ft.APIError) as cm:
            trial.tell(0.5)
        self.assertNotIsInstance(cm.exception, ft.LeaseLost)
        self.assertEqual(cm.exception.code, "finished")

    def test_api_error_of_other_bodies(self):
        with self.assertRaises(ft.APIError) as cm:
            self.client.study("nope")
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "not_found"))
        self.server.script("GET", "/v1/studies/x", (500, None))
        with self.assertRaises(ft.APIError) as cm:
            self.client.study("x")
        self.assertEqual((cm.exception.status, cm.exception.code), (500, "http_500"))
        self.assertEqual(len(self.server.seen("GET", "/v1/studies/x")), 1)  # 500 is not retried

    def test_503_retried_for_report_and_tell(self):
        trial = self.leased()
        self.server.script("POST", "/v1/studies/s/trials/3/report", error(503, "unavailable"),
                           (200, {"prune": True, "lease": LEASE}))
        self.assertTrue(trial.report(1, 0.5))
        self.assertEqual(len(self.server.seen("POST", "/v1/studies/s/trials/3/report")), 2)
        self.server.script("POST", "/v1/studies/s/trials/3/tell", error(503, "unavailable"))
        got = trial.tell(0.5, attrs={"test_acc": 0.75, "worker_lang": "python"})
        self.assertEqual(got["state"], "complete")
        self.assertEqual(got["user_attrs"], {"test_acc": "0.75", "worker_lang": "python"})
        tells = self.server.seen("POST", "/v1/studies/s/trials/3/tell")
        self.assertEqual(len(tells), 2)
        self.assertEqual(tells[0]["body"], tells[1]["body"])
        self.assertEqual(trial.state, "complete")

    def test_lost_answer_retried_for_tell(self):
        trial = self.leased()
        self.server.script("POST", "/v1/studies/s/trials/3/tell", DROP)
        trial.tell(0.5)
        self.assertEqual(len(self.server.seen("POST", "/v1/studies/s/trials/3/tell")), 2)

    def test_retries_give_up(self):
        trial = self.leased()
        self.server.script("POST", "/v1/studies/s/trials/3/heartbeat", *[error(503, "unavailable")] * 1000)
        client = ft.Client(self.server.url, token="t", retry_for=0.3, backoff=0.02)
        trial._client = client
        t0 = time.monotonic()
        with self.assertRaises(ft.APIError) as cm:
            trial.heartbeat()
        self.assertEqual(cm.exception.status, 503)
        self.assertLess(time.monotonic() - t0, 2)
        self.assertGreater(len(self.server.seen("POST", "/v1/studies/s/trials/3/heartbeat")), 2)

    def test_lost_answer_to_ask_not_retried(self):
        self.server.script("POST", "/v1/studies/s/ask", DROP)
        with self.assertRaises(ft.TransportError):
            self.client.ask("s")
        self.assertEqual(len(self.server.seen("POST", "/v1/studies/s/ask")), 1)

    def test_ask_retried_on_503(self):
        self.server.script("POST", "/v1/studies/s/ask", error(503, "unavailable"))
        self.assertEqual(self.leased().number, 3)
        self.assertEqual(len(self.server.seen("POST", "/v1/studies/s/ask")), 2)

    def test_ask_retried_on_refused_connection(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        started = []
        timer = threading.Timer(0.3, lambda: started.append(FakeServer(port)))
        timer.start()
        self.addCleanup(lambda: [srv.close() for srv in started])
        client = ft.Client(f"http://127.0.0.1:{port}", token="t", retry_for=10, backoff=0.05)
        trial = client.ask("s")
        timer.join()
        self.assertEqual(trial.number, 3)
        self.assertEqual(len(started[0].seen("POST", "/v1/studies/s/ask")), 1)

    def test_context_manager_fails_on_exception(self):
        trial = self.leased(heartbeat=False)
        with self.assertRaises(ValueError):
            with trial:
                trial.report(1, 0.5)
                raise ValueError("loss exploded")
        tells = self.server.seen("POST", "/v1/studies/s/trials/3/tell")
        self.assertEqual(len(tells), 1)
        self.assertEqual(tells[0]["body"], {"lease": "lease-1", "state": "fail", "reason": "ValueError: loss exploded"})
        self.assertEqual(trial.state, "fail")

    def test_context_manager_keeps_exception_when_fail_is_refused(self):
        trial = self.leased(heartbeat=False)
        self.server.script("POST", "/v1/studies/s/trials/3/tell", error(409, "finished"))
        with self.assertRaises(KeyError):
            with trial:
                raise KeyError("x")

    def test_context_manager_after_tell_and_lease_lost(self):
        with self.leased(heartbeat=False) as trial:
            trial.tell(0.9)
        self.assertEqual(len(self.server.seen("POST", "/v1/studies/s/trials/3/tell")), 1)
        self.server.script("POST", "/v1/studies/s/trials/3/report", error(409, "lease_lost"))
        with self.assertRaises(ft.LeaseLost):
            with self.leased(heartbeat=False) as trial:
                trial.report(1, 0.5)
        self.assertEqual(len(self.server.seen("POST", "/v1/studies/s/trials/3/tell")), 1)  # no fail after 409

    def test_context_manager_fails_untold_trial(self):
        with self.leased(heartbeat=False):
            pass
        self.assertEqual(self.server.seen("POST", "/v1/studies/s/trials/3/tell")[0]["body"]["state"], "fail")

    def test_prune_sends_last_report(self):
        trial = self.leased()
        self.server.script("POST", "/v1/studies/s/trials/3/report", (200, {"prune": True, "lease": LEASE}))
        self.assertTrue(trial.report(4, 0.625))
        trial.prune(attrs={"epochs": 4})
        body = self.server.seen("POST", "/v1/studies/s/trials/3/tell")[0]["body"]
        self.assertEqual(body, {"lease": "lease-1", "state": "pruned", "value": 0.625, "attrs": {"epochs": "4"}})

    def test_heartbeat_renews_and_stops_after_tell(self):
        self.server.lease = dict(LEASE, seconds=0.3)
        path = "/v1/studies/s/trials/3/heartbeat"
        with self.leased() as trial:
            self.assertTrue(trial.heartbeat_running)
            deadline = time.monotonic() + 5
            while len(self.server.seen("POST", path)) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertGreaterEqual(len(self.server.seen("POST", path)), 3)
            trial.tell(0.9)
            self.assertFalse(trial.heartbeat_running)
        beats = len(self.server.seen("POST", path))
        time.sleep(0.35)
        self.assertEqual(len(self.server.seen("POST", path)), beats)
        self.assertEqual(self.server.seen("POST", path)[0]["body"], {"lease": "lease-1"})
        tell = self.server.seen("POST", "/v1/studies/s/trials/3/tell")[0]
        self.assertTrue(all(r["time"] <= tell["time"] for r in self.server.seen("POST", path)))

    def test_heartbeat_stops_on_409(self):
        self.server.script("POST", "/v1/studies/s/ask",
                           (200, {"status": "leased", "trial": ASKED, "lease": dict(LEASE, seconds=0.15)}))
        self.server.script("POST", "/v1/studies/s/trials/3/heartbeat", (200, {"lease": dict(LEASE, seconds=0.15)}),
                           error(409, "lease_lost"))
        trial = self.leased()
        trial.start_heartbeat()
        deadline = time.monotonic() + 5
        while trial.heartbeat_running and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertFalse(trial.heartbeat_running)
        self.assertTrue(trial.lease_lost)
        self.assertEqual(len(self.server.seen("POST", "/v1/studies/s/trials/3/heartbeat")), 2)

    def test_trials_pages(self):
        path = "/v1/studies/s/trials"
        self.server.script("GET", path, (200, {"trials": [trial_record(0), trial_record(1)], "next_after": 1}),
                           (200, {"trials": [trial_record(2)]}))
        got = [t["number"] for t in self.client.trials("s", state="complete")]
        self.assertEqual(got, [0, 1, 2])
        queries = [r["query"] for r in self.server.seen("GET", path)]
        self.assertEqual([q["after"] for q in queries], [["-1"], ["1"]])
        self.assertEqual(queries[0]["state"], ["complete"])

    def test_studies_and_trial(self):
        study = {"name": "s", "direction": "maximize", "budget": 10, "seed": 1, "created": "2030-01-01T00:00:00Z",
                 "counts": {"complete": 1}, "counted": 1, "spec": {}}
        self.server.script("GET", "/v1/studies", (200, {"studies": [study]}))
        self.assertEqual(self.client.studies(), [study])
        self.server.script("GET", "/v1/studies/s/trials/2", (200, trial_record(2)))
        self.assertEqual(self.client.trial("s", 2)["number"], 2)

    def test_create_and_delete_study(self):
        self.server.script("POST", "/v1/studies", (201, {"name": "s"}), (201, {"name": "t"}))
        self.client.create_study("s", "search:\n  trials: 10\n")
        self.client.create_study("t", {"search": {"trials": 10}})
        bodies = [r["body"] for r in self.server.seen("POST", "/v1/studies")]
        self.assertEqual(bodies, [{"name": "s", "spec": "search:\n  trials: 10\n"},
                                  {"name": "t", "spec": {"search": {"trials": 10}}}])
        self.server.script("DELETE", "/v1/studies/s", (204, None))
        self.assertIsNone(self.client.delete_study("s"))


class ReleaseTest(unittest.TestCase):
    def setUp(self):
        self.server = FakeServer()
        self.addCleanup(self.server.close)
        self.client = ft.Client(self.server.url, token="ftk_test", timeout=5, retry_for=3, backoff=0.01)

    def test_release_gives_the_trial_back_with_its_lease(self):
        trial = self.client.ask("s", heartbeat=False)
        ans = trial.release()
        self.assertEqual(ans["state"], "fail")
        [req] = self.server.seen("POST", "/v1/studies/s/trials/3/release")
        self.assertEqual(req["body"], {"lease": "lease-1"})
        self.assertEqual(trial.state, "released")

    def test_ctrl_c_inside_the_block_releases_the_trial_not_fails_it(self):
        trial = self.client.ask("s", heartbeat=False)
        with self.assertRaises(KeyboardInterrupt):
            with trial:
                raise KeyboardInterrupt
        self.assertEqual(len(self.server.seen("POST", "/v1/studies/s/trials/3/release")), 1)
        self.assertEqual(self.server.seen("POST", "/v1/studies/s/trials/3/tell"), [])

class WaitTest(unittest.TestCase):
    def setUp(self):
        self.server = FakeServer()
        self.addCleanup(self.server.close)
        self.client = ft.Client(self.server.url, token="ftk_test", timeout=5, retry_for=3, backoff=0.01)

    def test_ask_waits_while_the_budget_is_spent_but_trials_run(self):
        self.server.script("POST", "/v1/studies/s/ask", (200, {"status": "wait", "retry_after": 0.2}),
                           (200, {"status": "wait", "retry_after": 0.2}), (200, {"status": "exhausted"}))
        start = time.monotonic()
        self.assertIsNone(self.client.ask("s"))
        asks = self.server.seen("POST", "/v1/studies/s/ask")
        self.assertEqual(len(asks), 3)
        self.assertGreaterEqual(asks[1]["time"] - asks[0]["time"], 0.2)
        self.assertGreaterEqual(time.monotonic() - start, 0.4)


if __name__ == "__main__":
    unittest.main()
