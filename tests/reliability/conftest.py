"""Fixtures of the fault tests: an empty broker around a test, and a scripted LLM server (the tools
they use live in helpers.py)."""

import pytest

from tests.reliability.helpers import API_KEY, ScriptedLLM, clear_broker


@pytest.fixture
def fresh_broker():
    clear_broker()
    yield
    clear_broker()


@pytest.fixture
def scripted_llm(settings):
    """Start a ScriptedLLM and point this process (and workers started after) at it."""
    started = []

    def start(*steps):
        llm = ScriptedLLM(*steps).__enter__()
        started.append(llm)
        settings.ANTHROPIC_API_KEY = API_KEY
        settings.ANTHROPIC_BASE_URL = llm.url
        return llm

    yield start
    for llm in started:
        llm.__exit__(None, None, None)
