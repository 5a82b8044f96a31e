"""The operator's day from the shell (``manage.py lab ...``): tables of agents, one agent's
page, autonomy switches, alerts and graduation. Every write calls the service the API calls."""
