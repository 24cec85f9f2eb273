"""Service settings: file, environment, defaults, and refusals that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhirtrd.api.config import load_settings
from fhirtrd.api.errors import ConfigError


def test_defaults_are_a_local_development_service() -> None:
    s = load_settings({})
    assert (s.cds_auth, s.rest_auth) == (False, False)
    assert s.max_body_bytes == 10 * 1024 * 1024


def test_file_then_environment_with_the_documented_prefix(tmp_path: Path) -> None:
    path = tmp_path / "fhirtrd.yaml"
    path.write_text("public_url: https://file.example\nmax_body_bytes: 1000\n"
                    "fhir_server_allowlist: [https://a.example/fhir]\n")
    env = {"FHIRTRD_CONFIG": str(path), "FHIRTRD_MAX_BODY_BYTES": "2000",
           "FHIRTRD_FHIR_SERVER_ALLOWLIST": "https://b.example/fhir, https://c.example/fhir",
           "FHIRTRD_SYSTEM_ACTIONS": "true", "OTHER_VARIABLE": "ignored"}
    s = load_settings(None, env)
    assert s.public_url == "https://file.example"
    assert s.max_body_bytes == 2000
    assert s.fhir_server_allowlist == ("https://b.example/fhir", "https://c.example/fhir")
    assert s.system_actions is True


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"max_body_byte": 5}, "max_body_byte"),
        ({"jwt_algorithms": ["RS384", "HS256"]}, "jwt_algorithms"),
        ({"jwt_algorithms": ["none"]}, "jwt_algorithms"),
        ({"cds_auth": "maybe"}, "cds_auth"),
        ({"cds_auth": True}, "cds_auth"),  # on without trusted issuers
        ({"rest_auth": True}, "rest_auth"),  # on without keys or issuers
        ({"trusted_issuers": [{"issuer": "https://x"}]}, "trusted_issuers"),  # no key source
        ({"public_url": "cds.example.org"}, "public_url"),
        ({"as_of": "yesterday"}, "as_of"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(settings: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(settings)
    assert info.value.key == key


def test_unreadable_config_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"FHIRTRD_CONFIG": str(tmp_path / "missing.yaml")})
    assert info.value.key == "FHIRTRD_CONFIG"
