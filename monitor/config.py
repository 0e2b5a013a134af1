"""svarstid's configuration: a strict YAML file, overridable from the environment.

Every problem is reported as one line ``key.path: what is wrong (got 'value')`` so that an
operator can fix all of them in one go. Unknown keys are rejected at every level: a typo
must never silently fall back to a default. Secrets (passwords, the password in a database
URL) never appear in an error message or a repr.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, time
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "SVARSTID_"
ENV_CONFIG = "SVARSTID_CONFIG"
DEFAULT_CONFIG_NAME = "svarstid.yaml"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# RFC 2177: servers may drop an IDLE after 30 minutes, so it is renewed before 29.
IDLE_LIMIT_SECONDS = 1800
DATABASE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")

Interval = tuple[time, time]
WeekHours = tuple[tuple[Interval, ...], ...]  # 7 entries, Monday = 0

_SECRET_KEY = re.compile(r"pass|pas+w|psw|pwd|secret|credential", re.IGNORECASE)
# An unknown key is a typo or a key put at the wrong level: its value is not echoed when its
# name merely looks like it could hold a secret (a wider net than for known keys).
_SECRET_LOOKING_KEY = re.compile(
    r"pass|pas+w|psw|pwd|secret|credential|token|key|auth|private|cert|cookie|session|salt|sign",
    re.IGNORECASE,
)
_SHOW_MAX = 80
_NOTHING = object()
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """One or more configuration problems, each ``key.path: what is wrong (got 'value')``."""

    def __init__(self, errors: Sequence[str], file: Path | None = None) -> None:
        self.errors: list[str] = list(errors)
        self.file = file  # which file the key paths refer to, when known
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


# ---------------------------------------------------------------------------------------------
# Rendering values and paths


def show(value: object, *, secret: bool = False) -> str:
    """A bad value as it appears in an error: quoted, short, secrets masked."""
    if value is _NOTHING:
        return "nothing"
    if secret or isinstance(value, SecretStr):
        return "'***'"
    return f"'{_plain(value)}'"


def _plain(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        # Keys only: the values may hold a secret that was put at the wrong level.
        return "{" + ", ".join(str(key) for key in value) + "}"
    if isinstance(value, list | tuple):
        if any(isinstance(item, Mapping | list | tuple) for item in value):
            return f"a list of {len(value)}"
        return "[" + ", ".join(_plain(item) for item in value) + "]"
    # One error, one line: line breaks in a value are shown escaped.
    text = str(value).replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 1] + "…"


def format_path(loc: Sequence[str | int]) -> str:
    """``('targets', 3, 'address')`` -> ``targets[3].address``."""
    path = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def is_secret_path(loc: Sequence[str | int]) -> bool:
    return any(isinstance(part, str) and _SECRET_KEY.search(part) for part in loc)


def looks_secret(loc: Sequence[str | int]) -> bool:
    """Whether a path that names no known key might still hold a secret (``api_token``)."""
    return any(isinstance(part, str) and _SECRET_LOOKING_KEY.search(part) for part in loc)


def line(
    loc: Sequence[str | int], problem: str, got: object = _NOTHING, *, secret: bool = False
) -> str:
    masked = secret or is_secret_path(loc)
    return f"{format_path(loc)}: {problem} (got {show(got, secret=masked)})"


def fail(problem: str, got: object = _NOTHING, at: tuple[str | int, ...] = ()) -> Exception:
    """The error a validator raises; ``at`` extends the field's path, ``got`` its value."""
    context: dict[str, Any] = {"problem": problem, "at": at}
    if got is not _NOTHING:
        context["got"] = got
    return PydanticCustomError("svarstid", "{problem}", context)


# ---------------------------------------------------------------------------------------------
# Translating pydantic's errors

_BUILTIN_PROBLEMS = {
    "missing": "is required",
    "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys",
    "dict_type": "must be a mapping of keys",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "string_type": "must be text",
}


def translate(error: ValidationError, root: type[BaseModel]) -> list[str]:
    """pydantic's errors as ``key.path: what is wrong (got 'value')`` lines."""
    return [_translate_one(details, root) for details in error.errors(include_url=False)]


