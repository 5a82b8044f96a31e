"""The headline score: what the lab reports for an iteration, a version and an agent.

It is always the out-of-sample one: the agent's objective on the sealed test window, which the
search never saw. For the version an iteration evaluated, that is the iteration's ``score``;
for a version just made from a refinement, the sealed reading the gate took of it (the
refinement's ``test_score``), until the next iteration evaluates it. Versions from before the
protocol, never examined, have none (None), and the API says so rather than showing the
in-sample figure in its place.
"""

from agents.models import IterationStatus, LearningIteration, Refinement


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
        return {"score": row["score"], "source": "sealed test window (iteration)", "iteration": row["number"]}
    score = (
        Refinement.objects.filter(produced_version=version, test_score__isnull=False)
        .values_list("test_score", flat=True).first()
    )
    if score is not None:
        return {"score": score, "source": "sealed test window (approval gate)", "iteration": None}
    return {"score": None, "source": None, "iteration": None}


def headline_score(agent):
    """The out-of-sample score the lab reports for the agent's current version, or None."""
    return version_headline(agent.current_version)["score"]
