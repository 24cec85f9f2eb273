"""Next step for the latest trial of the current episode (seed; clinical-spec §6 table).

The first matching row, top to bottom, is the strategy; `consider-advanced-options` goes in `also`
at MDD stage ≥ III or SAD stage II. Symptom-targeted augmentation (seed): residual insomnia →
mirtazapine, fatigue or sexual side effects → bupropion (mappings/symptom_targets.csv).
"""

from __future__ import annotations

from fhirtrd.domain.facts import Facts
from fhirtrd.domain.model import NextStep, Trial
from fhirtrd.domain.pseudo import MEDICAL

NOT_ADEQUATE = {"inadequate-dose", "inadequate-duration", "inadequate-psychotherapy", "inadequate-agent"}


def next_step(facts: Facts, disorder: str, stage: str, latest: Trial | None, codes: set[str],
              current: list[Trial]) -> NextStep:
    rules = facts.rules
    also: tuple[str, ...] = ()
    if (disorder == "mdd" and stage in ("III", "IV", "V")) or (disorder == "sad" and stage == "II"):
        also = ("consider-advanced-options",)
    suggestions: tuple[str, ...] = ()
    if "misdiagnosis-bipolar" in codes:
        return NextStep("reassess-diagnosis", also, (), "a bipolar-spectrum diagnosis is on record")
    if codes & set(MEDICAL) or (latest and "nonadherence" in latest.findings):
        why = ", ".join(sorted(codes & set(MEDICAL))
                        + (["nonadherence"] if latest and "nonadherence" in latest.findings else []))
        return NextStep("address-pseudo-resistance", also, (), f"resolve first: {why}")
    if latest is None:
        return NextStep("start-treatment", also, (), "no treatment trial on record")
    if latest.ongoing and "inadequate-dose" in latest.findings:
        return NextStep("optimize-dose", also, (), f"{latest.treatment} below the minimum adequate dose")
    if latest.ongoing and not latest.adequate and latest.daily_dose is not None \
            and "inadequate-dose" not in latest.findings and latest.weeks_adequate < rules.t("adequate_weeks"):
        return NextStep("extend-trial", also, (), f"{latest.treatment} at an adequate dose for "
                                                   f"{latest.weeks_adequate:g} of {rules.t('adequate_weeks'):g} weeks")
    if "intolerance" in latest.findings or latest.outcome == "nonresponse":
        same_class = [t for t in current if t.failed and t is not latest
                      and t.treatment_class == latest.treatment_class]
        why = "intolerance" if "intolerance" in latest.findings else "nonresponse"
        if same_class:
            why += f"; switch to a class other than {latest.treatment_class} after a same-class failure"
        return NextStep("switch", also, (), why)
    if latest.outcome in ("partial-response", "response"):
        if disorder == "mdd":
            suggestions = symptom_targets(facts, latest)
        return NextStep("augment", also, suggestions, f"{latest.outcome} without remission on {latest.treatment}")
    if latest.outcome == "remission":
        return NextStep("continue", also, (), f"remission on {latest.treatment}")
    if not latest.adequate and NOT_ADEQUATE & set(latest.findings):
        return NextStep("address-pseudo-resistance", also, (),
                        f"the last trial ({latest.treatment}) was not adequate: " + ", ".join(latest.findings))
    if "dose-unknown" in latest.caveats:
        return NextStep("gather-evidence", also, (), f"the daily dose of {latest.treatment} is not recorded; "
                                                      "adequacy cannot be judged")
    return NextStep("gather-evidence", also, (), f"no paired scores for {latest.treatment}: "
                                                  "measure the response on a rating scale")


def symptom_targets(facts: Facts, latest: Trial) -> tuple[str, ...]:
    """Ingredients suggested for residual symptoms (seed), never the current one."""
    positive = facts.rules.t("phq9_item_positive_min")
    symptoms = set()
    for symptom, item in (("insomnia", "phq9-item3"), ("fatigue", "phq9-item4")):
        items = facts.scores.get(item, [])
        if facts.conditions(symptom, active_only=True) or (items and items[-1].value >= positive):
            symptoms.add(symptom)
    if facts.conditions("sexual-dysfunction", active_only=True):
        symptoms.add("sexual-dysfunction")
    out: list[str] = []
    for symptom in sorted(symptoms):
        for ingredient in facts.rules.symptom_targets.get(symptom, ()):
            if ingredient != latest.treatment and ingredient not in out:
                out.append(ingredient)
    return tuple(out)