def _translate_one(details: Any, root: type[BaseModel]) -> str:
    loc: tuple[str | int, ...] = tuple(details["loc"])
    context: dict[str, Any] = details.get("ctx") or {}
    kind: str = details["type"]
    if kind == "svarstid":
        return line(loc + tuple(context["at"]), context["problem"], context.get("got", _NOTHING))
    if kind == "missing":
        return line(loc, "is required")
    if kind == "extra_forbidden":
        problem = _unknown_key_problem(root, loc)
        return line(loc, problem, details["input"], secret=looks_secret(loc))
    problem = _BUILTIN_PROBLEMS.get(kind) or _lower_first(str(details["msg"]))
    return line(loc, problem, details["input"])


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _unknown_key_problem(root: type[BaseModel], loc: Sequence[str | int]) -> str:
    known = known_keys(root, [str(part) for part in loc[:-1] if not isinstance(part, int)])
    guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
    return f"unknown key, did you mean '{guess[0]}'?" if guess else "unknown key"


def known_keys(root: type[BaseModel], path: Sequence[str]) -> list[str]:
    """The keys a section at ``path`` accepts; [] when unknown or free-form."""
    found = _annotation_at(root, path)
    if isinstance(found, type) and issubclass(found, BaseModel):
        return list(found.model_fields)
    return []


def _annotation_at(root: type[BaseModel], path: Sequence[str]) -> Any:
    """The type declared at ``path``, or None when no such key exists."""
    annotation: Any = root
    for part in path:
        annotation = _child_annotation(annotation, part)
        if annotation is None:
            return None
    return annotation


def _child_annotation(annotation: Any, key: str) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(key)
        return None if field is None else _item_type(field.annotation)
    if get_origin(annotation) is dict:
        return _item_type(get_args(annotation)[1])
    return None


def _item_type(annotation: Any) -> Any:
    """The entry type of ``tuple[X, ...]``: list indices are not part of the key path."""
    if get_origin(annotation) is tuple and get_args(annotation)[1:] == (Ellipsis,):
        return get_args(annotation)[0]
    return annotation


def validate(model: type[M], data: object, context: Mapping[str, Any], file: Path | None) -> M:
    """``model`` validated from ``data``; every problem found goes into one ConfigError."""
    try:
        return model.model_validate({} if data is None else data, context=dict(context))
    except ValidationError as error:
        raise ConfigError(translate(error, model), file) from None


# ---------------------------------------------------------------------------------------------
# YAML


class _StrictLoader(yaml.SafeLoader):
    """YAML 1.2 scalars: ``no``/``on`` stay text (Norway is ``NO``), ``0114`` stays text."""


_YAML_1_1_TAGS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _YAML_1_1_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def read_yaml(path: Path) -> Any:
    """The document in ``path``; a missing file, bad syntax or a repeated key is a ConfigError."""
    return parse_yaml(read_text(path), path)


