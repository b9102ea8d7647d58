"""Seeded simulators of AURA's traffic: routing decisions, agent workflows, workflow traces.

Only the CLI, the demo, tests and benchmarks import this package; production code never does
(an import-linter contract in pyproject.toml holds it to that).
"""
