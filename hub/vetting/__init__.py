"""Police checks on prospective foster carers, adopters and connected persons (issue 14, item 2).

A council asks a force to check an applicant; the force answers with an outcome category only.
The hub tracks the request and its timeliness (T11), never the disclosure's content.
"""
