"""Grading a class: batches, bundles for the grading platforms, and checking a course before students do."""