def parse_yaml(text: str, path: Path | None) -> Any:
    """The YAML document in ``text`` (from ``path``, for error reports)."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        duplicates = list(_duplicate_keys(node, ()))
        if duplicates:
            raise ConfigError(duplicates, path)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        raise ConfigError([_syntax_problem(error)], path) from None
    except yaml.YAMLError as error:
        raise ConfigError([f"not valid YAML: {error}"], path) from None
    finally:
        loader.dispose()


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"file: not found (got '{path}')"], path) from None
    except (OSError, UnicodeDecodeError) as error:
        problem = getattr(error, "strerror", None) or "not UTF-8 text"
        raise ConfigError([f"file: cannot be read, {problem} (got '{path}')"], path) from None


def _syntax_problem(error: yaml.MarkedYAMLError) -> str:
    # Only the problem and its position: the snippet YAML quotes could contain a secret.
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return f"{where}not valid YAML, {error.problem or error.context}"


def _duplicate_keys(node: yaml.Node, loc: tuple[str | int, ...]) -> Iterator[str]:
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*loc, index))
    if not isinstance(node, yaml.MappingNode):
        return
    first_lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key in first_lines:
            again = f"given twice, on lines {first_lines[key]} and {key_node.start_mark.line + 1}"
            yield line((*loc, key), again, _scalar(value_node))
        first_lines.setdefault(key, key_node.start_mark.line + 1)
        yield from _duplicate_keys(value_node, (*loc, key))


def _scalar(node: yaml.Node) -> object:
    return node.value if isinstance(node, yaml.ScalarNode) else "…"


# ---------------------------------------------------------------------------------------------
# Field validators: each takes the raw value and returns the typed one, or raises fail(...)


def _optional(
    check: Callable[[Any, ValidationInfo], T],
) -> Callable[[Any, ValidationInfo], T | None]:
    def optional_check(value: Any, info: ValidationInfo) -> T | None:
        return None if value is None else check(value, info)

    return optional_check


def check_text(value: Any, _info: ValidationInfo | None = None) -> str:
    if not isinstance(value, str):
        raise fail("must be text; put it in quotes", value)
    if not value.strip():
        raise fail("must not be empty", value)
    return value.strip()


def whole_number(low: int, high: int | None = None, why: str = "") -> Callable[..., int]:
    bounds = f"≥ {low}" if high is None else f"from {low} to {high}"
    problem = f"must be a whole number {bounds}{why}"

    def check_whole_number(value: Any, _info: ValidationInfo | None = None) -> int:
        number = _as_int(value)
        if number is None or number < low or (high is not None and number > high):
            raise fail(problem, value)
        return number

    return check_whole_number


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?[0-9]+\s*", value):
        return int(value)
    return None


def check_seconds(value: Any, _info: ValidationInfo | None = None) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        number = _float_or_none(value)
    if number is None or not number > 0 or number == float("inf"):
        raise fail("must be a number of seconds > 0", value)
    return number


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def check_bool(value: Any, _info: ValidationInfo | None = None) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise fail("must be true or false", value)


E = TypeVar("E", bound=StrEnum)


def one_of(choices: type[E]) -> Callable[..., E]:
    problem = "must be one of " + ", ".join(choice.value for choice in choices)

    def check_choice(value: Any, _info: ValidationInfo | None = None) -> E:
        if isinstance(value, str):
            for choice in choices:
                if choice.value == value.strip().lower():
                    return choice
        raise fail(problem, value)

    return check_choice


_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`|~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`|~-]+)*")
_DOMAIN_LABEL = r"[^\W_](?:[\w-]*[^\W_])?"
_DOMAIN = re.compile(rf"{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*")


def is_address(text: str) -> bool:
    """A bare addr-spec: dot-atom local part (no quoting), a domain of letters, digits, hyphens."""
    local, at, domain = text.rpartition("@")
    return bool(at) and _LOCAL_PART.fullmatch(local) is not None and is_domain(domain)


def is_domain(text: str) -> bool:
    return len(text) <= 253 and _DOMAIN.fullmatch(text) is not None


def check_address(value: Any, _info: ValidationInfo | None = None) -> str:
    text = check_text(value)
    if not is_address(text):
        raise fail("not an e-mail address", value)
    return text


def check_reply_template(value: Any, _info: ValidationInfo | None = None) -> str:
    text = check_text(value)
    if text.count("{token}") != 1:
        raise fail("must contain {token} exactly once", value)
    if not is_address(text.replace("{token}", "abcdefgh23")):
        raise fail("not an e-mail address once {token} is filled in", value)
    return text


def check_secret(value: Any, _info: ValidationInfo | None = None) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    if not isinstance(value, str):
        raise fail("must be text; put it in quotes", value)
    return SecretStr(value)


def check_existing_file(value: Any, info: ValidationInfo) -> Path:
    if not isinstance(value, str | Path) or not str(value).strip():
        raise fail("must be a file path", value)
    path = Path(str(value).strip()).expanduser()
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if not path.is_file():
        raise fail(f"no such file {path}", value)
    return path


def check_secret_file(value: Any, info: ValidationInfo) -> Path:
    """A file holding a secret: it must exist and read as UTF-8 text now, not at first use."""
    path = check_existing_file(value, info)
    try:
        path.read_bytes().decode("utf-8")
    except OSError as error:
        raise fail(f"cannot read {path}: {error.strerror or error}", value) from None
    except UnicodeDecodeError:
        raise fail(f"{path} is not UTF-8 text", value) from None
    return path


def parse_time(text: str) -> time | None:
    found = re.fullmatch(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", text.strip())
    return time(int(found[1]), int(found[2])) if found else None


def parse_interval(text: str) -> Interval | None:
    """``"08:00-17:00"`` (a hyphen or an en dash) -> (08:00, 17:00); None if not start < end."""
    start_text, dash, end_text = text.replace("–", "-").partition("-")
    start, end = parse_time(start_text), parse_time(end_text)
    if not dash or start is None or end is None or not start < end:
        return None
    return (start, end)


_INTERVAL_PROBLEM = "must be a time range HH:MM-HH:MM with the start before the end"


def check_interval(value: Any, _info: ValidationInfo | None = None) -> Interval:
    interval = parse_interval(value) if isinstance(value, str) else None
    if interval is None:
        raise fail(_INTERVAL_PROBLEM, value)
    return interval


def check_week_hours(value: Any, _info: ValidationInfo | None = None) -> WeekHours:
    """One range for Mon–Fri, or a mapping ``mon``..``sun`` -> ranges; days left out are closed."""
    if isinstance(value, str):
        weekday = (check_interval(value),)
        return (weekday,) * 5 + ((), ())
    if not isinstance(value, Mapping):
        raise fail("must be one time range or a mapping mon..sun to time ranges", value)
    for day in value:
        if day not in WEEKDAYS:
            raise fail("not a weekday; use " + ", ".join(WEEKDAYS), day, at=(str(day),))
    return tuple(_day_hours(day, value.get(day)) for day in WEEKDAYS)


def _day_hours(day: str, value: Any) -> tuple[Interval, ...]:
    texts = [] if value is None else [value] if isinstance(value, str) else value
    if not isinstance(texts, list):
        raise fail("must be a list of time ranges HH:MM-HH:MM", value, at=(day,))
    intervals = []
    for index, text in enumerate(texts):
        interval = parse_interval(text) if isinstance(text, str) else None
        if interval is None:
            raise fail(_INTERVAL_PROBLEM, text, at=(day, index))
        intervals.append(interval)
    intervals.sort()
    for earlier, later in pairwise(intervals):
        if later[0] < earlier[1]:
            raise fail("time ranges overlap", value, at=(day,))
    return tuple(intervals)


def check_date(value: Any, _info: ValidationInfo | None = None) -> date:
    if isinstance(value, date) and type(value) is date:
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", value):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise fail("must be a date YYYY-MM-DD", value)


def check_timezone(value: Any, _info: ValidationInfo | None = None) -> str:
    text = check_text(value)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise fail("not a known time zone, e.g. Europe/Stockholm", value) from None
    return text


def check_country(value: Any, _info: ValidationInfo | None = None) -> str:
    if not isinstance(value, str) or value.strip().upper() not in supported_countries():
        raise fail("not a country code known to the holidays package, e.g. SE", value)
    return value.strip().upper()


def supported_countries() -> Mapping[str, list[str]]:
    countries: Mapping[str, list[str]] = holidays.list_supported_countries()
    return countries


def check_listen(value: Any, _info: ValidationInfo | None = None) -> str:
    text = check_text(value)
    if split_listen(text) is None:
        raise fail("must be host:port, e.g. 127.0.0.1:9180 or [::1]:9180", value)
    return text


def split_listen(text: str) -> tuple[str, int] | None:
    """``"127.0.0.1:9180"`` -> ("127.0.0.1", 9180); ``"[::1]:9180"`` -> ("::1", 9180)."""
    host, colon, port_text = text.rpartition(":")
    if not colon or not re.fullmatch(r"[0-9]{1,5}", port_text) or int(port_text) > 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        return (host, int(port_text)) if _is_ip(host, version=6) else None
    if _is_ip(host, version=4) or is_domain(host):
        return host, int(port_text)
    return None


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def check_database_url(value: Any, _info: ValidationInfo | None = None) -> str:
    text = check_text(value)
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise fail("not a database URL", masked_url(text)) from None
    if url.drivername not in DATABASE_DRIVERS:
        problem = "must start with " + " or ".join(f"{name}://" for name in DATABASE_DRIVERS)
        raise fail(problem, masked_url(text))
    if "@" in (url.host or ""):
        # make_url splits at the first '@', so the rest of the password became the host.
        raise fail("write an '@' in the password as %40", masked_url(text))
    return text


# asyncpg also takes the password from the query string.
_QUERY_PASSWORD = re.compile(r"([?&](?:password|passwd|pwd)=)[^&#]*", re.IGNORECASE)


def masked_url(text: str) -> str:
    """A database URL with its password replaced by ``***``, whatever characters it holds.

    The credentials run up to the LAST '@' (a parser would split at the first), so a raw
    '@', '/', '?' or '#' in the password is masked as well; masking too much is harmless.
    """
    scheme, separator, rest = text.partition("://")
    prefix = scheme + separator if separator else ""
    rest = rest if separator else text
    user, at, host = rest.rpartition("@")
    if at and not user.startswith("/") and ":" in user:
        rest = f"{user.split(':', 1)[0]}:***@{host}"
    return prefix + _QUERY_PASSWORD.sub(r"\1***", rest)


# ---------------------------------------------------------------------------------------------
# Schema

Text = Annotated[str, PlainValidator(check_text)]
OptionalText = Annotated[str | None, PlainValidator(_optional(check_text))]
Address = Annotated[str, PlainValidator(check_address)]
Port = Annotated[int, PlainValidator(whole_number(1, 65535))]
Seconds = Annotated[float, PlainValidator(check_seconds)]
Secret = Annotated[SecretStr | None, PlainValidator(check_secret)]
OptionalFile = Annotated[Path | None, PlainValidator(_optional(check_existing_file))]
SecretFile = Annotated[Path | None, PlainValidator(_optional(check_secret_file))]
TimeRange = Annotated[Interval, PlainValidator(check_interval)]
ClosedDate = Annotated[date, PlainValidator(check_date)]

_STRICT = ConfigDict(extra="forbid", frozen=True)


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"
    TLS = "tls"  # implicit TLS ("SMTPS")
    NONE = "none"


class ImapSecurity(StrEnum):
    # aioimaplib has no STARTTLS: TLS is implicit TLS (IMAPS, port 993).
    TLS = "tls"
    NONE = "none"


class MailAuth(StrEnum):
    PASSWORD = "password"
    # OAuth2 access token (Microsoft 365, Gmail), from oauth2_token_command.
    XOAUTH2 = "xoauth2"


def check_command(value: Any, _info: ValidationInfo | None = None) -> str:
    text = check_text(value)
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise fail(f"not a command line: {error}", value) from None
    if not words:
        raise fail("must not be empty", value)
    return text


Command = Annotated[str | None, PlainValidator(_optional(check_command))]


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    AUTO = "auto"  # json when stderr is not a terminal
    JSON = "json"
    TEXT = "text"


_IDLE_WHY = "; RFC 2177 lets servers end an IDLE after 30 minutes"
_SMTP_PORTS = {"starttls": 587, "tls": 465, "none": 25}
_IMAP_PORTS = {"tls": 993, "none": 143}


def _with_default_port(data: Any, ports: Mapping[str, int], fallback: str) -> Any:
    if not isinstance(data, Mapping) or data.get("port") is not None:
        return data
    security = data.get("security", fallback)
    key = security.strip().lower() if isinstance(security, str) else fallback
    return {**data, "port": ports.get(key, ports[fallback])}


def _check_oauth2(
    auth: MailAuth,
    username: str | None,
    has_password: bool,
    token_command: str | None,
) -> None:
    """XOAUTH2 signs in with a token from a command instead of a password."""
    if auth is MailAuth.PASSWORD:
        if token_command is not None:
            problem = "is only used with auth: xoauth2"
            raise fail(problem, token_command, at=("oauth2_token_command",))
        return
    if username is None:
        raise fail("is required with auth: xoauth2", at=("username",))
    if token_command is None:
        raise fail("is required with auth: xoauth2", at=("oauth2_token_command",))
    if has_password:
        raise fail("is not used with auth: xoauth2; remove it", "***", at=("password",))


def _check_login(
    username: str | None,
    password: SecretStr | None,
    password_file: Path | None,
    env_section: str,
    auth: MailAuth = MailAuth.PASSWORD,
    token_command: str | None = None,
) -> None:
    if auth is not MailAuth.PASSWORD or token_command is not None:
        has_password = password is not None or password_file is not None
        _check_oauth2(auth, username, has_password, token_command)
        return
    needs_password = env_section == "IMAP" or username is not None
    if password is not None and password_file is not None:
        raise fail("set password or password_file, not both", password_file, at=("password_file",))
    has_password = password is not None or password_file is not None
    if needs_password and not has_password:
        where = f"set password, password_file or SVARSTID_{env_section}__PASSWORD"
        raise fail(f"is required ({where})", at=("password",))
    if has_password and username is None:
        raise fail("is required when a password is given", at=("username",))


class MailboxConfig(BaseModel):
    model_config = _STRICT
    address: Address
    reply_address: Annotated[str, PlainValidator(check_reply_template)]


class SmtpConfig(BaseModel):
    model_config = _STRICT
    host: Text
    port: Port = 587
    security: Annotated[SmtpSecurity, PlainValidator(one_of(SmtpSecurity))] = SmtpSecurity.STARTTLS
    username: OptionalText = None  # None = no AUTH
    password: Secret = None
    password_file: SecretFile = None
    timeout: Seconds = 30.0
    ca_file: OptionalFile = None
    auth: Annotated[MailAuth, PlainValidator(one_of(MailAuth))] = MailAuth.PASSWORD
    oauth2_token_command: Command = None

    @model_validator(mode="before")
    @classmethod
    def _default_port(cls, data: Any) -> Any:
        return _with_default_port(data, _SMTP_PORTS, "starttls")

    @model_validator(mode="after")
    def _login(self) -> SmtpConfig:
        _check_login(
            self.username,
            self.password,
            self.password_file,
            "SMTP",
            self.auth,
            self.oauth2_token_command,
        )
        return self


class ImapConfig(BaseModel):
    model_config = _STRICT
    host: Text
    port: Port = 993
    security: Annotated[ImapSecurity, PlainValidator(one_of(ImapSecurity))] = ImapSecurity.TLS
    username: Text
    password: Secret = None
    password_file: SecretFile = None
    folder: Text = "INBOX"
    idle_renew_seconds: Annotated[
        int,
        PlainValidator(whole_number(1, IDLE_LIMIT_SECONDS - 1, _IDLE_WHY)),
    ] = 1740
    poll_seconds: Annotated[int, PlainValidator(whole_number(1))] = 60
    liveness_seconds: Annotated[int, PlainValidator(whole_number(5, 600))] = 25
    timeout: Seconds = 30.0
    ca_file: OptionalFile = None
    auth: Annotated[MailAuth, PlainValidator(one_of(MailAuth))] = MailAuth.PASSWORD
    oauth2_token_command: Command = None

    @model_validator(mode="before")
    @classmethod
    def _default_port(cls, data: Any) -> Any:
        return _with_default_port(data, _IMAP_PORTS, "tls")

    @model_validator(mode="after")
    def _login(self) -> ImapConfig:
        _check_login(
            self.username,
            self.password,
            self.password_file,
            "IMAP",
            self.auth,
            self.oauth2_token_command,
        )
        return self


class DatabaseConfig(BaseModel):
    model_config = _STRICT
    url: Annotated[str, PlainValidator(check_database_url)] = "sqlite+aiosqlite:///svarstid.db"
    body_retention_days: Annotated[int, PlainValidator(whole_number(0))] = 90
    # The PostgreSQL password from a file (compose secrets, systemd credentials), so that
    # the URL itself holds none.
    password_file: SecretFile = None

    @model_validator(mode="after")
    def _password_file(self) -> DatabaseConfig:
        if self.password_file is None:
            return self
        url = make_url(self.url)
        if url.get_backend_name() != "postgresql":
            raise fail("is only used with a PostgreSQL URL", at=("password_file",))
        if url.password is not None:
            problem = "set the password in url or password_file, not both"
            raise fail(problem, self.password_file, at=("password_file",))
        return self


class LeaderConfig(BaseModel):
    """Several instances on one PostgreSQL database: one leads, the others stand by."""

    model_config = _STRICT
    # How often a standby tries the lock, and the leader re-checks it while idle.
    poll_seconds: Seconds = 5.0
    # How long a vanished leader host may keep the lock (TCP keepalive / user timeout).
    session_timeout_seconds: Annotated[int, PlainValidator(whole_number(3, 600))] = 15


class MetricsAuth(StrEnum):
    NONE = "none"  # Prometheus scrapes on loopback
    BASIC = "basic"  # HTTP basic auth with an account of http.users_file


def check_path(value: Any, info: ValidationInfo) -> Path:
    """A file path, relative to the config's folder; the file need not exist yet."""
    if not isinstance(value, str | Path) or not str(value).strip():
        raise fail("must be a file path", value)
    path = Path(str(value).strip()).expanduser()
    base = (info.context or {}).get("base_dir")
    return Path(base) / path if not path.is_absolute() and base is not None else path


