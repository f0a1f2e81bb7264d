"""A client of floodtune's HTTP API (api/openapi.yaml), for workers in Python.

One file, standard library only: copy it beside your training code. A worker
asks for a trial, trains it with the flood level b and the other parameters it
is given (loss J replaced by |J - b| + b), reports the validation value after
every epoch (the answer says whether to prune) and tells the outcome:

    from floodtune_client import Client

    client = Client("https://floodtune.example:8080", ca_file="ca.pem")
    # The token comes from $FLOODTUNE_TOKEN unless given (token="ftk_...").
    while (trial := client.ask("mnist-noise20", worker="gpu-1")) is not None:
        with trial:  # a heartbeat thread keeps the lease; an exception fails the trial
            b = trial.flood_level  # 0 for the baseline (plain training)
            model = build_model(trial.params, seed=trial.seed)
            for epoch in range(1, EPOCHS + 1):
                train_one_epoch(model, flood_level=b, method=trial.flood_method)
                val_acc = evaluate(model, "val")
                if trial.report(epoch, val_acc):  # the pruner says stop
                    trial.prune()
                    break
            else:
                trial.tell(val_acc, attrs={"test_acc": evaluate(model, "test")})
    # ask returned None: the study's budget is spent.
    print(client.study("mnist-noise20")["best"])

A worker that stops (Ctrl-C inside `with trial:`, or trial.release()) gives
its trial back: it is run again, with the same parameters, by the next ask.

Errors: a refusal of the server raises APIError (status, code, message, from
the API's JSON error body); LeaseLost (a subclass) is the 409 `lease_lost`: the
trial was reaped (its lease ran out) or the lease is not this worker's, and
whatever this worker writes about it is refused, so drop the trial and ask
again. A network failure that outlasts the retries raises TransportError (a
ConnectionError).

Retries: calls that the server makes idempotent (every GET, report, heartbeat
and tell, all fenced by the lease token) are retried on connection errors,
lost answers and 503 (and 502/504 of a proxy in front), with exponential
backoff for up to `retry_for` seconds (30 by default). ask, create_study and
delete_study are NOT retried when the request may have reached the server and
its answer was lost (a reset connection, a time-out): a second ask would lease
a second trial and leave the first one's lease orphaned until it runs out (the
server then fails and retries that trial). They are retried only on 503 and
on a refused connection, when nothing was done.

Values: the API is JSON, which has no NaN or infinity. A NaN or infinite value
given to report or tell is sent as null, which the server records as NaN (a
complete trial needs a finite value: tell a diverged trial fail instead).
Bare NaN tokens are never sent. User attributes are strings: other values are
sent as their JSON text (0.5 -> "0.5", [1, 2] -> "[1,2]").
"""

import http.client
import json
import math
import os
import random
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["Client", "Trial", "APIError", "LeaseLost", "TransportError"]

USER_AGENT = "floodtune-python/1"
MAX_REASON = 10000  # TellRequest.reason's maxLength


class APIError(Exception):
    """The server refused a request: its HTTP status and the error body's
    stable code and message (e.g. 404 not_found, 409 finished)."""

    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class LeaseLost(APIError):
    """409 lease_lost: the trial is no longer this worker's."""


class TransportError(ConnectionError):
    """The server could not be reached, or its answer was lost, after the
    retries the call allows."""


def _finite_or_none(value):
    """A number for JSON: None (null, a NaN to the server) unless finite."""
    if value is None:
        return None
    v = float(value)  # numpy and 0-d torch values too
    return v if math.isfinite(v) else None


def _attrs(attrs):
    """User attributes as the API's map of strings."""
    out = {}
    for k, v in (attrs or {}).items():
        if isinstance(v, str):
            out[str(k)] = v
            continue
        try:
            out[str(k)] = json.dumps(v, separators=(",", ":"))
        except (TypeError, ValueError):
            out[str(k)] = str(v)
    return out


