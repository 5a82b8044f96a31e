"""The ensemble's refiner: its one candidate is its members' current versions, frozen anew.

An ensemble does not search a schema: what can change is which version of each member it averages
(agents.strategies.ensemble). The learning service reads the members' current versions
(agents.services.ensembles.refreshed_params) into ``RefinerContext.refreshed``; when one changed
since the ensemble's current version, that set is the iteration's candidate, evaluated and judged by
the gate like any other, so the ensemble changes only on its own evidence. When nothing changed
there is no candidate, and the iteration still succeeds: it evaluated the current version on the
folds and the sealed window (the evidence graduation and demotion read); the reason is recorded as
a rejected proposal. A set this ensemble already evaluated is not proposed again (CandidateCollector).
"""

from .base import CandidateCollector, RefinerContext, RefinerResult

NAME = "ensemble"


class EnsembleRefiner:
    name = NAME

    def propose(self, ctx: RefinerContext) -> RefinerResult:
        params, reason = ctx.refreshed or (None, "the members' current versions were not read")
        collector = CandidateCollector(ctx.template, ctx.current_params, ctx.history, limit=1,
                                       evaluated=ctx.evaluated)
        if params is None:
            collector.reject(ctx.current_params, reason)
        else:
            clean = ctx.template.validate(params)
            why_not = collector.why_not(clean)
            if why_not:
                collector.reject(clean, f"the members' current versions: {why_not}")
            else:
                changed = [m["agent"] for m, old in zip(clean["members"], ctx.current_params["members"], strict=True)
                           if m != old]
                collector.add(clean, f"members' current versions frozen anew (changed: {', '.join(changed)})",
                              NAME)
        return RefinerResult(candidates=collector.candidates, rejected=collector.rejected, refiner=NAME)
