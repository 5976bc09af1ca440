"""Comparisons of stored records: statistics, verdicts, gates, A/B rounds, history, snapshots."""