class TlsConfig(BaseModel):
    model_config = _STRICT
    cert_file: OptionalFile = None
    key_file: OptionalFile = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            given, missing = (
                ("cert_file", "key_file") if self.key_file is None else ("key_file", "cert_file")
            )
            raise fail(f"is required when {given} is set", at=(missing,))
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class HttpConfig(BaseModel):
    model_config = _STRICT
    listen: Annotated[str, PlainValidator(check_listen)] = "127.0.0.1:9180"
    # None: no accounts, no login (loopback use, as before accounts existed).
    users_file: Annotated[Path | None, PlainValidator(_optional(check_path))] = None
    metrics_auth: Annotated[MetricsAuth, PlainValidator(one_of(MetricsAuth))] = MetricsAuth.NONE
    public_overview: Annotated[bool, PlainValidator(check_bool)] = False
    tls: TlsConfig = Field(default_factory=TlsConfig)

    @model_validator(mode="after")
    def _accounts_needed(self) -> HttpConfig:
        if self.users_file is not None:
            return self
        if self.metrics_auth is not MetricsAuth.NONE:
            problem = "needs http.users_file: basic auth checks its accounts"
            raise fail(problem, self.metrics_auth.value, at=("metrics_auth",))
        if self.public_overview:
            raise fail("is only used with http.users_file", True, at=("public_overview",))
        return self

    @property
    def is_loopback(self) -> bool:
        """Whether only this host can reach ``listen`` (a name other than localhost: no)."""
        host = self.host
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def host(self) -> str:
        return _split_valid_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_valid_listen(self.listen)[1]