def _error(status, raw):
    """The APIError of an error answer (JSON body {"error": {code, message}})."""
    code, message = f"http_{status}", ""
    try:
        err = json.loads(raw.decode("utf-8"))["error"]
        code, message = str(err["code"]), str(err.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        message = raw.decode("utf-8", "replace").strip()[:2000]
    cls = LeaseLost if status == 409 and code == "lease_lost" else APIError
    return cls(status, code, message)


def _refused(err):
    """Whether err says the connection was refused: the request never left."""
    reason = getattr(err, "reason", err)
    return isinstance(reason, ConnectionRefusedError)


class Client:
    """A connection to a floodtune server.

    url: the server's base URL (http:// or https://). token: the bearer token
    (`floodtune token create`), by default $FLOODTUNE_TOKEN. timeout: seconds
    for each HTTP request. ca_file: a PEM file of the CA that signed an
    https server's certificate (by default the system's CAs). retry_for: how
    many seconds a call keeps retrying; backoff: its first wait, doubled
    after each try up to 8 s.
    """

    def __init__(self, url, token=None, timeout=30, ca_file=None, *, retry_for=30.0, backoff=0.25):
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get("FLOODTUNE_TOKEN")
        self.timeout = timeout
        self.retry_for = retry_for
        self.backoff = backoff
        handlers = []
        if urllib.parse.urlsplit(self.url).scheme == "https":
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_file)))
        self._opener = urllib.request.build_opener(*handlers)

    # -- the API ---------------------------------------------------------

    def create_study(self, name, spec):
        """Create a study (admin token). spec: a dict, or a string of YAML
        (the file of `floodtune study create`). Returns the Study."""
        return self._call("POST", "/v1/studies", {"name": name, "spec": spec}, idempotent=False)

    def studies(self):
        """The studies the token may read: a list of Study dicts."""
        return self._call("GET", "/v1/studies")["studies"]

    def study(self, name):
        """One study: its progress (counts, counted), best trial and baseline."""
        return self._call("GET", self._study(name))

    def delete_study(self, name):
        """Delete a study and its trials (admin token)."""
        self._call("DELETE", self._study(name), idempotent=False)

    def trials(self, name, state=None):
        """Iterate over the study's trials (dicts of the API's Trial) by
        number, in state only if given (waiting, running, complete, pruned,
        fail), fetching every page."""
        after = -1
        while True:
            query = {"after": after, "limit": 1000}
            if state is not None:
                query["state"] = state
            page = self._call("GET", self._study(name) + "/trials", query=query)
            yield from page["trials"]
            if page.get("next_after") is None or not page["trials"]:
                return
            after = page["next_after"]

    def trial(self, name, number):
        """One trial of the study, as the API's Trial dict."""
        return self._call("GET", f"{self._study(name)}/trials/{int(number)}")

    def ask(self, name, worker=None, heartbeat=True):
        """Lease a trial of the study (worker token): a Trial, or None when
        the budget is spent and every trial has ended (status exhausted).
        While the budget is spent but trials still run elsewhere (one may
        yet fail and be retried: status wait), it sleeps as the server says
        and asks again.

        Not retried when the answer may have been lost (see the module's
        docstring): a TransportError then means that a trial may have been
        leased; its lease runs out and the server retries it. heartbeat: the
        Trial, used as a context manager, renews its lease in a thread.
        """
        body = {} if worker is None else {"worker": worker}
        ans = self._call("POST", self._study(name) + "/ask", body, idempotent=False)
        while ans.get("status") == "wait":
            time.sleep(min(max(float(ans.get("retry_after") or 1.0), 0.1), 60.0))
            ans = self._call("POST", self._study(name) + "/ask", body, idempotent=False)
        if ans.get("status") == "exhausted":
            return None
        if ans.get("status") != "leased" or "trial" not in ans or "lease" not in ans:
            raise APIError(200, "bad_answer", f"unexpected answer to ask: {ans!r}")
        return Trial(self, name, ans["trial"], ans["lease"], heartbeat=heartbeat)

    # -- HTTP ------------------------------------------------------------

    def _study(self, name):
        return "/v1/studies/" + urllib.parse.quote(name, safe="")

    def _call(self, method, path, body=None, *, query=None, idempotent=True, stop=None):
        """Send a request, retrying as the call allows; the decoded answer."""
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode("utf-8")
        give_up = time.monotonic() + self.retry_for
        delay = self.backoff
        while True:
            try:
                return self._send(method, url, data)
            except APIError as e:
                err, retry = e, e.status == 503 or (idempotent and e.status in (502, 504))
            except urllib.error.URLError as e:
                # Raised before the answer was read: refused, or lost in sending.
                err = TransportError(f"{method} {url}: {e.reason}")
                err.__cause__, retry = e, idempotent or _refused(e)
            except (OSError, http.client.HTTPException) as e:
                # The request may have reached the server; the answer is lost.
                err = TransportError(f"{method} {url}: {type(e).__name__}: {e}")
                err.__cause__, retry = e, idempotent
            wait = delay * (0.75 + random.random() / 2)
            if not retry or time.monotonic() + wait > give_up:
                raise err
            if stop is not None:
                if stop.wait(wait):
                    raise err
            else:
                time.sleep(wait)
            delay = min(delay * 2, 8.0)

    def _send(self, method, url, data):
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            with e:
                raw = e.read()
            raise _error(e.code, raw) from None
        if not raw.strip():
            return None
        return json.loads(raw.decode("utf-8"))


