"""An iteration under the protocol: what is read from the exam and what is stored.

(That the refiner sees the same thing whatever the sealed window holds is tested in test_learning.py.)"""

import pytest

from agents.evaluation.headline import headline_score
from agents.models import ExamPurpose, ExamReading
from agents.services import approval, iteration_evaluation, learning
from tests.factories import InstrumentFactory, make_agent, random_walk_bars

pytestmark = pytest.mark.django_db


def test_every_iteration_reads_the_exam_once_for_its_headline_and_records_it():
    agent = make_agent(instrument=random_walk_bars(InstrumentFactory(), n=600, seed=2))
    for _ in range(2):
        iteration, _ = learning.iteration_run_now(agent, trigger="manual")
        agent.refresh_from_db()
    readings = ExamReading.objects.filter(agent=agent)
    assert readings.filter(purpose=ExamPurpose.REPORT).count() == 2
    assert not readings.exclude(purpose=ExamPurpose.REPORT).exists()  # auto-approval off: no other look
    latest = readings.first()
    test = iteration.windows["test"]
    assert latest.bars == test["bars"] == 120
    assert latest.window_start.isoformat()[:19] == test["start"]
    assert latest.score == iteration.score == headline_score(agent)


def test_an_iteration_stores_its_evidence_and_labels_in_sample_figures():
    agent = make_agent(instrument=random_walk_bars(InstrumentFactory(), n=600, seed=5))
    iteration, _ = learning.iteration_run_now(agent, trigger="manual")
    assert len(iteration.fold_metrics) == agent.n_folds == 5
    assert iteration.n_trials == 1 + iteration.refinements.count()  # distinct sets: current + candidates
    assert 0.0 <= iteration.dsr <= 1.0 and 0.0 <= iteration.pbo <= 1.0
    assert iteration.selection_score is not None and iteration.score is not None
    assert iteration.windows["test"]["bars"] == 120 and len(iteration.windows["folds"]) == 5
    refinements = list(iteration.refinements.all())
    assert refinements, "the iteration proposed no candidate: the checks below would check nothing"
    for refinement in refinements:
        names = {row["criterion"] for row in refinement.criteria_results}
        assert {"min_dsr", "max_improvement_p", "min_fold_pass"} - names == {"min_fold_pass"}  # a flag: no row
        assert refinement.test_score is None  # the exam was not read for it


def test_auto_approval_reads_the_exam_only_for_candidates_that_passed_the_selection_rules(monkeypatch):
    agent = make_agent(instrument=random_walk_bars(InstrumentFactory(), n=600, seed=6))
    approval.auto_approve_enable(agent, actor=agent.owner)
    # Loose selection rules so that candidates reach the exam on a random walk.
    approval.thresholds_set(agent, {"min_dsr": 0.0, "max_improvement_p": 1.0, "min_sharpe_ratio": -10,
                                    "min_win_rate": 0, "min_signals": 0, "min_total_return": -1,
                                    "require_improvement": False, "min_fold_pass": 1}, actor=agent.owner)
    examined = []
    real = iteration_evaluation.Setting.sealed

    def spy(self, params, target=None):
        examined.append(params)
        return real(self, params, target=target)

    monkeypatch.setattr(iteration_evaluation.Setting, "sealed", spy)
    iteration, _ = learning.iteration_run_now(agent, trigger="manual")
    looked = ExamReading.objects.filter(agent=agent, purpose=ExamPurpose.APPROVAL)
    assert looked.count() == len(examined) - 1 >= 1  # the report reading is the other one
    assert all(r.refinement_id for r in looked)
    read = iteration.refinements.filter(test_score__isnull=False)
    assert read.count() == looked.count()
