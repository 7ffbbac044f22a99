"""Reports built from one aggregate (`REPORT.json`): JUnit, Markdown, HTML, history, trend, sizing.

Every module reads the typed `evaluator.contract.Report`; only `html`, `plots` and the trend figure need the
'report' extra (plotly, jinja2), and they are imported only when an HTML file is asked for.
"""