def _split_valid_listen(text: str) -> tuple[str, int]:
    split = split_listen(text)
    if split is None:
        raise ValueError(f"not host:port: {text!r}")
    return split


class ScheduleConfig(BaseModel):
    model_config = _STRICT
    tick_seconds: Annotated[int, PlainValidator(whole_number(1))] = 60
    send_window: TimeRange = (time(9, 0), time(15, 0))
    min_spacing_days: Annotated[int, PlainValidator(whole_number(0))] = 14
    max_probes_per_target_per_30_days: Annotated[int, PlainValidator(whole_number(1))] = 2
    max_probes_per_hour: Annotated[int, PlainValidator(whole_number(1))] = 20
    question_repeat_days: Annotated[int, PlainValidator(whole_number(0))] = 365
    jitter_minutes: Annotated[int, PlainValidator(whole_number(0))] = 90


_OFFICE_DAY: tuple[Interval, ...] = ((time(8, 0), time(17, 0)),)


class CalendarConfig(BaseModel):
    model_config = _STRICT
    country: Annotated[str, PlainValidator(check_country)] = "SE"
    subdivision: OptionalText = None
    timezone: Annotated[str, PlainValidator(check_timezone)] = "Europe/Stockholm"
    office_hours: Annotated[WeekHours, PlainValidator(check_week_hours)] = (_OFFICE_DAY,) * 5 + (
        (),
        (),
    )
    closed_dates: tuple[ClosedDate, ...] = ()

    @model_validator(mode="after")
    def _known_subdivision(self) -> CalendarConfig:
        known = supported_countries()[self.country]
        if self.subdivision is not None and self.subdivision not in known:
            choices = ", ".join(known) if known else "none"
            problem = f"not a subdivision of {self.country} (known: {choices})"
            raise fail(problem, self.subdivision, at=("subdivision",))
        return self

    @property
    def hours_by_weekday(self) -> dict[int, tuple[Interval, ...]]:
        """Office hours keyed by weekday (Monday = 0), only the open days."""
        return {day: hours for day, hours in enumerate(self.office_hours) if hours}


