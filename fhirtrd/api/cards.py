"""CDS Hooks cards from one patient's assessment (the §9 contract dict) and from draft orders.

Pure functions: values in, card dicts out. Card fields follow CDS Hooks 2.0 (Card attributes):
summary under 140 characters, indicator info/warning/critical, source, GitHub-flavoured markdown
detail, suggestions with create actions and a selectionBehavior.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fhirtrd.domain.rules import Rules

SUMMARY_MAX = 139  # "<140-character summary" (CDS Hooks 2.0, Card attributes)
STAGES = ("0", "I", "II", "III", "IV", "V")
DISORDER_LABEL = {"mdd": "Depression (MDD)", "sad": "Social anxiety disorder"}
BIPOLAR = "misdiagnosis-bipolar"
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
_NS = uuid.UUID("6b1f3c2e-54a1-4d0e-9a57-3f0c2b7d9e11")  # fhirtrd card ids (uuid5 namespace)


@dataclass(frozen=True, slots=True)
class DraftOrder:
    """A draft antidepressant order: the ingredient it names and the daily dose it would give."""

    ref: str
    ingredient: str
    daily_dose: float | None


def card_uuid(*parts: str) -> str:
    """A stable card/suggestion id for one hook call, so feedback can be matched to it."""
    return str(uuid.uuid5(_NS, "/".join(parts)))


def summary(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1].rstrip() + "…"


def stage_rank(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else 0


def _words(code: str) -> str:
    return code.replace("-", " ")


def _md(value: Any) -> str:
    """A value for a markdown table cell."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_md(v) for v in value) or "—"
    return str(value).replace("|", "\\|").replace("\n", " ")


