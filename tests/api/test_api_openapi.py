"""The OpenAPI description and docs page generated from the routes and marshmallow schemas."""

from __future__ import annotations

from typing import Any


def test_openapi_describes_every_operation_with_the_contract_schemas(open_app: Any) -> None:
    spec = open_app.test_client().get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/$classify", "/Patient/{patient_id}/$classify", "/cds-services",
        "/cds-services/fhirtrd-patient-view", "/cds-services/fhirtrd-order-select",
        "/cds-services/fhirtrd-order-sign", "/cds-services/{service_id}/feedback",
        "/healthz", "/readyz"}
    classify = spec["paths"]["/$classify"]["post"]
    ok = classify["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/Results"}
    assert "application/fhir+json" in ok
    assert {"as_of"} <= {p["name"] for p in classify["parameters"]}
    assessment = spec["components"]["schemas"]["Assessment"]["properties"]
    assert {"stage", "treatment_resistant", "failed_classes", "trials"} <= set(assessment)
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    sign = spec["paths"]["/cds-services/fhirtrd-order-sign"]["post"]
    assert "412" in sign["responses"]
    request = sign["requestBody"]["content"]["application/json"]["schema"]
    assert request["properties"]["hook"]["enum"] == ["order-sign"]
    assert request["properties"]["context"]["required"] == ["patientId", "draftOrders"]
    feedback = spec["paths"]["/cds-services/{service_id}/feedback"]
    service_id = next(p for p in feedback["parameters"] if p["name"] == "service_id")
    assert service_id["schema"]["enum"] == ["fhirtrd-order-select", "fhirtrd-order-sign", "fhirtrd-patient-view"]
    error = sign["responses"]["400"]["content"]["application/json"]["schema"]
    assert error["required"] == ["error", "message"]
    outcome = classify["responses"]["400"]["content"]["application/fhir+json"]["schema"]
    assert outcome["properties"]["resourceType"]["enum"] == ["OperationOutcome"]
    # auth off: the document does not claim a bearer token is needed
    assert "security" not in classify and "401" not in classify["responses"]


def test_docs_page_is_served(open_app: Any) -> None:
    r = open_app.test_client().get("/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert "/openapi.json" in r.get_data(as_text=True)
