"""The headline score: what the lab reports for an iteration, a version and an agent.

It is always the out-of-sample one: the agent's objective on the sealed test window, which the
search never saw. For the version an iteration evaluated, that is the iteration's ``score``;
for a version just made from a refinement, the sealed reading the gate took of it (the
refinement's ``test_score``), until the next iteration evaluates it. Versions from before the
protocol, never examined, have none (None), and the API says so rather than showing the
in-sample figure in its place.
"""

from django.db.models import OuterRef, Subquery

from agents.models import IterationStatus, LearningIteration, Refinement

_SOURCES = {"iteration": "sealed test window (iteration)", "gate": "sealed test window (approval gate)"}


def version_headline(version):
    """{"score", "source", "iteration"} of ``version``, or score None when it was never examined."""
    if version is None:
        return {"score": None, "source": None, "iteration": None}
    row = (
        LearningIteration.objects.filter(version=version, status=IterationStatus.SUCCEEDED,
                                         selection_score__isnull=False)
        .order_by("-number").values("score", "number").first()
    )
    if row is not None:
        return {"score": row["score"], "source": _SOURCES["iteration"], "iteration": row["number"]}
    score = (
        Refinement.objects.filter(produced_version=version, test_score__isnull=False)
        .values_list("test_score", flat=True).first()
    )
    if score is not None:
        return {"score": score, "source": _SOURCES["gate"], "iteration": None}
    return {"score": None, "source": None, "iteration": None}


def headline_score(agent):
    """The out-of-sample score the lab reports for the agent's current version, or None."""
    return version_headline(agent.current_version)["score"]


def annotate_headline(queryset, version_ref):
    """``queryset`` with the headline of the version at ``version_ref`` annotated (three subqueries,
    so a list costs the same number of queries whatever its length); read with :func:`headline_of`."""
    examined = LearningIteration.objects.filter(
        version=OuterRef(version_ref), status=IterationStatus.SUCCEEDED, selection_score__isnull=False
    ).order_by("-number")
    gated = Refinement.objects.filter(produced_version=OuterRef(version_ref), test_score__isnull=False)
    return queryset.annotate(
        headline_iteration_score=Subquery(examined.values("score")[:1]),
        headline_iteration=Subquery(examined.values("number")[:1]),
        headline_gate_score=Subquery(gated.values("test_score")[:1]),
    )


def headline_of(obj, version):
    """The headline of ``version`` from ``obj``'s annotations when present, else by query."""
    if not hasattr(obj, "headline_iteration"):
        return version_headline(version)
    if obj.headline_iteration is not None:
        return {"score": obj.headline_iteration_score, "source": _SOURCES["iteration"],
                "iteration": obj.headline_iteration}
    if obj.headline_gate_score is not None:
        return {"score": obj.headline_gate_score, "source": _SOURCES["gate"], "iteration": None}
    return {"score": None, "source": None, "iteration": None}
