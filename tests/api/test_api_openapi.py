"""The OpenAPI description and docs page generated from the routes and marshmallow schemas."""

from __future__ import annotations

from typing import Any


def test_openapi_describes_every_operation_with_the_contract_schemas(open_app: Any) -> None:
    spec = open_app.test_client().get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert {"/$classify", "/Patient/{patient_id}/$classify", "/cds-services",
            "/cds-services/{service_id}", "/cds-services/{service_id}/feedback",
            "/healthz", "/readyz"} <= set(spec["paths"])
    classify = spec["paths"]["/$classify"]["post"]
    ok = classify["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/Results"}
    assert "application/fhir+json" in ok
    assert {"as_of"} <= {p["name"] for p in classify["parameters"]}
    assessment = spec["components"]["schemas"]["Assessment"]["properties"]
    assert {"stage", "treatment_resistant", "failed_classes", "trials"} <= set(assessment)
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "412" in spec["paths"]["/cds-services/{service_id}"]["post"]["responses"]


def test_docs_page_is_served(open_app: Any) -> None:
    r = open_app.test_client().get("/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert "/openapi.json" in r.get_data(as_text=True)
