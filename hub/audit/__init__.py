"""The audit log: who saw what, when and why, hash-chained and append-only (DPA 2018 s.62)."""