class MeasurementConfig(BaseModel):
    model_config = _STRICT
    unanswered_final_after_working_days: Annotated[int, PlainValidator(whole_number(1))] = 10
    low_confidence_below: Annotated[int, PlainValidator(whole_number(0))] = 5


class LoggingConfig(BaseModel):
    model_config = _STRICT
    level: Annotated[LogLevel, PlainValidator(one_of(LogLevel))] = LogLevel.INFO
    format: Annotated[LogFormat, PlainValidator(one_of(LogFormat))] = LogFormat.AUTO


class Config(BaseModel):
    """The whole configuration; file paths in it are absolute and the files exist."""

    model_config = _STRICT
    mailbox: MailboxConfig
    smtp: SmtpConfig
    imap: ImapConfig
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    calendar: CalendarConfig = Field(default_factory=CalendarConfig)
    calendars: dict[Text, CalendarConfig] = Field(default_factory=dict)
    measurement: MeasurementConfig = Field(default_factory=MeasurementConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    leader: LeaderConfig = Field(default_factory=LeaderConfig)
    targets_file: Annotated[Path, PlainValidator(check_existing_file)] = Field(
        default=Path("targets.yaml"), validate_default=True
    )
    questions_file: OptionalFile = None  # None = the packaged Swedish questions
    optout_file: OptionalFile = None


# ---------------------------------------------------------------------------------------------
# Loading


def default_config_path(environ: Mapping[str, str], cwd: Path) -> Path:
    """``$SVARSTID_CONFIG`` (relative to ``cwd``), else ``svarstid.yaml`` in ``cwd``."""
    configured = environ.get(ENV_CONFIG, "").strip()
    return cwd / (configured or DEFAULT_CONFIG_NAME)


def load_config(path: Path, environ: Mapping[str, str]) -> Config:
    """The validated configuration in ``path`` with ``SVARSTID_*`` overrides applied.

    Relative file paths (also those from the environment) are relative to the folder of
    ``path``. Raises ConfigError listing every problem found.
    """
    overrides, env_errors = env_overrides(environ)
    if env_errors:
        raise ConfigError(env_errors, None)
    raw = read_yaml(path)
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError([line((), "must be a mapping of keys", raw)], path)
    merged = apply_overrides(raw or {}, overrides)
    return validate(Config, merged, {"base_dir": path.absolute().parent}, path)


def read_secret(value: SecretStr | None, file: Path | None) -> str | None:
    """The secret given inline or in ``file`` (trailing newlines stripped), or None."""
    if value is not None:
        return value.get_secret_value()
    if file is not None:
        return file.read_text(encoding="utf-8").rstrip("\r\n")
    return None


Override = tuple[tuple[str, ...], object]


def env_overrides(environ: Mapping[str, str]) -> tuple[list[Override], list[str]]:
    """``SVARSTID_SMTP__HOST=x`` -> ((smtp, host), 'x'); unknown variables are errors."""
    overrides: list[Override] = []
    errors: list[str] = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX) or name.upper() == ENV_CONFIG:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        problem = _env_path_problem(path)
        if problem is None:
            overrides.append((path, _env_value(environ[name])))
        else:
            masked = show(environ[name], secret=looks_secret(path))
            errors.append(f"{name}: {problem} (got {masked})")
    return overrides, errors


