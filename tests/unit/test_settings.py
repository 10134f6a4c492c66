"""Settings errors name the environment variable and the rule; unknown variables
are reported with the closest known one (issue 12, item 4)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from stream_app.cli import cli
from stream_app.settings import Settings, unknown_settings


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"inactivity_days": 20},
            "LOYALTY_PULSE_INACTIVITY_DAYS=20 must exceed LOYALTY_PULSE_CHURN_PERIOD_DAYS=30",
        ),
        (
            {"spike_min_days": 40},
            "LOYALTY_PULSE_SPIKE_MIN_DAYS=40 must not exceed LOYALTY_PULSE_SPIKE_BASELINE_DAYS=28",
        ),
        (
            {"heartbeat_interval": 7},
            "LOYALTY_PULSE_HEARTBEAT_INTERVAL=7.0 must be below LOYALTY_PULSE_SESSION_TIMEOUT=6.0",
        ),
    ],
)
def test_a_rule_across_settings_names_both_variables(values: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


def test_a_misspelt_variable_is_reported_with_the_closest_setting() -> None:
    env = {
        "LOYALTY_PULSE_CHURN_INACTIVITY_DAYS": "30",
        "LOYALTY_PULSE_WINDOW_DAYS": "[7]",
        "LOYALTY_PULSE_BROKER": "kafka:9092",
        "LOYALTY_PULSE_NONSENSE_XYZ": "1",
        "PATH": "/usr/bin",
    }
    assert unknown_settings(env) == [
        "LOYALTY_PULSE_CHURN_INACTIVITY_DAYS is not a setting and is ignored; "
        "did you mean LOYALTY_PULSE_INACTIVITY_DAYS?",
        "LOYALTY_PULSE_NONSENSE_XYZ is not a setting and is ignored; "
        "`loyalty-pulse settings` lists them",
        "LOYALTY_PULSE_WINDOW_DAYS is not a setting and is ignored; "
        "did you mean LOYALTY_PULSE_WINDOWS_DAYS?",
    ]


def test_the_cli_warns_of_unknown_variables_and_stops_on_a_bad_value_naming_it() -> None:
    env = {
        "LOYALTY_PULSE_CHURN_INACTIVITY_DAYS": "30",
        "LOYALTY_PULSE_REPORTING_TZ": "Mars/Olympus",
    }
    result = CliRunner().invoke(cli, ["replay", "-"], env=env)
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "did you mean LOYALTY_PULSE_INACTIVITY_DAYS?" in output
    assert "LOYALTY_PULSE_REPORTING_TZ='Mars/Olympus': unknown time zone" in output
