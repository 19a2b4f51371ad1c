"""Scale-out on one machine: `bench/pipeline.py` with the topology of
tests/integration/test_scale_out.py. Two API processes, four workers of one process each,
each consuming four of the sixteen partition queues (``LEDGER_WORKER_PARTITIONS``), the
first also the maintenance queue, and four submitting clients (pgbench runs with as many).

    python bench/scaleout.py [options of bench/pipeline.py, which win over these]

Prints what bench/pipeline.py prints: entries/s from acceptance to posting, pgbench's TPC-B
on the same PostgreSQL before and after, their ratio, the lag, memory and CPU per 1,000
entries. On a machine with fewer cores than processes the figure measures contention as
much as scale-out: compare it with `python bench/pipeline.py` on the same machine.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import pipeline  # noqa: E402

TOPOLOGY = ["--api-processes", "2", "--workers", "4", "--concurrency", "1", "--clients", "4"]


def main() -> None:
    # argparse keeps the last of repeated options: the caller's come after these.
    sys.argv[1:1] = TOPOLOGY
    pipeline.main()


if __name__ == "__main__":
    main()
