"""GreenAPISettings / get_settings / InstanceCredentials: env prefix, .env, defaults, errors that keep the token."""

from __future__ import annotations

import traceback

import pytest
from pydantic import SecretStr, ValidationError

from greenapi import DEFAULT_API_URL, ConfigurationError, GreenAPISettings, InstanceCredentials, get_settings

CANARY = "CANARY0123456789abcdef"


def all_text(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), repr(exc.args), "".join(traceback.format_exception(exc))]
    link = exc.__cause__ or exc.__context__
    while link is not None:
        parts += [str(link), repr(link)]
        link = link.__cause__ or link.__context__
    return "\n".join(parts)


def test_defaults():
    settings = get_settings()
    assert settings.api_url == "https://api.green-api.com" == DEFAULT_API_URL
    assert settings.count_refresh_seconds == 10
    assert settings.id_instance is None and settings.api_token_instance is None
    assert settings.max_retries == 3
    assert settings.receive_timeout_seconds == 5
    assert settings.retry_backoff_max_seconds >= settings.retry_backoff_initial_seconds


def test_env_prefix(monkeypatch):
    monkeypatch.setenv("GREEN_API_ID_INSTANCE", "1101000001")
    monkeypatch.setenv("GREEN_API_API_TOKEN_INSTANCE", CANARY)
    monkeypatch.setenv("GREEN_API_API_URL", "https://7105.api.greenapi.com")
    monkeypatch.setenv("GREEN_API_COUNT_REFRESH_SECONDS", "12.5")
    monkeypatch.setenv("GREEN_API_MAX_RETRIES", "5")
    monkeypatch.setenv("ID_INSTANCE", "42")  # unprefixed: ignored
    settings = get_settings()
    assert settings.id_instance == 1101000001
    assert settings.api_token_instance.get_secret_value() == CANARY
    assert settings.count_refresh_seconds == 12.5
    assert settings.max_retries == 5
    creds = settings.credentials()
    assert isinstance(creds, InstanceCredentials)
    assert (creds.api_url, creds.id_instance) == ("https://7105.api.greenapi.com", 1101000001)
    assert creds.api_token_instance.get_secret_value() == CANARY


def test_dotenv_file(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text(
        f"GREEN_API_ID_INSTANCE=777\nGREEN_API_API_TOKEN_INSTANCE={CANARY}\nGREEN_API_MAX_RETRIES=1\nOTHER=x\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    settings = get_settings()
    assert settings.id_instance == 777
    assert settings.max_retries == 1
    assert settings.credentials().api_token_instance.get_secret_value() == CANARY


def test_environment_beats_dotenv(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("GREEN_API_MAX_RETRIES=1\n", encoding="utf-8")
    monkeypatch.setenv("GREEN_API_MAX_RETRIES", "7")
    assert get_settings().max_retries == 7


def test_overrides_beat_environment(monkeypatch):
    monkeypatch.setenv("GREEN_API_MAX_RETRIES", "7")
    assert get_settings(max_retries=2).max_retries == 2


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, ["GREEN_API_ID_INSTANCE", "GREEN_API_API_TOKEN_INSTANCE"]),
        ({"GREEN_API_ID_INSTANCE": "5"}, ["GREEN_API_API_TOKEN_INSTANCE"]),
        ({"GREEN_API_API_TOKEN_INSTANCE": CANARY}, ["GREEN_API_ID_INSTANCE"]),
    ],
)
def test_credentials_names_missing_vars(monkeypatch, env, missing):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = get_settings()
    with pytest.raises(ConfigurationError) as info:
        settings.credentials()
    message = str(info.value)
    for name in missing:
        assert name in message
    for name in {"GREEN_API_ID_INSTANCE", "GREEN_API_API_TOKEN_INSTANCE"} - set(missing):
        assert name not in message
    assert CANARY not in all_text(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("GREEN_API_MAX_RETRIES", "lots", "max_retries"),
        ("GREEN_API_MAX_RETRIES", "11", "max_retries"),
        ("GREEN_API_ID_INSTANCE", "0", "id_instance"),
        ("GREEN_API_ID_INSTANCE", "12345678901", "id_instance"),
        ("GREEN_API_CONNECT_TIMEOUT_SECONDS", "-1", "connect_timeout_seconds"),
        ("GREEN_API_RECEIVE_TIMEOUT_SECONDS", "61", "receive_timeout_seconds"),
        ("GREEN_API_RETRY_JITTER_RATIO", "1.5", "retry_jitter_ratio"),
        ("GREEN_API_COUNT_REFRESH_SECONDS", "-3", "count_refresh_seconds"),
    ],
)
def test_invalid_values_give_one_line_configuration_error(monkeypatch, key, value, field):
    monkeypatch.setenv("GREEN_API_API_TOKEN_INSTANCE", CANARY)
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError) as info:
        get_settings()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("invalid GREEN_API_ setting")
    assert field in message
    assert CANARY not in all_text(info.value)
    assert info.value.__cause__ is None


