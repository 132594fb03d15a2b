"""No log line carries an API key or a webhook secret, whoever logs it (no I/O)."""

from __future__ import annotations

import logging

from sitewright_runtime.logs import get_logger, redact
from tests.helpers import service_logging

KEY = "sw_Xq3v9QvY0m3o7b5hA1wS8kZrT2eN6cUd"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_redact_replaces_keys_and_secrets_and_leaves_the_rest():
    assert redact(f"Authorization: Bearer {KEY}, sig {SECRET}; sw_ alone") == (
        "Authorization: Bearer sw_…redacted, sig whsec_…redacted; sw_ alone"
    )


def test_structlog_and_library_lines_are_redacted_in_both_formats(capfd, caplog):
    for fmt in ("json", "console"):
        with service_logging("test", fmt):
            get_logger("t").warning("auth_failed", header=f"Bearer {KEY}", note=f"secret {SECRET}")
            logging.getLogger("library").warning("got key %s", KEY)
            try:
                raise ValueError(f"bad key {KEY}")
            except ValueError:
                get_logger("t").exception("boom")
    err = capfd.readouterr().err + caplog.text  # under pytest, library lines go to its log handler
    assert err.count("auth_failed") == 2 and err.count("got key") == 2 and err.count("bad key") >= 2, err
    assert "sw_…redacted" in err
    assert KEY not in err and SECRET not in err, err
