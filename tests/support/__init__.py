"""What tests, the chaos suite and the benchmarks share (plain helpers; fixtures stay in conftest).

- `stack`: the embedded stack (Tansu broker, PostgreSQL, SMTP sink) under one folder, a
  database per user of it, and settings pointed at it.
- `workers`: real `seatflow worker` subprocesses configured through their environment.
- `kafka`: reading topics without a consumer group; partition arithmetic.
"""
