"""Statistics, tables, figures and reports from arrays: no training, no tracking."""
