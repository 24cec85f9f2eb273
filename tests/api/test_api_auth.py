"""JWT verification of CDS clients and bearer API keys, without the web layer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
import requests
import responses
from api_samples import EHR_ISSUER, SERVICE_URL, Signer

from fhirtrd.api.auth import ApiKeys, JwtVerifier, ReplayCache
from fhirtrd.api.config import load_settings
from fhirtrd.api.errors import Unauthorized

ENDPOINT = SERVICE_URL + "/cds-services/fhirtrd-patient-view"
JKU = "https://ehr.example.org/.well-known/jwks.json"


def verifier(**issuer: object) -> JwtVerifier:
    settings = load_settings({"trusted_issuers": [{"issuer": EHR_ISSUER, **issuer}]})
    return JwtVerifier(settings, requests.Session())


def test_a_token_signed_by_the_trusted_ehr_is_accepted(signer: Signer) -> None:
    caller = verifier(jwks=signer.jwks).verify(signer.token(ENDPOINT, tenant="clinic-7"), [ENDPOINT])
    assert (caller.kind, caller.issuer, caller.subject, caller.tenant) == (
        "jwt", EHR_ISSUER, "ehr-client", "clinic-7")


def test_ec_keys_are_accepted_too() -> None:
    ec = Signer("ES384", kid="ec-1")
    assert verifier(jwks=ec.jwks).verify(ec.token(ENDPOINT), [ENDPOINT]).kind == "jwt"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda s: s.token("https://other.example/cds-services/x"), "audience"),
        (lambda s: s.token(ENDPOINT, exp_in=-120), "expired"),
        (lambda s: s.token(ENDPOINT, iat_ago=3600, exp_in=60), "issued"),
        (lambda s: s.token(ENDPOINT, iss="https://rogue.example"), "not trusted"),
        (lambda s: Signer("RS384").token(ENDPOINT), "JWT rejected"),  # another key, same kid
        (lambda s: s.token(ENDPOINT, headers={"kid": "unknown"}), "no key"),
        (lambda s: "not.a.jwt", "malformed"),
    ],
)
def test_bad_tokens_are_refused_with_the_reason(signer: Signer, make, reason: str) -> None:
    with pytest.raises(Unauthorized) as info:
        verifier(jwks=signer.jwks).verify(make(signer), [ENDPOINT])
    assert reason in info.value.message
    assert info.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_hs256_signed_with_the_public_key_is_refused(signer: Signer) -> None:
    """The classic algorithm-confusion attack: HMAC keyed with the published public key."""
    public_json = json.dumps(signer.jwks["keys"][0]).encode()
    signing_input = ".".join(_b64(json.dumps(part).encode()) for part in (
        {"alg": "HS256", "typ": "JWT", "kid": signer.kid},
        {"iss": EHR_ISSUER, "aud": ENDPOINT, "exp": 4102444800, "iat": 1, "jti": "x"}))
    mac = hmac.new(public_json, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{_b64(mac)}"
    with pytest.raises(Unauthorized, match="HS256"):
        verifier(jwks=signer.jwks).verify(forged, [ENDPOINT])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_unsigned_alg_none_is_refused(signer: Signer) -> None:
    header = _b64(b'{"alg":"none","typ":"JWT"}')
    body = _b64(json.dumps(
        {"iss": EHR_ISSUER, "aud": ENDPOINT, "exp": 4102444800, "iat": 1, "jti": "n"}).encode())
    with pytest.raises(Unauthorized, match="none"):
        verifier(jwks=signer.jwks).verify(f"{header}.{body}.", [ENDPOINT])


def test_a_token_is_accepted_once_then_refused_as_replay(signer: Signer) -> None:
    v = verifier(jwks=signer.jwks)
    token = signer.token(ENDPOINT, jti="only-once")
    v.verify(token, [ENDPOINT])
    with pytest.raises(Unauthorized, match="replay"):
        v.verify(token, [ENDPOINT])


def test_token_missing_jti_is_refused(signer: Signer) -> None:
    token = jwt.encode({"iss": EHR_ISSUER, "aud": ENDPOINT, "exp": 4102444800, "iat": 2000000000},
                       signer.private, algorithm="RS384", headers={"kid": signer.kid})
    with pytest.raises(Unauthorized, match="jti"):
        verifier(jwks=signer.jwks).verify(token, [ENDPOINT])


def test_keys_from_an_allowlisted_jku_are_fetched_once(signer: Signer) -> None:
    v = verifier(jku=[JKU])
    with responses.RequestsMock() as fake:
        fake.get(JKU, json=signer.jwks)
        v.verify(signer.token(ENDPOINT, headers={"jku": JKU}), [ENDPOINT])
        v.verify(signer.token(ENDPOINT, headers={"jku": JKU}), [ENDPOINT])
        assert len(fake.calls) == 1  # cached


def test_a_jku_off_the_allowlist_is_never_fetched(signer: Signer) -> None:
    v = verifier(jku=[JKU])
    with responses.RequestsMock() as fake:  # any request would fail the test: none registered
        with pytest.raises(Unauthorized, match="allowlist"):
            v.verify(signer.token(ENDPOINT, headers={"jku": "https://attacker.example/jwks"}),
                     [ENDPOINT])
        assert len(fake.calls) == 0


def test_replay_cache_stays_bounded_and_forgets_expired_tokens() -> None:
    now = [1000.0]
    cache = ReplayCache(max_size=3, clock=lambda: now[0])
    for i in range(5):
        assert cache.first_use("iss", f"j{i}", expires=2000)
    assert len(cache._seen) == 3
    assert not cache.first_use("iss", "j4", expires=2000)
    now[0] = 3000.0  # every token has expired: the same jti can no longer be replayed anyway
    assert cache.first_use("iss", "j4", expires=4000)
    assert len(cache._seen) == 1


def test_api_keys_match_exactly() -> None:
    keys = ApiKeys(["s3cret"])
    assert "s3cret" in keys
    assert "s3cret " not in keys and "S3CRET" not in keys and None not in keys


def test_replay_is_caught_across_workers_sharing_the_sqlite_cache(signer: Signer,
                                                                 tmp_path: object) -> None:
    """Two verifiers stand for two gunicorn worker processes on one host."""
    settings = load_settings({"trusted_issuers": [{"issuer": EHR_ISSUER, "jwks": signer.jwks}],
                              "jti_cache_path": str(tmp_path / "jti.sqlite")})  # type: ignore[operator]
    worker_1 = JwtVerifier(settings, requests.Session())
    worker_2 = JwtVerifier(settings, requests.Session())
    token = signer.token(ENDPOINT)
    worker_1.verify(token, [ENDPOINT])
    with pytest.raises(Unauthorized, match="replay"):
        worker_2.verify(token, [ENDPOINT])
    worker_2.verify(signer.token(ENDPOINT), [ENDPOINT])  # a fresh jti is fine
