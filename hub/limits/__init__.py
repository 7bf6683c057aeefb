"""Staying up under faults and floods: retryable failures, per-client limits, their refusals."""