def _env_path_problem(path: Sequence[str]) -> str | None:
    for depth in range(1, len(path) + 1):
        if not path[depth - 1] or _annotation_at(Config, path[:depth]) is None:
            return _unknown_env_problem(path[:depth])
    return None


def _unknown_env_problem(path: Sequence[str]) -> str:
    dotted = ".".join(path)
    known = known_keys(Config, path[:-1])
    guess = difflib.get_close_matches(path[-1], known, n=1)
    hint = f", did you mean '{guess[0]}'?" if guess else ""
    return f"no such setting {dotted}{hint}"


def _env_value(text: str) -> object:
    """Env values stay text (pydantic-side validators parse numbers); [..] and {..} are YAML."""
    if not text.strip():
        return None
    if text.lstrip()[:1] in ("[", "{"):
        try:
            return yaml.load(text, Loader=_StrictLoader)
        except yaml.YAMLError:
            return text
    return text


_SECRET_PAIRS = {"password": "password_file", "password_file": "password"}


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """A copy of ``raw`` with each override set; an env secret replaces the file's other form."""
    merged: dict[str, Any] = dict(raw)
    set_paths = {path for path, _ in overrides}
    for path, value in overrides:
        section = _section_for(merged, path[:-1])
        key = _existing_key(section, path[-1])
        section[key] = value
        sibling = _SECRET_PAIRS.get(key)
        if sibling is not None and (*path[:-1], sibling) not in set_paths:
            section.pop(_existing_key(section, sibling), None)
    return merged


def _section_for(root: dict[str, Any], path: Sequence[str]) -> dict[str, Any]:
    section = root
    for part in path:
        key = _existing_key(section, part)
        child = section.get(key)
        child = dict(child) if isinstance(child, Mapping) else {}
        section[key] = child
        section = child
    return section


def _existing_key(section: Mapping[str, Any], wanted: str) -> str:
    """Env names are case-insensitive: reuse the file's spelling of a key when it exists."""
    for key in section:
        if str(key).lower() == wanted:
            return str(key)
    return wanted
