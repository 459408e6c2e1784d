"""The report: tables, figures and its words, from scores and per-epoch curves."""
