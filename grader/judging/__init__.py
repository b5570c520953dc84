"""Judging: verdicts against autograd, diagnoses, vector-Jacobian checks, exercise 4's runs."""
