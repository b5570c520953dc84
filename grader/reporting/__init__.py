"""Reporting: the text table, JSON, JUnit, Gradescope, Markdown, Classroom and HTML."""
