"""The operator console: what the admin shows beyond Django's own pages.

- ``dashboard``: the numbers of the admin index (each links to its filtered list).
- ``panels``: everything the agent page shows (charts, autonomy, refinements, versions, alerts,
  graduation), read through the services.
- ``controls``: the small POST views behind the agent page's buttons; each calls one service
  and redirects back with its success or its error message.
- ``charts`` / ``curves``: server-side SVG charts.

The console is the top layer of the lab, an app of its own (console -> graduation -> alerts ->
agents): it reads and drives every app through its services, and nothing imports it, so the rule
"agents never imports alerts or graduation" holds.
"""
