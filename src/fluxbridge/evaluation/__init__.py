"""Evaluation: site skill by time scale, regional comparison, figures and the report."""
