"""GreenAPISettings / get_settings / InstanceCredentials / ClientConfig: env prefix, .env, errors that keep the token."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from greenapi import DEFAULT_API_URL, ClientConfig, ConfigurationError, GreenAPISettings, InstanceCredentials, get_settings
from greenapi.timings import EMULATOR_TIMINGS_ENV, GreenApiTimings, green_api_timings
from tests.helpers import TOKEN_CANARY, exception_text


def test_env_prefix(monkeypatch):
    monkeypatch.setenv("GREEN_API_ID_INSTANCE", "1101000001")
    monkeypatch.setenv("GREEN_API_API_TOKEN_INSTANCE", TOKEN_CANARY)
    monkeypatch.setenv("GREEN_API_API_URL", "https://7105.api.greenapi.com")
    monkeypatch.setenv("GREEN_API_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("GREEN_API_MAX_RETRIES", "5")
    monkeypatch.setenv("ID_INSTANCE", "42")  # unprefixed: ignored
    settings = get_settings()
    creds = settings.credentials()
    assert isinstance(creds, InstanceCredentials)
    assert (creds.api_url, creds.id_instance) == ("https://7105.api.greenapi.com", 1101000001)
    assert creds.api_token_instance.get_secret_value() == TOKEN_CANARY
    config = settings.client_config()
    # A timeout below the connect timeout limits the connect too: no request waits longer than the setting says.
    assert (config.timeout_seconds, config.connect_timeout_seconds, config.max_retries) == (2.5, 2.5, 5)


def test_dotenv_file(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text(
        f"GREEN_API_ID_INSTANCE=777\nGREEN_API_API_TOKEN_INSTANCE={TOKEN_CANARY}\nGREEN_API_MAX_RETRIES=1\nOTHER=x\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    settings = get_settings()
    assert settings.id_instance == 777
    assert settings.client_config().max_retries == 1
    assert settings.credentials().api_token_instance.get_secret_value() == TOKEN_CANARY


def test_environment_beats_dotenv(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("GREEN_API_MAX_RETRIES=1\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
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
        ({"GREEN_API_API_TOKEN_INSTANCE": TOKEN_CANARY}, ["GREEN_API_ID_INSTANCE"]),
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
    assert TOKEN_CANARY not in exception_text(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("GREEN_API_MAX_RETRIES", "lots"),
        ("GREEN_API_MAX_RETRIES", "11"),
        ("GREEN_API_ID_INSTANCE", "0"),
        ("GREEN_API_ID_INSTANCE", "12345678901"),
        ("GREEN_API_TIMEOUT_SECONDS", "-1"),
        ("GREEN_API_TIMEOUT_SECONDS", "soon"),
    ],
)
def test_invalid_values_give_one_line_configuration_error_naming_the_variable(monkeypatch, key, value):
    monkeypatch.setenv("GREEN_API_API_TOKEN_INSTANCE", TOKEN_CANARY)
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError) as info:
        get_settings()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"invalid setting {key}: ")
    assert value not in message
    assert TOKEN_CANARY not in exception_text(info.value)
    assert info.value.__cause__ is None


def test_a_client_config_with_a_backoff_cap_below_its_start_is_refused():
    with pytest.raises(ValueError, match="retry_backoff_max_seconds"):
        ClientConfig(retry_backoff_initial_seconds=5, retry_backoff_max_seconds=1)


@pytest.mark.parametrize("url", ["https://api.green-api.com/", "https://7105.api.greenapi.com///", "  https://h.example/ "])
def test_api_url_trailing_slash_stripped(monkeypatch, url):
    monkeypatch.setenv("GREEN_API_API_URL", url)
    monkeypatch.setenv("GREEN_API_ID_INSTANCE", "9")
    monkeypatch.setenv("GREEN_API_API_TOKEN_INSTANCE", TOKEN_CANARY)
    creds = get_settings().credentials()
    assert creds.api_url == url.strip().rstrip("/")
    assert not creds.api_url.endswith("/")
    assert InstanceCredentials(api_url=url, id_instance=9, api_token_instance=TOKEN_CANARY).api_url == creds.api_url


def test_api_url_scheme_is_checked(monkeypatch):
    monkeypatch.setenv("GREEN_API_API_URL", "ftp://api.green-api.com")
    monkeypatch.setenv("GREEN_API_ID_INSTANCE", "9")
    monkeypatch.setenv("GREEN_API_API_TOKEN_INSTANCE", TOKEN_CANARY)
    with pytest.raises(ConfigurationError, match="GREEN_API_API_URL: ") as info:
        get_settings().credentials()
    assert TOKEN_CANARY not in exception_text(info.value)


@pytest.mark.parametrize("bad", [f"{TOKEN_CANARY}/extra", f"{TOKEN_CANARY}?x=1", f"{TOKEN_CANARY}#frag", f"{TOKEN_CANARY} x", ""])
def test_token_with_separator_rejected_via_settings_without_echo(monkeypatch, bad):
    monkeypatch.setenv("GREEN_API_ID_INSTANCE", "9")
    monkeypatch.setenv("GREEN_API_API_TOKEN_INSTANCE", bad)
    settings = get_settings()
    with pytest.raises(ConfigurationError, match="GREEN_API_API_TOKEN_INSTANCE: ") as info:
        settings.credentials()
    assert "\n" not in str(info.value)
    assert TOKEN_CANARY not in exception_text(info.value)


@pytest.mark.parametrize("bad", [f"{TOKEN_CANARY}/extra", f"{TOKEN_CANARY}?x=1", f"{TOKEN_CANARY}\tx"])
@pytest.mark.parametrize("as_secret", [False, True])
def test_token_with_separator_rejected_directly_without_echo(bad, as_secret):
    token = SecretStr(bad) if as_secret else bad
    with pytest.raises(ValidationError) as info:
        InstanceCredentials(id_instance=9, api_token_instance=token)
    assert "api_token_instance" in str(info.value)
    assert TOKEN_CANARY not in exception_text(info.value)


@pytest.mark.parametrize("id_instance", [0, -1, 10_000_000_000])
def test_credentials_id_instance_range(id_instance):
    with pytest.raises(ValidationError):
        InstanceCredentials(id_instance=id_instance, api_token_instance=TOKEN_CANARY)


def test_credentials_are_frozen_and_masked():
    creds = InstanceCredentials(id_instance=1, api_token_instance=TOKEN_CANARY)
    assert creds.api_url == DEFAULT_API_URL
    with pytest.raises(ValidationError):
        creds.id_instance = 2  # type: ignore[misc]
    assert TOKEN_CANARY not in repr(creds) and TOKEN_CANARY not in str(creds) and TOKEN_CANARY not in creds.model_dump_json()


def test_settings_repr_masks_token():
    settings = GreenAPISettings(_env_file=None, id_instance=1, api_token_instance=TOKEN_CANARY)
    assert TOKEN_CANARY not in repr(settings) and TOKEN_CANARY not in str(settings) and TOKEN_CANARY not in settings.model_dump_json()


def test_greenapis_own_timings_unless_the_tests_or_the_demo_hand_in_the_emulators(monkeypatch):
    assert green_api_timings() == GreenApiTimings()
    assert GreenApiTimings().settings_poll_seconds == 5  # 60 reads over SetSettings' 5 minutes
    monkeypatch.setenv(EMULATOR_TIMINGS_ENV, GreenApiTimings(count_refresh_seconds=1, settings_apply_seconds=2).env()[EMULATOR_TIMINGS_ENV])
    emulated = green_api_timings()
    assert (emulated.count_refresh_seconds, emulated.clear_interval_seconds) == (1, GreenApiTimings().clear_interval_seconds)
    assert emulated.settings_poll_seconds == 1  # never more often than GetSettings' rate limit


@pytest.mark.parametrize(("raw", "problem"), [("{", "not JSON"), ('{"clear_interval_seconds": -1}', "clear_interval_seconds"),
                                             ('{"count_refresh": 1}', "count_refresh"), ("[1]", "not a JSON object")])
def test_a_bad_emulator_timings_variable_is_one_line_naming_it(monkeypatch, raw, problem):
    monkeypatch.setenv(EMULATOR_TIMINGS_ENV, raw)
    with pytest.raises(ConfigurationError) as info:
        green_api_timings()
    message = str(info.value)
    assert message.startswith(f"{EMULATOR_TIMINGS_ENV} (tests and the demo only): ") and problem in message
    assert "\n" not in message and info.value.__cause__ is None
