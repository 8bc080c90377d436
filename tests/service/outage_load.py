"""Load on replicas while their PostgreSQL server goes away and comes back, and what it did.

Shared by ``tests/service/test_store_outage.py`` (which checks the figures) and
``bench/store_outage.py`` (which prints them). Clients enroll and identify back to back and poll
``/readyz``, spread over the replicas, every answer recorded with its time; ``outage`` takes
the server away (a fast stop or a crash) for some seconds and brings it back; ``figures`` says
what the clients saw in that window, and ``missing`` which acknowledged enrollments the
database does not hold.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

READYZ_BUDGET_S = 1.0  # /readyz answers within this, and says "store down" within it of an outage
ENROLL_BUDGET_S = 5.0  # every enrollment is answered within this
RECOVERY_BUDGET_S = 5.0  # enrollments succeed again within this of the server's return


@dataclass(frozen=True)
class Answer:
    kind: str  # "enroll", "identify" or "readyz"
    url: str  # of the replica
    sent: float  # time.monotonic()
    took: float  # seconds
    status: int  # 0: no answer at all (the connection failed)
    body: dict | None
    retry_after: str | None

    @property
    def store_up(self) -> bool | None:
        """What a /readyz answer said of the store."""
        return (self.body or {}).get("checks", {}).get("store")

    @property
    def well_formed_refusal(self) -> bool:
        """A 503 in the service's error shape, with a reason and ``Retry-After``."""
        body = self.body or {}
        return (
            self.status == 503
            and set(body) == {"error", "detail"}
            and body["error"] in ("store_unavailable", "model_changed")
            and bool(body["detail"])
            and self.retry_after is not None
        )


