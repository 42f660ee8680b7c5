"""Partition logs on disk: segments, offset and time indexes, retention, compaction, recovery."""
