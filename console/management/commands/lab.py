"""The operator's day from the shell: `manage.py lab <action> ...` (see `manage.py lab --help`).

Exit codes: 0 done; 1 bad input or unknown agent/alert (nothing changed); 2 usage (argparse);
3 the agent's state does not allow it now; 4 permission refused. Writes need `--as USERNAME`
(or LAB_SHELL_USER), the actor recorded in the activity log; a user who is not a superuser may
act only on their own agents, as in the API (agents.selectors).
"""

import json
import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from agents.management.commands._agent_lookup import find_agent
from agents.selectors import sees_everything
from agents.services import approval, continuous, scheduling
from alerts import services as alert_services
from alerts.models import AgentAlert
from console.operator import reports
from core.errors import Conflict, PermissionRefused, ServiceError
from graduation import services as graduation

WRITES = {"auto-learn", "continuous", "auto-approve", "thresholds", "ack", "graduate", "demote"}


def _code(exc):
    if isinstance(exc, PermissionRefused):
        return 4
    if isinstance(exc, Conflict):
        return 3
    return 1


class Command(BaseCommand):
    help = (
        "The operator's day. Read: `lab agents [--status S]`, `lab agent REF`, `lab alerts [REF] [--all]`. "
        "Write (with --as USER): `lab auto-learn REF on [--cron C] [--timezone Z] | off`, `lab continuous REF "
        "start|stop`, `lab auto-approve REF on|off`, `lab thresholds REF key=value... [--replace]`, "
        "`lab ack ALERT_ID... | --agent REF --all`, `lab graduate REF [--reason R] [--confirm]` (live needs "
        "--confirm, --reason and the graduation.approve_live_trading permission), `lab demote REF --reason R`. "
        "REF is an agent id or name. Exit codes: 1 bad input, 3 state conflict, 4 permission refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["agents", "agent", "alerts", *sorted(WRITES)])
        parser.add_argument("words", nargs="*", help="the agent (id or name), then the action's words")
        parser.add_argument("--as", dest="as_user", default=os.environ.get("LAB_SHELL_USER", ""),
                            help="the user acting (default: LAB_SHELL_USER); required for writes")
        parser.add_argument("--status", help="agents: only this status")
        parser.add_argument("--instrument", help="agents: only this instrument symbol")
        parser.add_argument("--cron", help="auto-learn on: five-field cron, e.g. '0 6 * * 1-5'")
        parser.add_argument("--timezone", help="auto-learn on: the cron's IANA zone (default UTC)")
        parser.add_argument("--reason", default="", help="continuous stop, graduate, demote: why")
        parser.add_argument("--confirm", action="store_true", help="graduate to live: the explicit confirmation")
        parser.add_argument("--replace", action="store_true",
                            help="thresholds: replace all (default: change only those given)")
        parser.add_argument("--agent", dest="agent_ref", help="ack: the agent whose alerts to acknowledge")
        parser.add_argument("--all", action="store_true", help="alerts: include acknowledged; ack: all open ones")

    def handle(self, *args, action, **opts):
        user = self._user(opts["as_user"], required=action in WRITES)
        words = list(opts["words"])
        try:
            lines = getattr(self, "do_" + action.replace("-", "_"))(user, words, opts)
        except ServiceError as exc:
            listing = "\n".join(f"  {field}: {rule}" for field, rule in exc.errors.items())
            raise CommandError(f"{action} refused, nothing changed:\n{listing}", returncode=_code(exc))
        for line in lines or []:
            self.stdout.write(line)

    # --- lookups --------------------------------------------------------------------------
    def _user(self, username, *, required):
        if not username:
            if required:
                raise CommandError("--as: say who is acting (a username), or set LAB_SHELL_USER")
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"--as: no user {username!r}")
        return user

    def _agent(self, user, words, usage):
        if not words:
            raise CommandError(f"usage: manage.py lab {usage}")
        agent = find_agent(words.pop(0))
        if user is not None and not sees_everything(user) and agent.owner_id != user.pk:
            raise CommandError(f"{user.username} may act only on their own agents", returncode=4)
        return agent

    # --- read -----------------------------------------------------------------------------
    def do_agents(self, user, words, opts):
        return reports.agents_table(user, status=opts["status"], instrument=opts["instrument"])

    def do_agent(self, user, words, opts):
        return reports.agent_page(self._agent(user, words, "agent REF"))

    def do_alerts(self, user, words, opts):
        agent = self._agent(user, words, "alerts [REF]") if words else None
        return reports.alerts_table(user, agent, include_acknowledged=opts["all"])

    # --- autonomy -------------------------------------------------------------------------
    def _switch(self, words, usage, on_off=("on", "off")):
        if not words or words[0] not in on_off:
            raise CommandError(f"usage: manage.py lab {usage}")
        return words.pop(0)

    def do_auto_learn(self, user, words, opts):
        agent = self._agent(user, words, "auto-learn REF on|off [--cron C] [--timezone Z]")
        if self._switch(words, "auto-learn REF on|off") == "on":
            agent = scheduling.auto_learn_enable(agent, actor=user, cron=opts["cron"], timezone=opts["timezone"])
            state = scheduling.schedule_state(agent)
            return [self.style.SUCCESS(f"{agent.name}: auto-learn on, {state['description']}; next iteration "
                                       f"{state['next_scheduled_iteration']:%Y-%m-%d %H:%M} UTC.")]
        scheduling.auto_learn_disable(agent, actor=user)
        return [f"{agent.name}: auto-learn off."]

    def do_continuous(self, user, words, opts):
        agent = self._agent(user, words, "continuous REF start|stop")
        if self._switch(words, "continuous REF start|stop", ("start", "stop")) == "start":
            continuous.continuous_start(agent, actor=user)
        else:
            continuous.continuous_stop(agent, actor=user, reason=opts["reason"] or None)
        agent.refresh_from_db()
        status = continuous.continuous_status(agent)
        return [f"{agent.name}: continuous learning {status['state']}"
                + (f", next iteration from {status['next_eligible_at']:%Y-%m-%d %H:%M} UTC"
                   if status["next_eligible_at"] else "") + "."]

    def do_auto_approve(self, user, words, opts):
        agent = self._agent(user, words, "auto-approve REF on|off")
        on = self._switch(words, "auto-approve REF on|off") == "on"
        agent = (approval.auto_approve_enable if on else approval.auto_approve_disable)(agent, actor=user)
        settings = approval.approval_settings(agent)
        return [f"{agent.name}: auto-approval {'on' if on else 'off'}."
                + (f" Note: {settings['note']}" if on and settings["note"] else "")]

    def do_thresholds(self, user, words, opts):
        agent = self._agent(user, words, "thresholds REF key=value ... [--replace]")
        data, errors = {}, []
        for word in words:
            key, sep, raw = word.partition("=")
            if not sep or not key:
                errors.append(f"{word!r}: expected key=value, e.g. min_sharpe=0.5")
                continue
            try:
                data[key] = json.loads(raw)
            except json.JSONDecodeError:
                data[key] = raw  # the service names the rule (e.g. "must be a number")
        if errors or (not data and not opts["replace"]):
            raise CommandError("\n".join(errors or ["give at least one key=value"]))
        agent = approval.thresholds_set(agent, data, actor=user, partial=not opts["replace"])
        shown = ", ".join(f"{k}={v}" for k, v in approval.effective_thresholds(agent).items())
        return [self.style.SUCCESS(f"{agent.name}: thresholds {shown}.")]

    # --- alerts ---------------------------------------------------------------------------
    def do_ack(self, user, words, opts):
        if opts["agent_ref"]:
            agent = self._agent(user, [opts["agent_ref"]], "ack --agent REF --all")
            if not opts["all"] or words:
                raise CommandError("usage: manage.py lab ack --agent REF --all (or: lab ack ALERT_ID ...)")
            count = alert_services.alerts_acknowledge(AgentAlert.objects.filter(agent=agent, acknowledged=False),
                                                      user=user)
            return [f"{agent.name}: {count} alert(s) acknowledged."]
        if not words:
            raise CommandError("usage: manage.py lab ack ALERT_ID ... | --agent REF --all")
        bad = [w for w in words if not w.isdigit()]
        if bad:
            raise CommandError(f"alert ids are numbers: {', '.join(bad)}")
        alerts = {a.pk: a for a in AgentAlert.objects.select_related("agent").filter(pk__in=[int(w) for w in words])}
        missing = [w for w in words if int(w) not in alerts]
        if missing:
            raise CommandError(f"no alert {', '.join(missing)}; nothing acknowledged")
        for alert in alerts.values():
            owner = alert.agent.owner_id if alert.agent else None
            if not sees_everything(user) and owner != user.pk:
                raise CommandError(f"alert {alert.pk} is not on one of {user.username}'s agents", returncode=4)
        lines = []
        for alert in alerts.values():
            alert_services.alert_acknowledge(alert, user=user)
            lines.append(f"alert {alert.pk} acknowledged: {alert.message[:70]}")
        return lines

    # --- graduation -----------------------------------------------------------------------
    def do_graduate(self, user, words, opts):
        agent = self._agent(user, words, "graduate REF [--reason R] [--confirm]")
        event = graduation.agent_graduate(agent, actor=user, reason=opts["reason"], confirm=opts["confirm"])
        return [self.style.SUCCESS(f"{agent.name}: {event.from_status} -> {event.to_status} ({event.reason}).")]

    def do_demote(self, user, words, opts):
        agent = self._agent(user, words, "demote REF --reason R")
        event = graduation.agent_demote(agent, actor=user, reason=opts["reason"])
        return [self.style.SUCCESS(f"{agent.name}: {event.from_status} -> {event.to_status} ({event.reason}).")]
