"""Experiments: a campaign of training runs that differ from one base config, and its report.

``spec``: the experiment file's schema; ``runner``: runs one after another, skipping finished ones
and resuming an interrupted one; ``report``: figures, a Markdown table and ``report.json``.
"""
