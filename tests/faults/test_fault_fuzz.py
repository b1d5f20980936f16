"""A short fixed-seed run of the protocol fuzzer (tests/faults/fuzz_protocol.py) in the suite."""
from __future__ import annotations

import pytest

from nightgrade.server import protocol as P
from tests.faults import fuzz_protocol

EXECUTIONS = 20_000  # about 1.5 s here; the long run is `python -m tests.faults.fuzz_protocol --seconds N`


def test_mutated_messages_never_raise_anything_but_protocol_errors() -> None:
    report = fuzz_protocol.fuzz(executions=EXECUTIONS, seed=2026)
    assert report.findings == []
    outcomes = report.outcomes
    assert report.executions == EXECUTIONS == sum(outcomes.values())
    # the mutations reach every stage: framing, each request type, buffers, limits
    for label in ("refused BAD_MESSAGE", "refused BAD_BUFFER", "refused TOO_LARGE", "accepted RENDER",
                  "accepted HAVE"):
        assert outcomes[label] > 0, outcomes


def test_the_fuzzer_reports_a_decoder_that_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness can fail: a decoder bug that escapes as another exception is a finding."""
    real = P.parse_request

    def buggy(message, limits):
        if message.type == P.CANCEL:
            raise KeyError("target")
        return real(message, limits)

    monkeypatch.setattr(fuzz_protocol.P, "parse_request", buggy)
    report = fuzz_protocol.fuzz(executions=500, seed=1)
    assert report.findings and report.findings[0].startswith("KeyError: 'target'")
