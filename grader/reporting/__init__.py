"""Reporting: the text table, JSON, JUnit, Gradescope, Classroom 50, PrairieLearn, Markdown and HTML."""