def test_backoff_order_is_checked(monkeypatch):
    monkeypatch.setenv("GREEN_API_RETRY_BACKOFF_INITIAL_SECONDS", "5")
    monkeypatch.setenv("GREEN_API_RETRY_BACKOFF_MAX_SECONDS", "1")
    with pytest.raises(ConfigurationError, match="retry_backoff_max_seconds") as info:
        get_settings()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("url", ["https://api.green-api.com/", "https://7105.api.greenapi.com///", "  https://h.example/ "])
def test_api_url_trailing_slash_stripped(monkeypatch, url):
    monkeypatch.setenv("GREEN_API_API_URL", url)
    monkeypatch.setenv("GREEN_API_ID_INSTANCE", "9")
    monkeypatch.setenv("GREEN_API_API_TOKEN_INSTANCE", CANARY)
    creds = get_settings().credentials()
    assert creds.api_url == url.strip().rstrip("/")
    assert not creds.api_url.endswith("/")
    assert InstanceCredentials(api_url=url, id_instance=9, api_token_instance=CANARY).api_url == creds.api_url


def test_api_url_scheme_is_checked(monkeypatch):
    monkeypatch.setenv("GREEN_API_API_URL", "ftp://api.green-api.com")
    monkeypatch.setenv("GREEN_API_ID_INSTANCE", "9")
    monkeypatch.setenv("GREEN_API_API_TOKEN_INSTANCE", CANARY)
    with pytest.raises(ConfigurationError, match="api_url") as info:
        get_settings().credentials()
    assert CANARY not in all_text(info.value)


@pytest.mark.parametrize("bad", [f"{CANARY}/extra", f"{CANARY}?x=1", f"{CANARY}#frag", f"{CANARY} x", ""])
def test_token_with_separator_rejected_via_settings_without_echo(monkeypatch, bad):
    monkeypatch.setenv("GREEN_API_ID_INSTANCE", "9")
    monkeypatch.setenv("GREEN_API_API_TOKEN_INSTANCE", bad)
    settings = get_settings()
    with pytest.raises(ConfigurationError, match="api_token_instance") as info:
        settings.credentials()
    assert "\n" not in str(info.value)
    assert CANARY not in all_text(info.value)


@pytest.mark.parametrize("bad", [f"{CANARY}/extra", f"{CANARY}?x=1", f"{CANARY}\tx"])
@pytest.mark.parametrize("as_secret", [False, True])
def test_token_with_separator_rejected_directly_without_echo(bad, as_secret):
    token = SecretStr(bad) if as_secret else bad
    with pytest.raises(ValidationError) as info:
        InstanceCredentials(id_instance=9, api_token_instance=token)
    assert "api_token_instance" in str(info.value)
    assert CANARY not in all_text(info.value)


@pytest.mark.parametrize("id_instance", [0, -1, 10_000_000_000])
def test_credentials_id_instance_range(id_instance):
    with pytest.raises(ValidationError):
        InstanceCredentials(id_instance=id_instance, api_token_instance=CANARY)


def test_credentials_are_frozen_and_masked():
    creds = InstanceCredentials(id_instance=1, api_token_instance=CANARY)
    assert creds.api_url == DEFAULT_API_URL
    with pytest.raises(ValidationError):
        creds.id_instance = 2  # type: ignore[misc]
    assert CANARY not in repr(creds) and CANARY not in str(creds) and CANARY not in creds.model_dump_json()


def test_settings_repr_masks_token():
    settings = GreenAPISettings(_env_file=None, id_instance=1, api_token_instance=CANARY)
    assert CANARY not in repr(settings) and CANARY not in str(settings) and CANARY not in settings.model_dump_json()
