"""Benchmarks: PingPay Scheduler side by side with APScheduler 3.

Not part of the test suite. ``bench/run`` installs what the benchmarks need
in ``bench/.venv``, runs every workload for both systems, prints a table and
writes the figures as JSON under ``bench/results/``.
"""
