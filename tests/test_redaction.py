"""config.redaction: the one scrubber used by logs, alert deliveries and the Claude refiner."""

from config.redaction import REDACTED, redact, redact_structure


def test_a_secret_the_caller_names_is_replaced_with_the_known_patterns():
    text = "POST refused: secret chan-secret-1 echoed, key sk-ant-api03-ABCDEFGH, Authorization: Bearer abc.def.ghi.jkl"
    out = redact(text, "chan-secret-1")
    for secret in ("chan-secret-1", "sk-ant-api03-ABCDEFGH", "abc.def.ghi.jkl"):
        assert secret not in out
    assert out.startswith("POST refused: secret [redacted] echoed")


def test_empty_and_missing_text_come_back_as_they_are():
    assert redact("") == ""
    assert redact(None) is None
    assert redact("nothing secret here", "", None) == "nothing secret here"


def test_structures_are_redacted_all_the_way_down():
    value = {"a": ["token=abcdef123", {"b": ("sk-ant-xyzw1234",)}], "n": 3}
    assert redact_structure(value) == {"a": [f"token={REDACTED}", {"b": [REDACTED]}], "n": 3}
