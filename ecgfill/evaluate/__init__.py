"""Evaluation of reconstructions: honest signal metrics, clinical features and readable reports.

Light to import: scipy, matplotlib and the models load only when used.

- :func:`~ecgfill.evaluate.run.evaluate_models`: mask references to a model's input leads,
  reconstruct and score (record files or a ``preprocess`` dataset split; several models at once
  for a paired comparison).
- :func:`~ecgfill.evaluate.run.evaluate_folders`: score a folder of reconstructions against a
  folder of references.
- :func:`~ecgfill.evaluate.report.build_report`: the JSON report (keys documented in
  :mod:`ecgfill.evaluate.report`).
"""

from ecgfill.evaluate.run import (
    EvaluateOptions,
    Evaluation,
    RecordScore,
    evaluate_folders,
    evaluate_models,
    lead_roles,
    score_record,
)

__all__ = [
    "EvaluateOptions",
    "Evaluation",
    "RecordScore",
    "evaluate_folders",
    "evaluate_models",
    "lead_roles",
    "score_record",
]
