"""Changes to police records, kept in an outbox and delivered to subscribers as they happen."""
