import pytest
from agents.models import Refinement
from agents.services import learning
from tests.factories import make_agent

pytestmark = pytest.mark.django_db

def test_probe():
    agent = make_agent(candidates_per_iteration=4)
    for i in range(3):
        learning.iteration_run_now(agent, trigger="manual")
    for r in Refinement.objects.filter(agent=agent).order_by("id"):
        print(r.pk, r.iteration.number, round(r.score, 4), r.proposed_params)
