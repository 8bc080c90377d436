"""PostgreSQL going away under two replicas, and coming back: what clients see.

    python bench/store_outage.py [--seconds 5,40] [--how stop,crash] [--model default|toy]

Two real replicas (uvicorn) on a throwaway PostgreSQL server started here, the shipped default
model as the service picks it (or the tests' toy model), loopback only. Three clients enroll
back to back (a refused one waits 50 ms), two identify back to back, and /readyz is polled every
0.2 s on each replica.
For each outage, the server is taken away (``stop``: ``pg_ctl stop -m fast``; ``crash``:
SIGKILL of the postmaster), kept away for the given seconds, and started again on the same port
and data directory (after a crash it first recovers from its WAL); then the load goes on until
the service has recovered (at most 10 s) and for 2 s more. Printed per outage: the status codes
of every answer from the outage to the next, the longest enrollment, identify and /readyz,
when /readyz first said "store down" after the server went and "up" on both replicas after it
came back, when the first enrollment succeeded after the return, the acknowledged enrollments
the database does not hold, and how long the replicas took to hold every stored sample.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import toy_model  # noqa: E402
from tests.postgres_server import ThrowawayPostgres, find_bindir  # noqa: E402
from tests.service.live_server import Server  # noqa: E402
from tests.service.outage_load import (  # noqa: E402
    Load,
    figures,
    missing,
    outage,
    replication_caught_up,
)
from tests.service.test_operations_e2e import aligned_clip  # noqa: E402


def seconds_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", default="5,40", help="outage lengths, comma-separated")
    parser.add_argument("--how", default="stop,crash", help="stop, crash or both")
    parser.add_argument("--model", choices=["default", "toy"], default="default")
    args = parser.parse_args()
    cases = [(how, float(s)) for s in args.seconds.split(",") for how in args.how.split(",")]

    folder = Path(tempfile.mkdtemp(prefix="gaitlab-outage-"))
    bindir = find_bindir()
    if bindir is None:
        sys.exit("no PostgreSQL server binaries on this machine")
    postgres = ThrowawayPostgres(bindir).start()
    url = postgres.new_database()
    model = toy_model(folder / "toy.onnx") if args.model == "toy" else None  # the service's
    replicas = [
        Server(model, folder / f"data-{n}", env={"GAITLAB_DATABASE_URL": url}) for n in range(2)
    ]
    rows = []
    try:
        for replica in replicas:
            replica.start(timeout=120)
        urls = [replica.url for replica in replicas]
        with Load(urls, aligned_clip) as load:
            time.sleep(3.0)
            for how, seconds in cases:
                window = outage(postgres, how, seconds)
                load.wait_recovered(since=window.back, timeout=10.0)
                time.sleep(2.0)
                seen = figures(load.answers, window, time.monotonic(), len(urls))
                rows.append((how, seconds, window, seen))
                print(f"{how} {seconds:g} s: {seen.table_row()}", flush=True)
        lost = missing(load.acknowledged, url)
        caught_up = replication_caught_up(urls, url)
    finally:
        for replica in replicas:
            replica.stop()
        postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)

    print()
    print(
        "| outage | away for (s) | enroll | identify | /readyz | max enroll (s) "
        "| max identify (s) | max /readyz (s) | /readyz said down after (s) "
        "| /readyz up after return (s) | first enrollment after return (s) |"
    )
    print("|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|")
    for how, seconds, window, seen in rows:

        def codes(kind: str, seen=seen) -> str:
            counts = sorted(seen.statuses.get(kind, {}).items())
            return ", ".join(f"{status}: {count}" for status, count in counts)

        print(
            f"| {how} {seconds:g} s | {window.back - window.gone:.1f} | {codes('enroll')} "
            f"| {codes('identify')} | {codes('readyz')} | {seen.max_enroll_s:.2f} "
            f"| {seen.max_identify_s:.2f} | {seen.max_readyz_s:.3f} "
            f"| {seconds_text(seen.readyz_down_after_s)} | {seconds_text(seen.readyz_up_after_s)} "
            f"| {seconds_text(seen.first_enroll_after_s)} |"
        )
    print()
    print(
        f"acknowledged enrollments: {len(load.acknowledged)}, missing from the database: "
        f"{len(lost)}; 503 answers out of the error shape: "
        f"{sum(seen.malformed_503 for *_, seen in rows)}; both replicas held every stored "
        f"sample {caught_up:.2f} s after the load stopped"
    )


if __name__ == "__main__":
    main()
