"""Working together, counted: police attendance at strategy discussions and child protection
conferences, joint visit requests and their answers, police protections without a discussion.

The sharing report's other figures are delays (`hub/timeliness`); these are counts of what
happened, per force, per council and per month, made by aggregate SQL that runs unchanged on
SQLite and PostgreSQL (`queries`), drawn (`charts`) and tabulated (`tables`) with the rest.
"""
