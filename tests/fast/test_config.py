"""The configuration file: strict schema, exact error lines, environment overrides, secrets."""

from __future__ import annotations

import copy
import os
from datetime import date, time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from monitor.config import (
    Config,
    ConfigError,
    ImapSecurity,
    LogFormat,
    LogLevel,
    SmtpSecurity,
    default_config_path,
    load_config,
    masked_url,
    read_secret,
)

REPO = Path(__file__).resolve().parents[2]
DELETE = object()
SECRET = "Hemligt-Lösen-4711"

MINIMAL: dict[str, Any] = {
    "mailbox": {
        "address": "matning@kontroll.example.se",
        "reply_address": "svar+{token}@kontroll.example.se",
    },
    "smtp": {"host": "smtp.example.se"},
    "imap": {"host": "imap.example.se", "username": "matning", "password": SECRET},
}


def write_config(folder: Path, data: object) -> Path:
    (folder / "targets.yaml").write_text("targets: []\n", encoding="utf-8")
    path = folder / "svarstid.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def with_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """MINIMAL with dotted keys set (or deleted with DELETE)."""
    data = copy.deepcopy(MINIMAL)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        section = data
        for part in parents:
            section = section.setdefault(part, {})
        if value is DELETE:
            del section[last]
        else:
            section[last] = value
    return data


def config_errors(folder: Path, data: object, environ: dict[str, str] | None = None) -> list[str]:
    path = write_config(folder, data)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return caught.value.errors


# ---------------------------------------------------------------------------------------------
# A valid file


def test_minimal_config_gets_every_documented_default(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, MINIMAL), {})

    assert config.smtp.port == 587
    assert config.smtp.security is SmtpSecurity.STARTTLS
    assert config.smtp.username is None
    assert config.smtp.timeout == 30.0
    assert config.imap.port == 993
    assert config.imap.security is ImapSecurity.TLS
    assert config.imap.folder == "INBOX"
    assert config.imap.idle_renew_seconds == 1740
    assert config.imap.poll_seconds == 60
    assert config.database.url == "sqlite+aiosqlite:///svarstid.db"
    assert config.database.body_retention_days == 90
    assert (config.http.host, config.http.port) == ("127.0.0.1", 9180)
    assert config.schedule.send_window == (time(9), time(15))
    assert config.schedule.max_probes_per_hour == 20
    assert config.schedule.min_spacing_days == 14
    assert config.schedule.max_probes_per_target_per_30_days == 2
    assert config.schedule.question_repeat_days == 365
    assert config.schedule.jitter_minutes == 90
    assert config.schedule.tick_seconds == 60
    assert config.calendar.country == "SE"
    assert config.calendar.timezone == "Europe/Stockholm"
    assert config.calendar.office_hours == ((((time(8), time(17))),),) * 5 + ((), ())
    assert config.calendars == {}
    assert config.measurement.unanswered_final_after_working_days == 10
    assert config.measurement.low_confidence_below == 5
    assert config.logging.level is LogLevel.INFO
    assert config.logging.format is LogFormat.AUTO
    assert config.targets_file == tmp_path / "targets.yaml"
    assert config.questions_file is None
    assert config.optout_file is None


@pytest.mark.parametrize(
    ("security", "port"),
    [("starttls", 587), ("tls", 465), ("none", 25), ("TLS", 465)],
)
def test_smtp_port_defaults_to_the_port_of_its_security(
    tmp_path: Path, security: str, port: int
) -> None:
    config = load_config(write_config(tmp_path, with_changes({"smtp.security": security})), {})
    assert config.smtp.port == port


@pytest.mark.parametrize(("security", "port"), [("tls", 993), ("none", 143)])
def test_imap_port_defaults_to_the_port_of_its_security(
    tmp_path: Path, security: str, port: int
) -> None:
    config = load_config(write_config(tmp_path, with_changes({"imap.security": security})), {})
    assert config.imap.port == port


def test_explicit_port_wins_over_the_security_default(tmp_path: Path) -> None:
    data = with_changes({"smtp.security": "tls", "smtp.port": 2465})
    assert load_config(write_config(tmp_path, data), {}).smtp.port == 2465


def test_office_hours_mapping_keeps_split_days_and_closes_days_left_out(tmp_path: Path) -> None:
    hours = {"mon": ["13:00-17:00", "08:00-12:00"], "fri": "08:00–15:00", "sat": []}
    config = load_config(write_config(tmp_path, with_changes({"calendar.office_hours": hours})), {})

    assert config.calendar.office_hours[0] == ((time(8), time(12)), (time(13), time(17)))
    assert config.calendar.office_hours[4] == ((time(8), time(15)),)
    assert config.calendar.hours_by_weekday.keys() == {0, 4}


def test_named_calendars_and_closed_dates_are_parsed(tmp_path: Path) -> None:
    calendars = {"norr": {"timezone": "Europe/Stockholm", "closed_dates": ["2026-05-15"]}}
    data = with_changes({"calendars": calendars, "calendar.closed_dates": ["2026-01-05"]})
    config = load_config(write_config(tmp_path, data), {})

    assert config.calendars["norr"].closed_dates == (date(2026, 5, 15),)
    assert config.calendar.closed_dates == (date(2026, 1, 5),)


def test_unquoted_yaml_dates_are_accepted_as_closed_dates(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL)
    path.write_text(path.read_text() + "calendar:\n  closed_dates: [2026-01-05]\n")
    assert load_config(path, {}).calendar.closed_dates == (date(2026, 1, 5),)


def test_country_no_is_norway_not_false(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL)
    path.write_text(path.read_text() + "calendar:\n  country: NO\n")
    assert load_config(path, {}).calendar.country == "NO"


def test_ipv6_listen_address_is_split_into_host_and_port(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, with_changes({"http.listen": "[::1]:9300"})), {})
    assert (config.http.host, config.http.port) == ("::1", 9300)


def test_relative_files_are_found_next_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "optout.txt").write_text("# none\n")
    (tmp_path / "ca.pem").write_text("-\n")
    data = with_changes({"optout_file": "optout.txt", "smtp.ca_file": "ca.pem"})
    config = load_config(write_config(tmp_path, data), {})

    assert config.optout_file == tmp_path / "optout.txt"
    assert config.smtp.ca_file == tmp_path / "ca.pem"


def test_postgresql_url_is_accepted(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://svarstid:pw@db.example.se:5432/svarstid"
    config = load_config(write_config(tmp_path, with_changes({"database.url": url})), {})
    assert config.database.url == url


# ---------------------------------------------------------------------------------------------
# One test per error, with the exact line

HERE = "{here}"  # replaced by the config folder

ERRORS: list[tuple[dict[str, Any], str]] = [
    (
        {"mailbox.address": "kommun.example"},
        "mailbox.address: not an e-mail address (got 'kommun.example')",
    ),
    ({"mailbox.address": DELETE}, "mailbox.address: is required (got nothing)"),
    (
        {"mailbox.reply_address": "svar@kontroll.example.se"},
        "mailbox.reply_address: must contain {token} exactly once (got 'svar@kontroll.example.se')",
    ),
    (
        {"mailbox.reply_address": "{token}+{token}@x.se"},
        "mailbox.reply_address: must contain {token} exactly once (got '{token}+{token}@x.se')",
    ),
    (
        {"mailbox.reply_address": "svar+{token}"},
        "mailbox.reply_address: not an e-mail address once {token} is filled in"
        " (got 'svar+{token}')",
    ),
    ({"smtp.host": DELETE}, "smtp.host: is required (got nothing)"),
    ({"smtp.host": " "}, "smtp.host: must not be empty (got ' ')"),
    ({"smtp.host": 42}, "smtp.host: must be text; put it in quotes (got '42')"),
    (
        {"smtp.security": "ssl"},
        "smtp.security: must be one of starttls, tls, none (got 'ssl')",
    ),
    ({"smtp.port": 0}, "smtp.port: must be a whole number from 1 to 65535 (got '0')"),
    ({"smtp.port": 70000}, "smtp.port: must be a whole number from 1 to 65535 (got '70000')"),
    ({"smtp.port": "smtp"}, "smtp.port: must be a whole number from 1 to 65535 (got 'smtp')"),
    ({"smtp.timeout": 0}, "smtp.timeout: must be a number of seconds > 0 (got '0')"),
    ({"smtp.timeout": "soon"}, "smtp.timeout: must be a number of seconds > 0 (got 'soon')"),
    (
        {"smtp.username": "matning"},
        "smtp.password: is required (set password, password_file or SVARSTID_SMTP__PASSWORD)"
        " (got nothing)",
    ),
    (
        {"smtp.password": SECRET},
        "smtp.username: is required when a password is given (got nothing)",
    ),
    (
        {"imap.password_file": "pw.txt"},
        "imap.password_file: set password or password_file, not both (got '***')",
    ),
    ({"imap.password": 4711}, "imap.password: must be text; put it in quotes (got '***')"),
    (
        {"imap.password": DELETE},
        "imap.password: is required (set password, password_file or SVARSTID_IMAP__PASSWORD)"
        " (got nothing)",
    ),
    ({"smtp.ca_file": "ca.pem"}, "smtp.ca_file: no such file {here}/ca.pem (got 'ca.pem')"),
    (
        {"imap.security": "starttls"},
        "imap.security: must be one of tls, none (got 'starttls')",
    ),
    ({"imap.username": DELETE}, "imap.username: is required (got nothing)"),
    ({"imap.folder": ""}, "imap.folder: must not be empty (got '')"),
    (
        {"imap.idle_renew_seconds": 1800},
        "imap.idle_renew_seconds: must be a whole number from 1 to 1799; RFC 2177 lets servers"
        " end an IDLE after 30 minutes (got '1800')",
    ),
    ({"imap.poll_seconds": 0}, "imap.poll_seconds: must be a whole number ≥ 1 (got '0')"),
    ({"imap.timeout": -1}, "imap.timeout: must be a number of seconds > 0 (got '-1')"),
    (
        {"database.url": "mysql://svarstid:" + SECRET + "@db/svarstid"},
        "database.url: must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
        " (got 'mysql://svarstid:***@db/svarstid')",
    ),
    ({"database.url": "svarstid.db"}, "database.url: not a database URL (got 'svarstid.db')"),
    (
        {"database.body_retention_days": -1},
        "database.body_retention_days: must be a whole number ≥ 0 (got '-1')",
    ),
    (
        {"http.listen": "localhost"},
        "http.listen: must be host:port, e.g. 127.0.0.1:9180 or [::1]:9180 (got 'localhost')",
    ),
    (
        {"http.listen": "127.0.0.1:99999"},
        "http.listen: must be host:port, e.g. 127.0.0.1:9180 or [::1]:9180 (got '127.0.0.1:99999')",
    ),
    ({"schedule.tick_seconds": 0}, "schedule.tick_seconds: must be a whole number ≥ 1 (got '0')"),
    (
        {"schedule.send_window": "15:00-09:00"},
        "schedule.send_window: must be a time range HH:MM-HH:MM with the start before the end"
        " (got '15:00-09:00')",
    ),
    (
        {"schedule.send_window": "9-15"},
        "schedule.send_window: must be a time range HH:MM-HH:MM with the start before the end"
        " (got '9-15')",
    ),
    (
        {"schedule.min_spacing_days": -1},
        "schedule.min_spacing_days: must be a whole number ≥ 0 (got '-1')",
    ),
    (
        {"schedule.max_probes_per_target_per_30_days": 0},
        "schedule.max_probes_per_target_per_30_days: must be a whole number ≥ 1 (got '0')",
    ),
    (
        {"schedule.max_probes_per_hour": 0},
        "schedule.max_probes_per_hour: must be a whole number ≥ 1 (got '0')",
    ),
    (
        {"schedule.question_repeat_days": 1.5},
        "schedule.question_repeat_days: must be a whole number ≥ 0 (got '1.5')",
    ),
    (
        {"schedule.jitter_minutes": True},
        "schedule.jitter_minutes: must be a whole number ≥ 0 (got 'true')",
    ),
    (
        {"calendar.country": "XX"},
        "calendar.country: not a country code known to the holidays package, e.g. SE (got 'XX')",
    ),
    (
        {"calendar.subdivision": "AB"},
        "calendar.subdivision: not a subdivision of SE (known: none) (got 'AB')",
    ),
    (
        {"calendar.timezone": "Europe/Goteborg"},
        "calendar.timezone: not a known time zone, e.g. Europe/Stockholm (got 'Europe/Goteborg')",
    ),
    (
        {"calendar.office_hours": "8-17"},
        "calendar.office_hours: must be a time range HH:MM-HH:MM with the start before the end"
        " (got '8-17')",
    ),
    (
        {"calendar.office_hours": {"tues": "08:00-17:00"}},
        "calendar.office_hours.tues: not a weekday; use mon, tue, wed, thu, fri, sat, sun"
        " (got 'tues')",
    ),
    (
        {"calendar.office_hours": {"mon": ["08:00-12:00", "11:00-17:00"]}},
        "calendar.office_hours.mon: time ranges overlap (got '[08:00-12:00, 11:00-17:00]')",
    ),
    (
        {"calendar.office_hours": {"mon": ["08:00-12:00", "25:00-26:00"]}},
        "calendar.office_hours.mon[1]: must be a time range HH:MM-HH:MM with the start before"
        " the end (got '25:00-26:00')",
    ),
    (
        {"calendar.office_hours": 8},
        "calendar.office_hours: must be one time range or a mapping mon..sun to time ranges"
        " (got '8')",
    ),
    (
        {"calendar.closed_dates": ["2026-05-01", "2026-13-01"]},
        "calendar.closed_dates[1]: must be a date YYYY-MM-DD (got '2026-13-01')",
    ),
    (
        {"calendar.closed_dates": "2026-05-01"},
        "calendar.closed_dates: must be a list (got '2026-05-01')",
    ),
    (
        {"calendars": {"norr": {"timezone": "Mars/Olympus"}}},
        "calendars.norr.timezone: not a known time zone, e.g. Europe/Stockholm"
        " (got 'Mars/Olympus')",
    ),
    (
        {"measurement.unanswered_final_after_working_days": 0},
        "measurement.unanswered_final_after_working_days: must be a whole number ≥ 1 (got '0')",
    ),
    (
        {"measurement.low_confidence_below": -5},
        "measurement.low_confidence_below: must be a whole number ≥ 0 (got '-5')",
    ),
    (
        {"logging.level": "verbose"},
        "logging.level: must be one of debug, info, warning, error (got 'verbose')",
    ),
    ({"logging.format": "xml"}, "logging.format: must be one of auto, json, text (got 'xml')"),
    (
        {"targets_file": "kommuner.yaml"},
        "targets_file: no such file {here}/kommuner.yaml (got 'kommuner.yaml')",
    ),
    (
        {"questions_file": "fragor.yaml"},
        "questions_file: no such file {here}/fragor.yaml (got 'fragor.yaml')",
    ),
    (
        {"optout_file": "optout.txt"},
        "optout_file: no such file {here}/optout.txt (got 'optout.txt')",
    ),
    ({"smtp": "smtp.example.se"}, "smtp: must be a mapping of keys (got 'smtp.example.se')"),
]


@pytest.mark.parametrize(("changes", "expected"), ERRORS, ids=[e for _, e in ERRORS])
def test_each_config_error_is_one_exact_line(
    tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    (tmp_path / "pw.txt").write_text(SECRET)
    assert config_errors(tmp_path, with_changes(changes)) == [expected.replace(HERE, str(tmp_path))]


UNKNOWN_KEYS: list[tuple[dict[str, Any], str]] = [
    ({"smpt": {"host": "x"}}, "smpt: unknown key, did you mean 'smtp'? (got '{host}')"),
    ({"mailbox.from": "x"}, "mailbox.from: unknown key (got 'x')"),
    ({"smtp.hots": "x"}, "smtp.hots: unknown key, did you mean 'host'? (got 'x')"),
    ({"imap.pasword": SECRET}, "imap.pasword: unknown key, did you mean 'password'? (got '***')"),
    ({"database.uri": "x"}, "database.uri: unknown key, did you mean 'url'? (got 'x')"),
    ({"http.port": 1}, "http.port: unknown key (got '1')"),
    (
        {"schedule.max_per_hour": 1},
        "schedule.max_per_hour: unknown key, did you mean 'max_probes_per_hour'? (got '1')",
    ),
    ({"calendar.holidays": "SE"}, "calendar.holidays: unknown key (got 'SE')"),
    (
        {"calendars": {"norr": {"offce_hours": "08:00-16:00"}}},
        "calendars.norr.offce_hours: unknown key, did you mean 'office_hours'? (got '08:00-16:00')",
    ),
    ({"measurement.window": 3}, "measurement.window: unknown key (got '3')"),
    ({"logging.colour": True}, "logging.colour: unknown key (got 'true')"),
]


@pytest.mark.parametrize(("changes", "expected"), UNKNOWN_KEYS, ids=[e for _, e in UNKNOWN_KEYS])
def test_unknown_keys_are_rejected_at_every_level(
    tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    assert config_errors(tmp_path, with_changes(changes)) == [expected]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = with_changes(
        {"smtp.security": "ssl", "schedule.max_probes_per_hour": 0, "logging.level": "loud"}
    )
    assert len(config_errors(tmp_path, data)) == 3


def test_empty_file_names_every_required_section(tmp_path: Path) -> None:
    path = tmp_path / "svarstid.yaml"
    path.write_text("")
    (tmp_path / "targets.yaml").write_text("targets: []\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.errors == [
        "mailbox: is required (got nothing)",
        "smtp: is required (got nothing)",
        "imap: is required (got nothing)",
    ]


def test_a_list_at_the_top_level_is_an_error(tmp_path: Path) -> None:
    assert config_errors(tmp_path, ["smtp"]) == [
        "(top level): must be a mapping of keys (got '[smtp]')"
    ]


def test_missing_config_file_error_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing, {})
    assert caught.value.errors == [f"file: not found (got '{missing}')"]
    assert caught.value.file == missing


def test_yaml_syntax_error_gives_line_and_column_without_the_text(tmp_path: Path) -> None:
    path = tmp_path / "svarstid.yaml"
    path.write_text(f"imap:\n  password: {SECRET}\n  host: [imap.example.se\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    (error,) = caught.value.errors
    assert error.startswith("line 4, column 1: not valid YAML, ")
    assert SECRET not in error


def test_a_key_given_twice_is_an_error_with_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "svarstid.yaml"
    path.write_text("smtp:\n  host: a.example.se\n  port: 25\n  host: b.example.se\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.errors == ["smtp.host: given twice, on lines 2 and 4 (got 'b.example.se')"]


def test_str_of_config_error_is_its_lines(tmp_path: Path) -> None:
    error = ConfigError(["a: x (got '1')", "b: y (got '2')"], tmp_path)
    assert str(error) == "a: x (got '1')\nb: y (got '2')"


# ---------------------------------------------------------------------------------------------
# Environment overrides


def test_environment_overrides_file_values_with_coercion(tmp_path: Path) -> None:
    environ = {
        "SVARSTID_SMTP__HOST": "relay.example.se",
        "SVARSTID_SMTP__PORT": "2525",
        "SVARSTID_SCHEDULE__MAX_PROBES_PER_HOUR": "5",
        "SVARSTID_DATABASE__URL": "postgresql+asyncpg://u@db/svarstid",
        "SVARSTID_LOGGING__LEVEL": "DEBUG",
        "SVARSTID_CALENDAR__CLOSED_DATES": "[2026-01-05, 2026-05-15]",
    }
    config = load_config(write_config(tmp_path, MINIMAL), environ)

    assert config.smtp.host == "relay.example.se"
    assert config.smtp.port == 2525
    assert config.schedule.max_probes_per_hour == 5
    assert config.database.url == "postgresql+asyncpg://u@db/svarstid"
    assert config.logging.level is LogLevel.DEBUG
    assert config.calendar.closed_dates == (date(2026, 1, 5), date(2026, 5, 15))


def test_environment_names_are_case_insensitive(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, MINIMAL), {"svarstid_Smtp__Host": "x.example.se"})
    assert config.smtp.host == "x.example.se"


def test_environment_sets_top_level_keys_and_named_calendars(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text("targets: []\n")
    data = with_changes({"calendars": {"Norr": {"timezone": "Europe/Stockholm"}}})
    environ = {
        "SVARSTID_TARGETS_FILE": "other.yaml",
        "SVARSTID_CALENDARS__NORR__OFFICE_HOURS": "07:00-16:00",
    }
    config = load_config(write_config(tmp_path, data), environ)

    assert config.targets_file == tmp_path / "other.yaml"
    assert config.calendars["Norr"].office_hours[0] == ((time(7), time(16)),)


def test_environment_password_replaces_a_password_file_from_the_file(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text("from-file\n")
    data = with_changes({"imap.password": DELETE, "imap.password_file": "pw.txt"})
    config = load_config(write_config(tmp_path, data), {"SVARSTID_IMAP__PASSWORD": "from-env"})

    assert config.imap.password_file is None
    assert read_secret(config.imap.password, config.imap.password_file) == "from-env"


def test_empty_environment_value_means_null(tmp_path: Path) -> None:
    data = with_changes({"smtp.username": "matning", "smtp.password": SECRET})
    environ = {"SVARSTID_SMTP__USERNAME": "", "SVARSTID_SMTP__PASSWORD": ""}
    config = load_config(write_config(tmp_path, data), environ)
    assert (config.smtp.username, config.smtp.password) == (None, None)


def test_svarstid_config_variable_is_not_an_override(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, MINIMAL), {"SVARSTID_CONFIG": "/elsewhere.yaml"})
    assert config.smtp.host == "smtp.example.se"


def test_bad_environment_value_is_reported_at_its_key_path(tmp_path: Path) -> None:
    errors = config_errors(tmp_path, MINIMAL, {"SVARSTID_SCHEDULE__MAX_PROBES_PER_HOUR": "0"})
    assert errors == ["schedule.max_probes_per_hour: must be a whole number ≥ 1 (got '0')"]


UNKNOWN_VARIABLES = [
    (
        {"SVARSTID_SMTP__HOTS": "x"},
        "SVARSTID_SMTP__HOTS: no such setting smtp.hots, did you mean 'host'? (got 'x')",
    ),
    (
        {"SVARSTID_SMPT__HOST": "x"},
        "SVARSTID_SMPT__HOST: no such setting smpt, did you mean 'smtp'? (got 'x')",
    ),
    ({"SVARSTID_DEBUG": "1"}, "SVARSTID_DEBUG: no such setting debug (got '1')"),
    (
        {"SVARSTID_SMTP__HOST__NAME": "x"},
        "SVARSTID_SMTP__HOST__NAME: no such setting smtp.host.name (got 'x')",
    ),
    (
        {"SVARSTID_IMAP__PASWORD": SECRET},
        "SVARSTID_IMAP__PASWORD: no such setting imap.pasword, did you mean 'password'?"
        " (got '***')",
    ),
]


@pytest.mark.parametrize(("environ", "expected"), UNKNOWN_VARIABLES)
def test_unknown_environment_variable_is_an_error_naming_it(
    tmp_path: Path, environ: dict[str, str], expected: str
) -> None:
    assert config_errors(tmp_path, MINIMAL, environ) == [expected]


# ---------------------------------------------------------------------------------------------
# Secrets


SECRET_MISTAKES: list[tuple[dict[str, Any], dict[str, str]]] = [
    ({"imap.password": 4711}, {}),
    ({"imap.password_file": "pw.txt"}, {}),
    ({"smtp.password": SECRET}, {}),
    ({"smtp.passwort": SECRET}, {}),
    ({"imap": [{"password": SECRET}]}, {}),
    ({"database.url": f"postgres://u:{SECRET}@db/x"}, {}),
    ({"database.url": f"postgresql+asyncpg://u:{SECRET}@db:port/x"}, {}),
    ({}, {"SVARSTID_SMTP__PASSWORT": SECRET}),
    ({}, {"SVARSTID_DATABASE__URL": f"mysql://u:{SECRET}@db/x"}),
]


@pytest.mark.parametrize(("changes", "environ"), SECRET_MISTAKES)
def test_secrets_never_appear_in_error_messages(
    tmp_path: Path, changes: dict[str, Any], environ: dict[str, str]
) -> None:
    (tmp_path / "pw.txt").write_text(SECRET)
    errors = config_errors(tmp_path, with_changes(changes), environ)
    assert errors
    assert all(SECRET not in error for error in errors)


def test_secrets_never_appear_in_the_config_repr(tmp_path: Path) -> None:
    data = with_changes({"smtp.username": "u", "smtp.password": SECRET})
    config = load_config(write_config(tmp_path, data), {})

    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    assert isinstance(config.smtp.password, SecretStr)
    assert read_secret(config.smtp.password, None) == SECRET


def test_read_secret_from_file_strips_the_trailing_newline(tmp_path: Path) -> None:
    file = tmp_path / "pw.txt"
    file.write_text(SECRET + "\n")
    assert read_secret(None, file) == SECRET


def test_read_secret_without_either_is_none() -> None:
    assert read_secret(None, None) is None


# ---------------------------------------------------------------------------------------------
# Where the config is


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "/srv/svarstid.yaml"),
        ({"SVARSTID_CONFIG": "/etc/svarstid/svarstid.yaml"}, "/etc/svarstid/svarstid.yaml"),
        ({"SVARSTID_CONFIG": "conf/s.yaml"}, "/srv/conf/s.yaml"),
    ],
)
def test_default_config_path_prefers_svarstid_config(
    environ: dict[str, str], expected: str
) -> None:
    assert default_config_path(environ, Path("/srv")) == Path(expected)


# ---------------------------------------------------------------------------------------------
# Shipped files


def test_shipped_example_config_loads_with_its_example_files() -> None:
    config = load_config(REPO / "config" / "svarstid.example.yaml", {})

    assert isinstance(config, Config)
    assert config.targets_file == REPO / "config" / "targets.example.yaml"
    assert config.optout_file == REPO / "config" / "optout.example.txt"


def test_shipped_example_config_names_every_key_of_the_schema() -> None:
    raw = yaml.safe_load((REPO / "config" / "svarstid.example.yaml").read_text())
    for name, field in Config.model_fields.items():
        assert name in raw
        section = field.annotation
        if isinstance(section, type) and hasattr(section, "model_fields"):
            assert set(raw[name]) == set(section.model_fields), name


# A password with the characters that break naive URL masking: '/', a raw '@', '?', '#'.
PIECES = ("Se", "cr3t", "PW", "Hem", "lig")
AWKWARD_PASSWORDS = ["Se/cr3tPW", "Se@cr3t@PW", "Se/cr3t@PW", "Se?cr3t#PW", "Hem:lig/Se"]


FAILING_URL_TEMPLATES = [
    "postgresql+asyncpg://u:{password}@db.example.se:port/x",  # a bad port
    "postgresql://u:{password}@db.example.se/x",  # a driver we do not use
    "mysql://u:{password}@db.example.se/x",
    "u:{password}@db.example.se",  # no scheme at all
]
BAD_URLS = [
    *(t.format(password=p) for t in FAILING_URL_TEMPLATES for p in AWKWARD_PASSWORDS),
    # A raw '@' in the password of an otherwise valid URL.
    *(f"postgresql+asyncpg://u:{p}@db.example.se/x" for p in AWKWARD_PASSWORDS if "@" in p),
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_database_url_error_never_shows_any_part_of_the_password(
    tmp_path: Path, url: str
) -> None:
    errors = config_errors(tmp_path, MINIMAL, {"SVARSTID_DATABASE__URL": url})
    assert errors and all(error.startswith("database.url: ") for error in errors)
    assert not any(piece in error for error in errors for piece in PIECES), errors


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+asyncpg://u:Se/cr3tPW@h/db", "postgresql+asyncpg://u:***@h/db"),
        ("mysql://u:p@ss@h:5432/db", "mysql://u:***@h:5432/db"),
        ("postgresql+asyncpg://:pw@h/db", "postgresql+asyncpg://:***@h/db"),
        (
            "postgresql+asyncpg://h/db?password=pw&ssl=on",
            "postgresql+asyncpg://h/db?password=***&ssl=on",
        ),
        ("u:pw@h", "u:***@h"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite+aiosqlite:////srv/a:b@c/x.db", "sqlite+aiosqlite:////srv/a:b@c/x.db"),
    ],
)
def test_masked_url_hides_the_password_in_every_url_form(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_a_raw_at_sign_in_a_database_password_is_an_error_saying_how_to_write_it(
    tmp_path: Path,
) -> None:
    url = "postgresql+asyncpg://u:p@ss@db.example.se/x"
    assert config_errors(tmp_path, with_changes({"database.url": url})) == [
        "database.url: write an '@' in the password as %40 (got 'postgresql+asyncpg://u:***@db.example.se/x')"
    ]


@pytest.mark.parametrize(
    ("changes", "environ", "key"),
    [
        ({"database.api_token": SECRET}, {}, "database.api_token"),
        ({"smtp.private_key": SECRET}, {}, "smtp.private_key"),
        ({"imap.auth_secrt": SECRET}, {}, "imap.auth_secrt"),
        ({"webhook_token": SECRET}, {}, "webhook_token"),
        ({}, {"SVARSTID_DATABASE__API_TOKEN": SECRET}, "SVARSTID_DATABASE__API_TOKEN"),
        ({}, {"SVARSTID_SMTP__APIKEY": SECRET}, "SVARSTID_SMTP__APIKEY"),
    ],
)
def test_an_unknown_key_that_looks_like_a_secret_is_named_but_its_value_not_shown(
    tmp_path: Path, changes: dict[str, Any], environ: dict[str, str], key: str
) -> None:
    errors = config_errors(tmp_path, with_changes(changes), environ)
    assert len(errors) == 1 and errors[0].startswith(f"{key}: ")
    assert errors[0].endswith("(got '***')")


def test_an_unknown_key_with_a_plain_name_still_shows_its_value(tmp_path: Path) -> None:
    assert config_errors(tmp_path, with_changes({"smtp.hots": "smtp.example.se"})) == [
        "smtp.hots: unknown key, did you mean 'host'? (got 'smtp.example.se')"
    ]


@pytest.mark.parametrize("section", ["smtp", "imap", "database"])
def test_a_password_file_that_is_not_utf8_is_a_config_error_naming_the_key(
    tmp_path: Path, section: str
) -> None:
    (tmp_path / "pw.txt").write_bytes(b"\xff\xfe hemligt \xe9")
    changes = _password_file_changes(section)
    errors = config_errors(tmp_path, with_changes(changes))
    assert errors == [
        f"{section}.password_file: {tmp_path / 'pw.txt'} is not UTF-8 text (got '***')"
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
@pytest.mark.parametrize("section", ["smtp", "imap", "database"])
def test_an_unreadable_password_file_is_a_config_error_naming_the_key(
    tmp_path: Path, section: str
) -> None:
    file = tmp_path / "pw.txt"
    file.write_text(SECRET)
    file.chmod(0)
    errors = config_errors(tmp_path, with_changes(_password_file_changes(section)))
    assert errors == [f"{section}.password_file: cannot read {file}: Permission denied (got '***')"]


def _password_file_changes(section: str) -> dict[str, Any]:
    if section == "database":
        return {
            "database.url": "postgresql+asyncpg://u@db.example.se/x",
            "database.password_file": "pw.txt",
        }
    if section == "imap":
        return {"imap.password": DELETE, "imap.password_file": "pw.txt"}
    return {"smtp.username": "u", "smtp.password_file": "pw.txt"}
