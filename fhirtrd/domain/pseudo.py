"""Patient-level pseudo-resistance findings: bipolar, thyroid, sleep apnoea, substance use (clinical-spec §6).

Sources (seed; clinical-spec §6): bipolar/manic/cyclothymic diagnosis → misdiagnosis; untreated
hypothyroidism or TSH > 4.5 mIU/L in 12 months; OSA or AHI ≥ 15 without CPAP; active substance use.
"""

from __future__ import annotations

from fhirtrd.domain.facts import Facts
from fhirtrd.domain.model import Finding

MEDICAL = ("medical-thyroid", "medical-osa", "substance-use")


def patient_findings(facts: Facts) -> list[Finding]:
    out: list[Finding] = []
    bipolar = facts.conditions("bipolar")
    if bipolar:
        out.append(Finding("misdiagnosis-bipolar", tuple(sorted(c.ref for c in bipolar)),
                           "bipolar, manic/hypomanic or cyclothymic diagnosis on record"))
    thyroid_refs: list[str] = []
    hypo = facts.conditions("hypothyroidism", active_only=True)
    treated = any(c.kind == "medication" and facts.role(c) == "thyroid" and c.end >= facts.lookback
                  for c in facts.courses)
    if hypo and not treated:
        thyroid_refs += [c.ref for c in hypo]
    tsh = [m for m in facts.scores.get("tsh", []) if m.when >= facts.lookback]
    if tsh and tsh[-1].value > facts.rules.t("tsh_max"):
        thyroid_refs.append(tsh[-1].ref)
    if thyroid_refs:
        out.append(Finding("medical-thyroid", tuple(sorted(thyroid_refs)),
                           "untreated hypothyroidism or TSH above the reference limit"))
    osa = [c.ref for c in facts.conditions("osa", active_only=True)]
    osa += [m.ref for m in facts.scores.get("ahi", []) if m.value >= facts.rules.t("ahi_min")]
    if osa and not any(p.concept == "cpap" for p in facts.record.procedures):
        out.append(Finding("medical-osa", tuple(sorted(osa)), "obstructive sleep apnoea with no CPAP recorded"))
    substance = [c.ref for c in facts.conditions("substance-use", active_only=True)
                 if "in-remission" not in c.concepts]
    if substance:
        out.append(Finding("substance-use", tuple(sorted(substance)), "active alcohol or substance use disorder"))
    return out