class Trial:
    """A trial leased by Client.ask.

    Attributes: study, number, params (the searched options' values),
    flood_level (the b to train with; 0 is plain training), flood_method
    ("flood": |J - b| + b on the minibatch's mean loss; "iflood": on each
    sample's loss, then the mean), seed (for the model's initialisation and the
    data order), baseline (the study's plain-training trial), attempt (0, or n
    for the n-th retry), config (the built-in trainer's whole configuration,
    or None), lease_token, deadline (when the lease runs out unless renewed,
    an RFC 3339 string on the server's clock), lease_seconds, last_value (the
    last reported value), state (None until told: complete, pruned or fail)
    and lease_lost (True once the server said 409 lease_lost).

    As a context manager (`with trial:`) it renews the lease in a daemon
    thread every lease_seconds/3 (unless asked with heartbeat=False), until
    the trial is told or the server answers 409; an exception inside the
    block tells the trial failed with the exception's text and is re-raised;
    a block left without telling the outcome fails the trial too.
    """

    def __init__(self, client, study, trial, lease, heartbeat=True):
        self._client = client
        self.study = study
        self.number = trial["number"]
        self.params = trial.get("params") or {}
        self.flood_level = trial.get("flood_level", 0.0)
        self.flood_method = trial.get("flood_method", "flood")
        self.seed = trial.get("seed", 0)
        self.baseline = bool(trial.get("baseline", False))
        self.attempt = trial.get("attempt", 0)
        self.config = trial.get("config")
        self.lease_token = lease["token"]
        self.deadline = lease.get("deadline")
        self.lease_seconds = float(lease.get("seconds") or 0)
        self.last_value = None
        self.state = None
        self.lease_lost = False
        self._heartbeat = heartbeat
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def __repr__(self):
        return (f"Trial(study={self.study!r}, number={self.number}, flood_level={self.flood_level!r}, "
                f"flood_method={self.flood_method!r}, params={self.params!r}, seed={self.seed}, "
                f"attempt={self.attempt}, state={self.state!r})")

    def _path(self, op):
        return f"{self._client._study(self.study)}/trials/{self.number}/{op}"

    def _post(self, op, body, stop=None):
        body = dict(body, lease=self.lease_token)
        try:
            return self._client._call("POST", self._path(op), body, stop=stop)
        except LeaseLost:
            self.lease_lost = True
            self._stop.set()
            raise

    def _renewed(self, lease):
        if lease:
            with self._lock:
                self.deadline = lease.get("deadline", self.deadline)
                self.lease_seconds = float(lease.get("seconds") or self.lease_seconds)

    def report(self, step, value):
        """Report the value after step (an epoch, from 0 or 1); renews the
        lease. Returns True when the study's pruner says stop: then tell the
        trial pruned (prune()). A NaN or infinite value is sent as null."""
        v = _finite_or_none(value)
        ans = self._post("report", {"step": int(step), "value": v})
        self.last_value = float("nan") if v is None else v
        self._renewed(ans.get("lease"))
        return bool(ans.get("prune"))

    def heartbeat(self):
        """Renew the lease; returns the new deadline."""
        ans = self._post("heartbeat", {}, stop=self._stop if threading.current_thread() is self._thread else None)
        self._renewed(ans.get("lease"))
        return self.deadline

    def tell(self, value, attrs=None):
        """End the trial complete with its objective value (finite); attrs
        become its user attributes. Returns the API's Trial dict."""
        return self._tell({"state": "complete", "value": _finite_or_none(value)}, attrs)

    def prune(self, attrs=None):
        """End the trial pruned, valued at its last report."""
        body = {"state": "pruned"}
        last = _finite_or_none(self.last_value)
        if last is not None:
            body["value"] = last
        return self._tell(body, attrs)

    def fail(self, reason, attrs=None):
        """End the trial failed, for reason."""
        return self._tell({"state": "fail", "reason": str(reason)[:MAX_REASON]}, attrs)

    def release(self):
        """Give the trial back, to be run again by the next ask (its
        parameters kept): what a worker that stops does with its trial.
        Neither this run nor the retry counts twice toward the budget."""
        self.stop_heartbeat()
        ans = self._post("release", {})
        self.state = "released"
        return ans

    def _tell(self, body, attrs):
        self.stop_heartbeat()
        if attrs:
            body["attrs"] = _attrs(attrs)
        ans = self._post("tell", body)
        self.state = body["state"]
        return ans

    # -- the lease's heartbeat -------------------------------------------

    def start_heartbeat(self):
        """Renew the lease every lease_seconds/3 in a daemon thread, until
        tell, stop_heartbeat or a 409 (`with trial:` calls it)."""
        if self._thread is not None or self.state is not None or self.lease_lost:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"floodtune-heartbeat-{self.number}", daemon=True)
        self._thread.start()

    def stop_heartbeat(self):
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(self._client.timeout + 1)

    def _beat(self):
        while not self._stop.wait(max(self.lease_seconds / 3, 0.05) if self.lease_seconds else 10.0):
            try:
                self.heartbeat()
            except APIError as e:
                if 400 <= e.status < 500:  # 409 (lease lost, finished), 404: renewing cannot help
                    return
            except Exception:  # noqa: BLE001 - the next beat tries again; report/tell will raise
                pass

    @property
    def heartbeat_running(self):
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self):
        if self._heartbeat:
            self.start_heartbeat()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop_heartbeat()
        if self.state is not None or self.lease_lost:
            return False
        if exc_type is not None and issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            # The worker stops (Ctrl-C, SIGTERM turned into SystemExit):
            # the trial is not at fault; give it back to be run again.
            try:
                self.release()
            except Exception:  # noqa: BLE001 - the lease runs out and the trial is retried anyway
                pass
            return False
        if exc is not None:
            reason = f"{exc_type.__name__}: {exc}" if str(exc) else exc_type.__name__
        else:
            reason = "the worker left the trial without telling its outcome"
        try:
            self.fail(reason)
        except Exception:  # noqa: BLE001
            if exc is None:
                raise
            # The block's exception is the one to see.
        return False
