"""Reports built from one aggregate (`REPORT.json`): JUnit, Markdown, HTML, baseline diff, history, sizing.

Every module reads the aggregate as a plain dict (the `evaluator.report/v1` contract in docs/contract.md), so
the engine and the reports share no Python types, only the file format.
"""
