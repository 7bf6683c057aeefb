"""Webhooks: a client's changes delivered by signed HTTPS POSTs, for systems without a websocket."""
