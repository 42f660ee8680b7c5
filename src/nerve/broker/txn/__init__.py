"""Producer ids, idempotent sequences and transactions."""
