"""End-to-end pipeline benchmark: a real `seatflow worker` on the embedded stack.

Four measurements, all in one run on one embedded stack (Tansu broker, pgserver PostgreSQL,
SMTP sink) on this machine:

1. Throughput. A realistic mix of booking changes (creates 60 %, realigning edits 15 %,
   notes-only edits 15 %, cancellations 10 %) over many generated restaurants is produced
   first; then a worker starts, and the clock runs until every change is fully processed:
   `processed_events` holds all N event ids, no booking waits for the allocator
   (`alloc_state = 'queued'`), and the outbox is empty (every status event, notification,
   ops event and allocation request it held is on its topic). Rate = N / (done - first
   transaction). Afterwards the status topic is read back and the last status event of
   every booking is checked against PostgreSQL. SUPPRESS_EMAILS=true: SMTP delivery is
   not the pipeline (the email decisions are still made, recorded and published).
2. Baseline. Right after each throughput run, a raw aiokafka relay (one consumer assigned
   to every partition, one producer, acks=all) copies the very same N change records to
   another topic on the same broker. Our rate is reported as a share of the relay's.
3. Latency. A fresh worker at a fixed offered load (creates at each of `latency_rates`
   per second, 1000/s being the target's) for `latency_seconds`: the time from the change
   record's timestamp (set when it was sent) to the `booking.confirmed` record's timestamp
   on the status topic (set when the worker sent it), read by a consumer assigned to all
   of its partitions. Bookings still unconfirmed `latency_drain_s` after the load count as
   slower than every measured one (a percentile landing on them is reported as null).
4. Profile. py-spy samples the worker during the last throughput run (non-blocking, so
   the run still counts); the collapsed stacks, a summary of the costs in seatflow's own
   code and a flame chart go to bench/results/.

Restaurants are loaded once through a worker (the contract path) into a template
database; every run then starts from a copy of it (`CREATE DATABASE ... TEMPLATE`) with its
own topic prefix and consumer group.

Run: ``.venv/bin/python -m bench.pipeline [--quick]`` (or ``make bench`` for all benchmarks).
Writes bench/results/pipeline.json, pipeline_{throughput,latency,flame}.png and
pipeline_profile.txt (py-spy collapsed stacks); --quick writes to bench/results/quick/.

Where things are (the stack, worker processes and topic reading come from tests.support):

    config.py      BenchConfig (full and --quick sizes), targets, result paths, worker settings
    workload.py    generated restaurants and their template database, the change mix, producing
    cpu.py         CpuMeter: CPU seconds of worker, PostgreSQL and broker
    throughput.py  1. throughput run, final-state check, 2. the raw aiokafka relay baseline
    latency.py     3. latency runs: offered load, StatusWatcher, percentiles
    profiler.py    4. py-spy start/stop, collapsed stacks and their summary
    charts.py      pipeline_throughput.png, pipeline_latency.png, pipeline_flame.png
    run.py         run_benchmark (the whole run, pipeline.json), print_summary, main
"""

from bench.pipeline.config import FULL, QUICK, QUICK_RESULTS_DIR, RESULTS_DIR, BenchConfig
from bench.pipeline.run import main, print_summary, run_benchmark

__all__ = [
    "FULL",
    "QUICK",
    "QUICK_RESULTS_DIR",
    "RESULTS_DIR",
    "BenchConfig",
    "main",
    "print_summary",
    "run_benchmark",
]
