"""Test helpers that ship with the package: a local OpenAI-compatible stub server for volume and fault tests.

Kept inside the package (not under tests/) so the benchmark in bench/ and a developer's shell can start the
same server with `python -m evaluator.testing.stub_server`.
"""
