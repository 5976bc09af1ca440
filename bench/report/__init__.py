"""The HTML comparison report: aggregate records (pandas), draw inline SVG charts, render with jinja2.

Reads stored records only; never imports torch.
"""

from bench.report.html import render, report_from_dir, write_report

__all__ = ["render", "report_from_dir", "write_report"]
