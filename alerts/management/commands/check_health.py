"""`manage.py check_health`: the lab's health for cron and scripts; exit 0 healthy, 1 not.

Runs the same check as GET /health, including the stale-scheduler alert (raised once per
outage, recovery noticed once), from a process that depends on neither beat nor the workers:

    * * * * *  cd /srv/lab && .venv/bin/python manage.py check_health --quiet

--json prints the report as JSON; --quiet prints only when unhealthy; --no-alerts only reads.
"""

import json
import sys

from django.core.management.base import BaseCommand

from config.observability.health import format_report, health_report


class Command(BaseCommand):
    help = "Check database, broker, beat and workers; raise the stale-scheduler alert once. Exit 1 when unhealthy."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--quiet", action="store_true", help="print nothing when healthy")
        parser.add_argument("--no-alerts", action="store_true", help="only report; raise no alert")

    def handle(self, *args, **options):
        report = health_report(check_alerts=not options["no_alerts"])
        if not (options["quiet"] and report["healthy"]):
            text = json.dumps(report, indent=2, default=str) if options["json"] else format_report(report)
            self.stdout.write(text)
        if not report["healthy"]:
            sys.exit(1)