def patient_view_cards(
    result: Mapping[str, Any],
    *,
    source: Mapping[str, Any],
    call_id: str,
    actions: Callable[[str], list[dict[str, Any]]] | None = None,
    kinds: dict[str, str] | None = None,
    link: Callable[[str, str | None], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One card per assessment with something to say: stage ≥ I, pseudo-resistance, or bipolar.

    `actions(disorder)` gives the create actions that record that disorder's assessment; `kinds`
    receives each card's kind by uuid (`<disorder>-bipolar|-stage|-pseudo-resistance`);
    `link(disorder, finding)`, when given, the card's SMART app link (finding: the bipolar or
    first pseudo-resistance code, None for a stage).
    """
    cards: list[dict[str, Any]] = []
    for a in result.get("assessments", []):
        bipolar = BIPOLAR in a.get("pseudo_resistance", [])
        rank = stage_rank(a["stage"])
        if rank == 0 and not a.get("pseudo_resistance"):
            continue
        disorder = a["disorder"]
        card_id = card_uuid(call_id, "patient-view", disorder)
        card: dict[str, Any] = {
            "uuid": card_id,
            "summary": summary(_assessment_summary(a, bipolar)),
            "indicator": "warning" if bipolar or rank >= 2 else "info",
            "detail": assessment_markdown(a),
            "source": dict(source),
        }
        if kinds is not None:
            kinds[card_id] = f"{disorder}-" + (
                "bipolar" if bipolar else "stage" if rank else "pseudo-resistance")
        if link is not None:
            finding = BIPOLAR if bipolar else next(iter(a.get("pseudo_resistance") or []), None)
            card["links"] = [link(disorder, finding)]
        create = actions(disorder) if actions else []
        if create:
            card["suggestions"] = [
                {
                    "label": f"Record the {DISORDER_LABEL.get(disorder, disorder)} assessment",
                    "uuid": card_uuid(card_id, "record"),
                    # explicit (CDS Hooks 2.0 makes it optional; some EHR clients require it):
                    # recording the assessment is offered, not urged
                    "isRecommended": False,
                    "actions": create,
                }
            ]
            card["selectionBehavior"] = "at-most-one"
        cards.append(card)
    return cards


def _assessment_summary(a: Mapping[str, Any], bipolar: bool) -> str:
    label = DISORDER_LABEL.get(a["disorder"], a["disorder"])
    if bipolar:
        return f"{label}: possible bipolar disorder — resistance staging not applicable; reassess"
    strategy = _words(a.get("next_step", {}).get("strategy", ""))
    if stage_rank(a["stage"]) == 0:
        found = ", ".join(_words(p) for p in a.get("pseudo_resistance", []))
        return f"{label}: possible pseudo-resistance ({found}) — next step: {strategy}"
    n = a["failed_adequate_trials"]
    provisional = " (provisional)" if a.get("status") == "provisional" else ""
    resistant = ", treatment-resistant" if a.get("treatment_resistant") else ""
    trials = "trial" if n == 1 else "trials"
    return (
        f"{label} stage {a['stage']}{provisional}: {n} failed adequate {trials}{resistant}"
        f" — next step: {strategy}"
    )


def assessment_markdown(a: Mapping[str, Any]) -> str:
    """The card detail: verdict, next step, trial table, findings and caveats, with evidence."""
    lines: list[str] = []
    scale = "Thase–Rush stage" if a["disorder"] == "mdd" else "Stage"
    classes = ", ".join(a.get("failed_classes", [])) or "none"
    lines.append(
        f"**{scale} {a['stage']}** ({a['status']}) · treatment-resistant: "
        f"{_md(a['treatment_resistant'])} · failed adequate trials: {a['failed_adequate_trials']} "
        f"(classes: {classes})"
    )
    nxt = a.get("next_step") or {}
    step = f"**Next step:** {_words(nxt.get('strategy', '—'))}"
    if nxt.get("also"):
        step += "; also " + ", ".join(_words(x) for x in nxt["also"])
    if nxt.get("suggestions"):
        step += ". Suggested: " + ", ".join(nxt["suggestions"])
    lines += ["", step + "."]
    msm = a.get("msm")
    if msm and msm.get("total") is not None:
        lines += ["", f"**Maudsley Staging Method:** {msm['total']} ({msm.get('band') or '—'})"]
    trials = a.get("trials") or []
    if trials:
        lines += [
            "",
            "| treatment | class | start | end | adequate | adherence | outcome | failed | evidence |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for t in trials:
            end = "ongoing" if t.get("ongoing") else t.get("end")
            lines.append(
                "| "
                + " | ".join(
                    _md(v)
                    for v in (
                        t["treatment"], t.get("class"), t.get("start"), end, t.get("adequate"),
                        t.get("adherence"), t.get("outcome"), t.get("failed"), t.get("evidence"),
                    )
                )
                + " |"
            )
    findings = a.get("findings") or []
    if findings:
        lines += ["", "**Pseudo-resistance findings**", ""]
        for f in findings:
            detail = f" — {f['detail']}" if f.get("detail") else ""
            lines.append(f"- {_words(f['code'])}{detail} (evidence: {_md(f.get('evidence'))})")
    if a.get("caveats"):
        lines += ["", "**Caveats:** " + ", ".join(_words(c) for c in a["caveats"])]
    if a.get("advisories"):
        lines += ["", "**Advisories:** " + ", ".join(_words(c) for c in a["advisories"])]
    return "\n".join(lines)


def order_cards(
    result: Mapping[str, Any] | None,
    drafts: Sequence[DraftOrder],
    rules: Rules,
    *,
    source: Mapping[str, Any],
    call_id: str,
    kinds: dict[str, str] | None = None,
    override_reasons: Sequence[Mapping[str, str]] = (),
) -> list[dict[str, Any]]:
    """What each draft antidepressant order would mean given the patient's trials so far.

    `override_reasons` (Codings) are offered on every card, for the EHR to ask why it is overridden.

    `kinds` receives each card's kind by uuid (`order-bipolar|-repeat|-class|-dose`).
    """
    mdd = None
    if result is not None:
        mdd = next((a for a in result.get("assessments", []) if a["disorder"] == "mdd"), None)
    cards: list[dict[str, Any]] = []
    for order in drafts:
        drug = rules.drug(order.ingredient)
        if drug is None or drug.role != "antidepressant":
            continue
        messages: list[tuple[str, str, str]] = []  # (kind, summary, detail)
        if mdd is not None:
            if BIPOLAR in mdd.get("pseudo_resistance", []):
                messages.append((
                    "bipolar",
                    f"{order.ingredient}: antidepressant ordered for a patient with possible "
                    "bipolar disorder — reassess the diagnosis",
                    assessment_markdown(mdd),
                ))
            failed = [
                t for t in mdd.get("trials", [])
                if t.get("failed") and t.get("adequate") and t.get("class") == drug.drug_class
            ]
            same = [t for t in failed if t["treatment"] == order.ingredient]
            if same:
                messages.append((
                    "repeat",
                    f"{order.ingredient} already failed an adequate trial "
                    f"({same[-1].get('start')} – {same[-1].get('end')})",
                    _trials_markdown(same),
                ))
            if len(failed) >= 2:
                nth = _ORDINALS[min(len(failed), len(_ORDINALS) - 1)]
                messages.append((
                    "class",
                    f"{order.ingredient}: {nth} {drug.drug_class} after {_count(len(failed))} failed adequate "
                    f"{drug.drug_class} trials — a different class or augmentation is recommended",
                    _trials_markdown(failed),
                ))
        minimum = drug.min_daily_dose
        if order.daily_dose is not None and minimum is not None and order.daily_dose < minimum:
            messages.append((
                "dose",
                f"{order.ingredient} {order.daily_dose:g} {drug.dose_unit}/day: dose below the "
                f"adequate minimum ({minimum:g} {drug.dose_unit}/day)",
                f"The minimum adequate daily dose of {order.ingredient} is {minimum:g} "
                f"{drug.dose_unit}/day (source: {drug.source}). A trial below it does not count "
                f"as an adequate trial.",
            ))
        for kind, text, detail in messages:
            if kinds is not None:
                kinds[card_uuid(call_id, order.ref, kind)] = f"order-{kind}"
            cards.append({
                "uuid": card_uuid(call_id, order.ref, kind),
                "summary": summary(text),
                "indicator": "warning",
                "detail": detail,
                "source": dict(source),
                **({"overrideReasons": [dict(r) for r in override_reasons]} if override_reasons else {}),
            })
    return cards


def _count(n: int) -> str:
    return ("zero", "one", "two", "three", "four", "five")[n] if n < 6 else str(n)


def _trials_markdown(trials: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "| treatment | start | end | daily dose | outcome | evidence |",
        "|---|---|---|---|---|---|",
    ]
    for t in trials:
        lines.append(
            "| " + " | ".join(_md(v) for v in (
                t["treatment"], t.get("start"), t.get("end"), t.get("daily_dose"),
                t.get("outcome"), t.get("evidence"),
            )) + " |"
        )
    return "\n".join(lines)
