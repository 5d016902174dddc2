"""Evaluation: reports (:mod:`vosc.evaluation.report`) and benchmark submissions
(:mod:`vosc.evaluation.submission`)."""