@dataclass
class Load:
    """``enrollers`` + ``identifiers`` client threads and a /readyz poller per replica."""

    urls: list[str]
    clip: Callable[[int], bytes]  # a distinct clip for each number
    enrollers: int = 3
    identifiers: int = 2
    readyz_every_s: float = 0.2
    answers: list[Answer] = field(default_factory=list)
    acknowledged: list[tuple[str, int]] = field(default_factory=list)  # (subject, sample id)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._enroll, args=(k,)) for k in range(self.enrollers)
        ]
        self._threads += [
            threading.Thread(target=self._identify, args=(k,)) for k in range(self.identifiers)
        ]
        self._threads += [threading.Thread(target=self._poll, args=(u,)) for u in self.urls]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def wait_recovered(self, since: float, timeout: float) -> None:
        """Return once, after ``since``, an enrollment has succeeded and every replica's last
        /readyz says "store up"; or after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            after = [a for a in self.answers if a.sent > since]  # in the order they came
            enrolled = any(a.kind == "enroll" and a.status == 201 for a in after)
            latest = {a.url: a.store_up for a in after if a.kind == "readyz"}
            if enrolled and len(latest) == len(self.urls) and all(latest.values()):
                return
            time.sleep(0.05)

    def _send(self, client: httpx.Client, kind: str, method: str, path: str, **kw) -> Answer:
        sent = time.monotonic()
        try:
            reply = client.request(method, path, **kw)
            status, retry_after = reply.status_code, reply.headers.get("retry-after")
            try:
                body = reply.json()
            except ValueError:
                body = None
        except httpx.TransportError:
            status, body, retry_after = 0, None, None
        url = str(client.base_url)
        answer = Answer(kind, url, sent, time.monotonic() - sent, status, body, retry_after)
        self.answers.append(answer)
        return answer

    def _enroll(self, k: int) -> None:
        with httpx.Client(base_url=self.urls[k % len(self.urls)], timeout=60) as client:
            n = 0
            while not self._stop.is_set():
                subject = f"o{k}-{n}"
                files = {"clip": ("c.npy", self.clip(1000 * (k + 1) + n))}
                path = f"/gallery/subjects/{subject}/samples"
                answer = self._send(client, "enroll", "POST", path, files=files)
                if answer.status == 201:
                    self.acknowledged.append((subject, answer.body["id"]))
                else:
                    time.sleep(0.05)  # a client that was refused waits a little
                n += 1

    def _identify(self, k: int) -> None:
        with httpx.Client(base_url=self.urls[k % len(self.urls)], timeout=60) as client:
            while not self._stop.is_set():
                files = {"clip": ("c.npy", self.clip(k))}
                self._send(client, "identify", "POST", "/identify", files=files)

    def _poll(self, url: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while not self._stop.wait(self.readyz_every_s):
                self._send(client, "readyz", "GET", "/readyz")


@dataclass(frozen=True)
class Window:
    """When the server was being taken away, was gone (``take_away`` returned), was being
    started again, and was back (``bring_back`` returned: it accepts connections), in
    time.monotonic()."""

    how: str
    started: float
    gone: float
    returning: float
    back: float


def outage(server, how: str, seconds: float) -> Window:
    """Take the throwaway PostgreSQL ``server`` away (``stop`` or ``crash``) for ``seconds``."""
    started = time.monotonic()
    server.take_away(how)
    gone = time.monotonic()
    time.sleep(seconds)
    returning = time.monotonic()
    server.bring_back()
    return Window(how, started, gone, returning, time.monotonic())


@dataclass(frozen=True)
class Figures:
    statuses: dict[str, dict[int, int]]  # kind → status → count, in the window and after
    max_enroll_s: float
    max_identify_s: float
    max_readyz_s: float
    readyz_down_after_s: float | None  # from the outage to the first /readyz saying so
    readyz_up_in_outage: int  # /readyz answers in the outage, past its budget, saying up
    readyz_up_after_s: float | None  # from the return to /readyz saying up on every replica
    first_enroll_after_s: float | None  # from the return to the first acknowledged enrollment
    malformed_503: int  # 503 refusals (not /readyz's "not ready") out of shape

    def table_row(self) -> str:
        def s(value):
            return "–" if value is None else f"{value:.2f}"

        codes = ", ".join(
            f"{kind} {dict(sorted(counts.items()))}" for kind, counts in self.statuses.items()
        )
        return (
            f"max enroll {s(self.max_enroll_s)} s | max identify {s(self.max_identify_s)} s | "
            f"max /readyz {s(self.max_readyz_s)} s | /readyz down after "
            f"{s(self.readyz_down_after_s)} s, up after {s(self.readyz_up_after_s)} s | first "
            f"enrollment after {s(self.first_enroll_after_s)} s | {codes}"
        )


def figures(answers: list[Answer], window: Window, until: float, replicas: int) -> Figures:
    """What the clients saw from the outage to ``until`` (a time after the return: the next
    outage's start, or the end of the load)."""
    seen = [a for a in answers if window.gone - 1.0 <= a.sent <= until]
    statuses: dict[str, Counter] = {}
    for answer in seen:
        statuses.setdefault(answer.kind, Counter())[answer.status] += 1

    def longest(kind: str) -> float:
        return max((a.took for a in seen if a.kind == kind), default=0.0)

    readyz = [a for a in seen if a.kind == "readyz"]
    said_down = [a.sent + a.took for a in readyz if a.sent >= window.gone and not a.store_up]
    past_budget = [
        a for a in readyz if window.gone + READYZ_BUDGET_S <= a.sent + a.took <= window.returning
    ]
    up_after = _all_up_since(readyz, window.back, replicas)
    enrolled = [a.sent + a.took for a in seen if a.kind == "enroll" and a.status == 201]
    first = min((t for t in enrolled if t > window.back), default=None)
    return Figures(
        statuses={kind: dict(counts) for kind, counts in statuses.items()},
        max_enroll_s=longest("enroll"),
        max_identify_s=longest("identify"),
        max_readyz_s=longest("readyz"),
        readyz_down_after_s=min(said_down) - window.gone if said_down else None,
        readyz_up_in_outage=sum(bool(a.store_up) for a in past_budget),
        readyz_up_after_s=None if up_after is None else up_after - window.back,
        first_enroll_after_s=None if first is None else first - window.back,
        malformed_503=sum(
            a.kind != "readyz" and a.status == 503 and not a.well_formed_refusal for a in seen
        ),
    )


def _all_up_since(readyz: list[Answer], back: float, replicas: int) -> float | None:
    """When /readyz last turned to "store up" after ``back`` and stayed so: the time of the
    first of the last run of "up" answers, provided the run holds ``replicas`` answers."""
    after = sorted((a for a in readyz if a.sent >= back), key=lambda a: a.sent)
    run: list[Answer] = []
    for answer in after:
        run = [*run, answer] if answer.store_up else []
    return run[0].sent + run[0].took if len(run) >= replicas else None


def missing(acknowledged: list[tuple[str, int]], database_url: str) -> list[tuple[str, int]]:
    """Acknowledged enrollments the database does not hold."""
    import psycopg

    with psycopg.connect(database_url) as connection:
        stored = set(connection.execute("SELECT subject_id, id FROM samples").fetchall())
    return [pair for pair in acknowledged if pair not in stored]


def stored_samples(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as connection:
        return connection.execute("SELECT COUNT(*) FROM samples").fetchone()[0]


def replication_caught_up(urls: list[str], database_url: str, timeout: float = 15.0) -> float:
    """Seconds until every replica's index holds every stored sample; fails after ``timeout``."""
    started = time.monotonic()
    expected = stored_samples(database_url)
    while True:
        counts = [httpx.get(f"{u}/model", timeout=10).json()["gallery_samples"] for u in urls]
        if all(count == expected for count in counts):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"replicas hold {counts} samples; the database {expected}")
        time.sleep(0.05)
