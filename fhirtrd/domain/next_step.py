"""Next step for the latest trial of the current episode (seed; clinical-spec §6 table, v2).

The latest trial is the latest antidepressant, psychotherapy or ECT trial of the current episode
(not an augmentation, adjunct, advanced or non-depressive-indication trial; ties: the higher dose
relative to its minimum). v2 rows: an advanced treatment in progress → `continue`; no trial and the
latest score in the remission range → `monitor`; no trial otherwise → `start-treatment`.
The first matching row, top to bottom, is the strategy; `consider-advanced-options` goes in `also`
at MDD stage ≥ III or SAD stage II. Symptom-targeted augmentation (seed): residual insomnia →
mirtazapine, fatigue or sexual side effects → bupropion (mappings/symptom_targets.csv).
"""

from __future__ import annotations

from fhirtrd.domain.facts import Facts, score_key
from fhirtrd.domain.model import NextStep, Trial
from fhirtrd.domain.pseudo import MEDICAL

NOT_ADEQUATE = {"inadequate-dose", "inadequate-duration", "inadequate-psychotherapy", "inadequate-agent"}


def latest_trial(current: list[Trial]) -> Trial | None:
    """The trial the next step looks at (clinical-spec §6 v2)."""
    candidates = [t for t in current if t.kind in ("medication", "psychotherapy", "ect")
                  and "non-depressive-indication" not in t.findings]

    def relative_dose(t: Trial) -> float:
        if t.daily_dose is None or not t.min_adequate_dose:
            return 0.0
        return t.daily_dose / t.min_adequate_dose

    return max(candidates, key=lambda t: (t.start, relative_dose(t), t.treatment), default=None)


def in_remission(facts: Facts, disorder: str) -> bool:
    """The latest score of the disorder's instruments is at or below its remission cut-off."""
    series = [(m, inst) for inst in facts.instruments(disorder) for m in facts.scores.get(inst.key, [])]
    if not series:
        return False
    m, inst = max(series, key=lambda pair: score_key(pair[0]))
    return inst.remission_max is not None and m.value <= inst.remission_max


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
    advanced = [t for t in current if t.kind == "advanced" and t.ongoing]
    if advanced:
        names = ", ".join(sorted({t.treatment for t in advanced}))
        return NextStep("continue", (), (), f"advanced treatment in progress: {names}")
    if latest is None:
        if in_remission(facts, disorder):
            return NextStep("monitor", also, (), "no treatment trial; the latest score is in the remission range")
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
