"""Grading a class: batches, CI and Classroom templates, and checking a course before students do."""
