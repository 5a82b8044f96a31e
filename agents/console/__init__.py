"""The operator console: what the admin shows beyond Django's own pages.

- ``dashboard``: the numbers of the admin index (each links to its filtered list).
- ``panels``: everything the agent page shows (charts, autonomy, refinements, versions, alerts,
  graduation), read through the services.
- ``controls``: the small POST views behind the agent page's buttons; each calls one service
  and redirects back with its success or its error message.
- ``charts`` / ``curves``: server-side SVG charts.

The console is the top layer of the lab: it lives in ``agents`` beside the admin it extends,
but it reads and drives ``alerts`` and ``graduation`` too (through their services). Nothing in
``agents`` outside ``agents.admin`` and this package imports it, so the rule "agents never
imports alerts or graduation" holds for the domain code.
"""
