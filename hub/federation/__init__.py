"""The hub as one subgraph among agencies' subgraphs, behind a federated gateway.

The gateway's configuration and the composition inputs live in `schema/`; this package holds what
the hub itself does for the federated graph: the audit of what the gateway's clients received
from every subgraph (`audit`), and the check that a caller is the gateway the hub trusts.
"""
