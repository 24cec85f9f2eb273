"""FHIR resources, CDS Hooks requests and signed JWTs for the HTTP door's tests."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
EHR_ISSUER = "https://ehr.example.org"
EHR_FHIR = "https://ehr.example.org/fhir"
SERVICE_URL = "https://cds.example.org"
PATIENT_ID = "pat-1"
AS_OF = "2024-03-01"
# RxNorm ingredient codes as in mappings/medications.csv (clinical-spec §8)
INGREDIENT_CODES = {"citalopram": "2556", "sertraline": "36437", "escitalopram": "321988",
                    "bupropion": "42347"}


def patient(pid: str = PATIENT_ID) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1980-04-02",
            "name": [{"family": "Example", "given": ["Alex"]}]}


def mdd_condition(pid: str = PATIENT_ID, onset: str = "2022-11-01") -> dict[str, Any]:
    return {
        "resourceType": "Condition", "id": f"{pid}-mdd",
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            "code": "confirmed"}]},
        "code": {"coding": [{"system": SNOMED, "code": "370143000",
                             "display": "Major depressive disorder"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": onset,
    }


def bipolar_condition(pid: str = PATIENT_ID) -> dict[str, Any]:
    c = mdd_condition(pid, "2021-01-01")
    c["id"] = f"{pid}-bipolar"
    c["code"] = {"coding": [{"system": SNOMED, "code": "13746004", "display": "Bipolar disorder"}]}
    return c


def dosage(mg: float) -> list[dict[str, Any]]:
    return [{
        "text": f"{mg:g} mg once daily",
        "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg",
                                          "system": "http://unitsofmeasure.org", "code": "mg"}}],
    }]


def medication(ingredient: str) -> dict[str, Any]:
    return {"coding": [{"system": RXNORM, "code": INGREDIENT_CODES[ingredient],
                        "display": ingredient}], "text": ingredient}


def statement(rid: str, ingredient: str, mg: float, start: str, end: str,
              pid: str = PATIENT_ID) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement", "id": rid, "status": "completed",
        "medicationCodeableConcept": medication(ingredient),
        "subject": {"reference": f"Patient/{pid}"},
        "effectivePeriod": {"start": start, "end": end},
        "dosage": dosage(mg),
    }


def phq9(rid: str, value: int, when: str, pid: str = PATIENT_ID) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": rid, "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "survey"}]}],
        "code": {"coding": [{"system": LOINC, "code": "44261-6", "display": "PHQ-9 total"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "{score}",
                          "system": "http://unitsofmeasure.org", "code": "{score}"},
    }


def two_failed_ssri_trials(pid: str = PATIENT_ID) -> list[dict[str, Any]]:
    """MDD with two failed adequate SSRI trials (citalopram 20 mg, sertraline 100 mg; PHQ-9 flat)."""
    return [
        patient(pid), mdd_condition(pid),
        statement(f"{pid}-cit", "citalopram", 20, "2023-01-02", "2023-04-30", pid),
        phq9(f"{pid}-phq-1", 19, "2022-12-28", pid), phq9(f"{pid}-phq-2", 18, "2023-04-25", pid),
        statement(f"{pid}-ser", "sertraline", 100, "2023-05-08", "2023-09-30", pid),
        phq9(f"{pid}-phq-3", 18, "2023-05-05", pid), phq9(f"{pid}-phq-4", 17, "2023-09-25", pid),
    ]


def bundle(resources: list[dict[str, Any]], kind: str = "collection") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind,
            "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r}
                      for r in resources]}


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    b = bundle(resources, "searchset")
    b["total"] = len(resources)
    return b


def draft_order(rid: str, ingredient: str, mg: float, pid: str = PATIENT_ID) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest", "id": rid, "status": "draft", "intent": "order",
        "medicationCodeableConcept": medication(ingredient),
        "subject": {"reference": f"Patient/{pid}"},
        "dosageInstruction": dosage(mg),
        "dispenseRequest": {"expectedSupplyDuration": {"value": 30, "unit": "days",
                                                        "system": "http://unitsofmeasure.org",
                                                        "code": "d"}},
    }


def prefetch_for(templates: dict[str, str], resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A prefetch object as an EHR fills it: each template key with its search's matches."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    out: dict[str, Any] = {}
    for key, template in templates.items():
        rtype = template.split("?")[0].split("/")[0]
        if "?" not in template:
            matches = by_type.get(rtype, [])
            out[key] = matches[0] if matches else None
        elif "_tag=" in template:  # fhirtrd's own outputs, by tag
            system, code = template.split("_tag=", 1)[1].split("|", 1)
            out[key] = searchset([r for r in by_type.get(rtype, []) if any(
                t.get("system") == system and t.get("code") == code for t in (r.get("meta") or {}).get("tag", []))])
        elif rtype == "Observation":
            codes = template.split("code=", 1)[1]
            wanted = {tuple(c.split("|", 1)) for c in codes.split(",")}
            out[key] = searchset([
                o for o in by_type.get("Observation", [])
                if any((c["system"], c["code"]) in wanted for c in o["code"]["coding"])])
        else:
            out[key] = searchset(by_type.get(rtype, []))
    return out


def hook_request(hook: str, context: dict[str, Any], prefetch: dict[str, Any] | None = None,
                 **extra: Any) -> dict[str, Any]:
    """A request shaped like those of the public CDS Hooks sandbox."""
    body: dict[str, Any] = {
        "hookInstance": str(uuid.uuid4()),
        "hook": hook,
        "context": {"userId": "Practitioner/example", **context},
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    body.update(extra)
    return body


# --- keys and JWTs -----------------------------------------------------------------------------


class Signer:
    """A CDS client's key pair and a JWK Set with its public key."""

    def __init__(self, alg: str = "RS384", kid: str = "ehr-key-1") -> None:
        self.alg = alg
        self.kid = kid
        if alg.startswith("ES"):
            self.private = ec.generate_private_key(ec.SECP384R1())
            algo: Any = jwt.algorithms.ECAlgorithm
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            algo = jwt.algorithms.RSAAlgorithm
        public = algo.to_jwk(self.private.public_key(), as_dict=True)
        public.update(kid=kid, alg=alg, use="sig")
        self.jwks = {"keys": [public]}

    def token(self, aud: str, *, iss: str = EHR_ISSUER, exp_in: int = 300, iat_ago: int = 0,
              jti: str | None = None, headers: dict[str, Any] | None = None,
              **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": iss, "sub": "ehr-client", "aud": aud, "iat": now - iat_ago,
                   "exp": now + exp_in, "jti": jti or str(uuid.uuid4()), **claims}
        return jwt.encode(payload, self.private, algorithm=self.alg,
                          headers={"kid": self.kid, "typ": "JWT", **(headers or {})})
