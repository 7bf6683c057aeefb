"""Sharing delays measured: the pure core, with no database and no GraphQL.

``calendar`` working days and school days for England and Wales; ``targets`` the agreement's
timescales (``auth/targets.toml``); ``stats`` delay figures and breaches; ``batching`` records
shared in bursts; ``charts`` SVG charts; ``report`` Markdown, CSV and HTML renderings.
"""
