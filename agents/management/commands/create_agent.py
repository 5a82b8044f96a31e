import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from agents.services.agents import agent_create
from core.errors import ServiceError


def parse_param(text):
    if "=" not in text:
        raise CommandError(f"--param must look like name=value, got '{text}'")
    name, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name.strip(), value


class Command(BaseCommand):
    help = "Create a learning agent (version 1 = the template defaults plus --param overrides)."

    def add_arguments(self, parser):
        parser.add_argument("--owner", default="operator", help="Username of the owner.")
        parser.add_argument("--name", required=True)
        parser.add_argument("--instrument", required=True, help="Instrument symbol, e.g. SPX.")
        parser.add_argument("--template", required=True, help="Strategy template key.")
        parser.add_argument("--param", action="append", default=[], help="name=value, repeatable.")
        parser.add_argument("--member", action="append", default=None,
                            help="With --template ensemble: a member agent's id, repeatable (at least 2).")
        parser.add_argument("--refiner", choices=["auto", "optuna", "claude"])
        parser.add_argument("--objective")

    def handle(self, *args, **opts):
        owner = get_user_model().objects.filter(username=opts["owner"]).first()
        if owner is None:
            raise CommandError(f"--owner: no user named '{opts['owner']}'")
        extra = {k: opts[k] for k in ("refiner", "objective", "member") if opts[k]}
        if "member" in extra:
            extra["members"] = extra.pop("member")
        try:
            agent = agent_create(
                owner=owner,
                name=opts["name"],
                instrument=opts["instrument"],
                strategy_template=opts["template"],
                params=dict(parse_param(p) for p in opts["param"]),
                **extra,
            )
        except ServiceError as exc:
            raise CommandError("; ".join(f"{k}: {v}" for k, v in exc.errors.items()))
        self.stdout.write(self.style.SUCCESS(f"Created agent {agent.name} ({agent.pk})"))
