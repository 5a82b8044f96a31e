import sys

from django.core.management.base import BaseCommand

from agents.management.commands._agent_lookup import find_agent
from agents.models import IterationStatus, IterationTrigger
from agents.services.learning import iteration_run_now


def progress_bar(done, total, width=30):
    filled = int(width * done / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


class Command(BaseCommand):
    help = "Run learning iterations for an agent inline, with a progress bar and a metrics line each."

    def add_arguments(self, parser):
        parser.add_argument("agent", help="Agent id or name.")
        parser.add_argument("--count", type=int, default=1)

    def handle(self, *args, **opts):
        agent = find_agent(opts["agent"])
        count = max(1, opts["count"])
        failed = 0
        for i in range(1, count + 1):
            iteration, _ = iteration_run_now(agent, trigger=IterationTrigger.MANUAL)
            if iteration.status == IterationStatus.SUCCEEDED:
                m = iteration.validation_metrics
                line = (
                    f"#{iteration.number} {agent.objective}={iteration.score:.4f} "
                    f"best candidate={iteration.best_candidate_score or 0:.4f} "
                    f"return={m.get('total_return', 0):.2%} win={m.get('win_rate', 0):.0%} "
                    f"trades={int(m.get('num_trades', 0))} dd={m.get('max_drawdown', 0):.2%} "
                    f"({iteration.duration_ms} ms, {iteration.refiner_used})"
                )
            else:
                failed += 1
                line = f"#{iteration.number} {iteration.status}: {iteration.error}"
            self.stdout.write(f"{progress_bar(i, count)} {line}")
            sys.stdout.flush()
        if failed:
            self.stderr.write(f"{failed} of {count} iterations failed")
