"""Medication request/statement/administration/dispense → exposures and dispenses."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any


from fhirtrd.fhir import elements
from fhirtrd.domain.model import (
    Dispense,
    MedicationExposure,
)
from fhirtrd.fhir.inbound.common import (
    _ATC_ANTIDEPRESSANT,
    _DOSAGE_ELEMENT,
    _MG,
    DURATION_DAYS,
    PERIOD_DAYS,
    AdapterBase,
    RecordBuilder,
    _codings,
    _num,
    _obj,
    _ref,
    _texts,
    _unit,
    parse_date,
)
from fhirtrd.terminology import ATC, Product

#: the strength unit of a liquid product in mappings/medication_products.csv (a dose in mL × this is mg)
PER_ML = "mg/mL"


def _seen(texts: list[str], concept: Any) -> str:
    """What a medication[x] showed: its text or display and its codes, for the unresolved-medication warning."""
    parts = [repr(texts[0][:120])] if texts else []
    codes = [f"{c.get('system')}|{c.get('code')}" for c in elements.codings(concept, "medication[x]")][:3]
    if codes:
        parts.append(f"code {', '.join(codes)}")
    return " ".join(parts)


class MedicationsMixin(AdapterBase):
    """Medication request/statement/administration/dispense → exposures and dispenses."""

    def resolve(self, concept: Any, reference: Any, contained: dict[str, dict[str, Any]],
                aliases: dict[str, str]) -> tuple[Product | None, str | None, bool]:
        """(resolved ingredient, problem, waiting) for a medication[x]; waiting = Medication not seen yet."""
        texts: list[str] = []
        med: dict[str, Any] | None = None
        if concept is not None:
            hit = self._lookup_codes(concept)
            if hit:
                return hit, None, False
            texts = _texts(concept, "medicationCodeableConcept")
        elif isinstance(reference, dict):
            ref = reference.get("reference")
            if isinstance(ref, str):
                ref = aliases.get(ref, ref)
                med = contained.get(ref[1:]) if ref.startswith("#") else self.medications.get(ref)
                if med is None and "/Medication/" in ref:
                    med = self.medications.get("Medication/" + ref.rsplit("/Medication/", 1)[1].split("/")[0])
            if med is None:
                if isinstance(reference.get("display"), str):
                    texts = [reference["display"]]
                else:
                    return None, f"Medication {ref!r} not found", isinstance(ref, str) and not ref.startswith("#")
            else:
                hit = self._lookup_codes(med.get("code"))
                if hit:
                    return hit, None, False
                hit = self._from_ingredients(med)
                if hit:
                    return hit, None, False
                texts = _texts(med.get("code"), "medicationReference(Medication).code")
        for text in texts:
            ingredient = self.t.ingredient_in_text(text)
            if ingredient:
                strengths = {float(m) for m in _MG.findall(text)}
                strength = strengths.pop() if len(strengths) == 1 else None
                return Product(ingredient, strength, "mg"), None, False
        atc = [c.get("code") for c in _codings(concept, "medicationCodeableConcept") if c.get("system") == ATC and isinstance(c.get("code"), str)]
        if any(code.startswith(_ATC_ANTIDEPRESSANT) for code in atc):  # type: ignore[union-attr]
            return None, f"antidepressant (ATC {atc[0]}) whose ingredient is not in the mappings", False
        seen = _seen(texts, concept if concept is not None else (med or {}).get("code"))
        if not seen and isinstance(reference, dict):
            seen = f"Medication {str(reference.get('reference'))[:120]!r}"
        return None, f"{seen or 'a medication with no code or text'} is not a medication of the mappings", False

    def _lookup_codes(self, concept: Any) -> Product | None:
        best: Product | None = None
        for c in _codings(concept, "medication[x]"):
            p = self.t.products.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
            if p is not None and (best is None or (best.strength is None and p.strength is not None)):
                best = p
        if best is None:
            return None
        strength = best.strength
        if strength is None:  # an ingredient code: a strength may still be in the display
            for text in _texts(concept, "medication[x]"):
                found = {float(m) for m in _MG.findall(text)}
                if len(found) == 1 and self.t.ingredient_in_text(text) == best.ingredient:
                    strength = found.pop()
                    break
        return Product(best.ingredient, strength, best.unit)

    def _from_ingredients(self, med: dict[str, Any]) -> Product | None:
        found: list[Product] = []
        for ing in elements.objects(med.get("ingredient"), "Medication.ingredient"):
            if not isinstance(ing, dict):
                continue
            hit = self._lookup_codes(ing.get("itemCodeableConcept"))
            if hit is None:
                for text in _texts(ing.get("itemCodeableConcept"), "Medication.ingredient.itemCodeableConcept"):
                    name = self.t.ingredient_in_text(text)
                    if name:
                        hit = Product(name, None, "mg")
            if hit is None:
                continue
            strength = _obj(ing, "strength")
            num, den = strength.get("numerator") or {}, strength.get("denominator") or {}
            value, unit = _num(num.get("value"), "Medication.ingredient.strength.numerator.value"), num.get("unit") or num.get("code")
            if value is not None and isinstance(unit, str):
                factor = self.t.dose_units.get(unit)
                per = _num(den.get("value"), "Medication.ingredient.strength.denominator.value") or 1.0
                if factor and factor[0] == "mass":
                    hit = Product(hit.ingredient, value * factor[1] / per, "mg")
            found.append(hit)
        return found[0] if len(found) == 1 else None

    def _medication_use(self, b: RecordBuilder, r: dict[str, Any], source: str, aliases: dict[str, str],
                        *, final: bool = False) -> None:
        rtype = r["resourceType"]
        status = r.get("status")
        contained = {c["id"]: c for c in elements.objects(r.get("contained"), "contained") if isinstance(c.get("id"), str)}
        resolved, problem, waiting = self.resolve(r.get("medicationCodeableConcept"), r.get("medicationReference"),
                                                  contained, aliases)
        if resolved is None:
            if waiting and not final:
                b.pending.append((r, source))
            elif problem:
                b.warn(r, f"medication not resolved: {problem}; not used", element=f"{rtype}.medication[x]",
                       source=source, code="unresolved-medication")
            elif r.get("medicationCodeableConcept") is None and r.get("medicationReference") is None:
                b.warn(r, "no medication[x]; not used", element=f"{rtype}.medication[x]", source=source)
            return
        drug = self.t.rules.drugs[resolved.ingredient]
        if not self._valid(b, r, source):
            return
        ref = _ref(r)
        if rtype == "MedicationDispense":
            self._dispense(b, r, resolved, ref, source)
            return
        if rtype == "MedicationStatement" and status in ("not-taken", "intended"):
            return
        if rtype == "MedicationRequest" and (status in ("draft", "unknown")
                                             or r.get("intent") in ("proposal", "plan")):
            return
        if rtype == "MedicationAdministration":
            if status not in ("completed", "in-progress"):
                return
            day = parse_date(r.get("effectiveDateTime")) or parse_date(_obj(r, "effectivePeriod").get("start"))
            if day is None:
                b.warn(r, "administration has no date; not used", element="MedicationAdministration.effective[x]",
                       source=source)
                return
            dosage = _obj(r, "dosage")
            dose = self._amount(b, r, dosage.get("dose"), resolved, "MedicationAdministration.dosage.dose", source)
            b.administrations[(resolved.ingredient, day)].append((self._plausible(b, r, drug.ingredient, dose, source), ref))
            return
        dosages = r.get("dosageInstruction" if rtype == "MedicationRequest" else "dosage")
        element = f"{rtype}.{'dosageInstruction' if rtype == 'MedicationRequest' else 'dosage'}"
        daily = self._daily_dose(b, r, dosages, resolved, element, source)
        daily = self._plausible(b, r, drug.ingredient, daily, source)
        reason = self._stop_reason(r)
        bedtime, prn = self._timing_flags(dosages)
        reasons, reason_refs = self._reasons(r, aliases)
        if rtype == "MedicationStatement":
            period = _obj(r, "effectivePeriod")
            start = parse_date(period.get("start")) or parse_date(r.get("effectiveDateTime")) or parse_date(r.get("dateAsserted"))
            end = parse_date(period.get("end"), end=True)
            if start is None:
                b.warn(r, "statement has no effective date; not used", element="MedicationStatement.effective[x]", source=source)
                return
            if end is None and status != "active" and "effectiveDateTime" in r:
                end = start
            b.add_exposure(MedicationExposure(
                ingredient=resolved.ingredient, source="statement", start=start, end=end, daily_dose=daily, ref=ref,
                active=status == "active", stopped=status == "stopped", stop_reason=reason,
                bedtime=bedtime, prn=prn, reasons=reasons), reason_refs)
            return
        dispense = _obj(r, "dispenseRequest")
        validity = _obj(dispense, "validityPeriod")
        start = parse_date(r.get("authoredOn")) or parse_date(validity.get("start"))
        if start is None:
            b.warn(r, "order has no authoredOn date; not used", element="MedicationRequest.authoredOn", source=source)
            return
        supply = self._supply_days(b, r, dispense, daily, resolved)
        end = _bounds_end(dosages, start)  # clinical-spec §2 v2: boundsPeriod.end whatever the status
        if status in ("stopped", "cancelled"):
            stop = _stop_date(r, validity, start, supply)
            if stop is not None and (end is None or stop < end):
                end = stop
        b.add_exposure(MedicationExposure(
            ingredient=resolved.ingredient, source="request", start=start, end=end,
            daily_dose=daily, ref=ref, active=status in ("active", "on-hold"),
            stopped=status in ("stopped", "cancelled"), stop_reason=reason, supply_days=supply,
            end_assumed=status == "active" and supply is None and end is None,
            bedtime=bedtime, prn=prn, reasons=reasons), reason_refs)

    def _timing_flags(self, dosages: Any) -> tuple[bool, bool]:
        """(bedtime, prn) of the dosages: timing.code HS or `when` HS; asNeeded on every dosage."""
        items = elements.objects(dosages, "dosage")
        bedtime = False
        for d in items:
            timing = _obj(d, "timing", "dosage.timing")
            codes = {c.get("code") for c in _codings(timing.get("code"), "dosage.timing.code")}
            when = _obj(timing, "repeat", "dosage.timing.repeat").get("when")
            bedtime = bedtime or "HS" in codes or (isinstance(when, list) and "HS" in when)
        prn = bool(items) and all(d.get("asNeededBoolean") is True or isinstance(d.get("asNeededCodeableConcept"), dict)
                                  for d in items)
        return bedtime, prn

    def _stop_reason(self, r: dict[str, Any]) -> str | None:
        reasons = r.get("statusReason")
        concepts = reasons if isinstance(reasons, list) else [reasons] if isinstance(reasons, dict) else []
        for concept in concepts:
            for c in _codings(concept, "statusReason"):
                hit = self.t.stop_reasons.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
                if hit:
                    return hit
            for text in _texts(concept, "statusReason"):
                hit = self.t.stop_reason_in_text(text)
                if hit:
                    return hit
        return None

    def _supply_days(self, b: RecordBuilder, r: dict[str, Any], dispense: dict[str, Any], daily: float | None,
                     resolved: Product) -> int | None:
        repeats = _num(dispense.get("numberOfRepeatsAllowed"), "dispenseRequest.numberOfRepeatsAllowed") or 0.0
        duration = _obj(dispense, "expectedSupplyDuration")
        value = _num(duration.get("value"), "dispenseRequest.expectedSupplyDuration.value")
        unit = _unit(duration) or "d"
        if value is not None and unit in DURATION_DAYS:
            return elements.days(value * DURATION_DAYS[unit] * (1 + repeats), "dispenseRequest.expectedSupplyDuration")
        quantity = _obj(dispense, "quantity")
        units = self._units_per_day(r.get("dosageInstruction"))
        qty = _num(quantity.get("value"), "dispenseRequest.quantity.value")
        if qty and units:
            return elements.days(qty / units * (1 + repeats), "dispenseRequest.quantity")
        return None

    def _dispense(self, b: RecordBuilder, r: dict[str, Any], resolved: Product, ref: str, source: str) -> None:
        if r.get("status") not in ("completed", None):
            return
        when = parse_date(r.get("whenHandedOver")) or parse_date(r.get("whenPrepared"))
        if when is None:
            b.warn(r, "dispense has no whenHandedOver date; not used", element="MedicationDispense.whenHandedOver", source=source)
            return
        supply = _obj(r, "daysSupply")
        days = _num(supply.get("value"), "daysSupply.value")
        quantity = _num(_obj(r, "quantity").get("value"), "quantity.value")
        units = self._units_per_day(r.get("dosageInstruction"))
        if days is None and quantity and units:
            days = quantity / units
        days = elements.days(days, "daysSupply")
        if days is None:
            b.warn(r, "dispense has no usable daysSupply; not used for adherence", element="MedicationDispense.daysSupply",
                   source=source)
            return
        daily = self._daily_dose(b, r, r.get("dosageInstruction"), resolved, "MedicationDispense.dosageInstruction", source)
        if daily is None and quantity and resolved.strength:
            unit = _obj(r, "quantity").get("unit") or _obj(r, "quantity").get("code")
            kind = self.t.dose_units.get(unit) if isinstance(unit, str) else ("unit", 1.0)
            if kind and kind[0] == ("volume" if resolved.unit == PER_ML else "unit"):
                daily = quantity * kind[1] * resolved.strength / days
        daily = self._plausible(b, r, resolved.ingredient, daily, source)
        b.dispenses.append(Dispense(ingredient=resolved.ingredient, handed_over=when, days_supply=max(1, round(days)),
                                    daily_dose=daily, ref=ref))

    # -- dose arithmetic -------------------------------------------------------------------------

    def _per_day(self, dosage: dict[str, Any]) -> float | None:
        timing = _obj(dosage, "timing")
        repeat = timing.get("repeat") if isinstance(timing.get("repeat"), dict) else None
        if repeat:
            freq = _num(repeat.get("frequency"), "dosage.timing.repeat.frequency") or 1.0
            period = _num(repeat.get("period"), "dosage.timing.repeat.period") or 1.0
            unit = repeat.get("periodUnit") if isinstance(repeat.get("periodUnit"), str) else "d"
            if unit in PERIOD_DAYS and period > 0:
                return freq / (period * PERIOD_DAYS[unit])
        for c in _codings(timing.get("code"), "dosage.timing.code"):
            hit = self.t.timing_codes.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
            if hit:
                return hit
        return None

    def _units_per_day(self, dosages: Any) -> float | None:
        """Dose units (tablets) per day of the first dosage, for supply arithmetic."""
        if not isinstance(dosages, list) or not dosages or not isinstance(dosages[0], dict):
            return None
        per_day = self._per_day(dosages[0])
        amount = _dose_quantity(dosages[0])
        if per_day is None or amount is None:
            return None
        value, unit = amount
        kind = self.t.dose_units.get(unit or "1")
        if kind and kind[0] == "volume":
            return value * kind[1] * per_day  # mL per day: a supply in mL lasts quantity / this
        return value * per_day if kind and kind[0] == "unit" else None

    def _amount(self, b: RecordBuilder, r: dict[str, Any], quantity: Any, resolved: Product, element: str,
                source: str) -> float | None:
        """A dose quantity in mg: mass units convert, tablets multiply by the product strength."""
        if not isinstance(quantity, dict):
            return None
        value = _num(quantity.get("value"), "dosage.doseAndRate.doseQuantity.value")
        if value is None:
            return None
        unit = _unit(quantity) or "1"
        kind = self.t.dose_units.get(unit) or self.t.dose_units.get(unit.lower())
        if kind is None:
            b.warn(r, f"dose unit {unit!r} is not known; daily dose unknown", element=element, source=source,
                   code="unknown-unit")
            return None
        if kind[0] == "mass":
            return value * kind[1]
        liquid = resolved.unit == PER_ML
        if resolved.strength is None or liquid != (kind[0] == "volume"):
            if kind[0] == "volume":  # clinical-spec §2 v2: a liquid dose needs the product's strength per mL
                b.warn(r, f"dose in {unit} but the strength per mL of {resolved.ingredient} is not known; "
                          "daily dose unknown", element=element, source=source, code="unknown-strength")
            return None
        return value * kind[1] * resolved.strength  # tablets × mg per tablet, or mL × mg per mL

    def _daily_dose(self, b: RecordBuilder, r: dict[str, Any], dosages: Any, resolved: Product, element: str,
                    source: str) -> float | None:
        """mg/day: dose per administration × administrations per day, summed over concurrent dosages."""
        if not isinstance(dosages, list) or not dosages:
            return None
        first_seq = next((d.get("sequence") for d in dosages if isinstance(d, dict)), None)
        total = 0.0
        for i, dosage in enumerate(dosages):
            if not isinstance(dosage, dict) or dosage.get("sequence") != first_seq:
                continue
            amount = _dose_quantity(dosage)
            per_day = self._per_day(dosage)
            if amount is not None and per_day is None:  # frequency unknown: an absurd single dose still warns
                once = self._amount(b, r, {"value": amount[0], "unit": amount[1]}, resolved,
                                    f"{element}[{i}].doseAndRate.doseQuantity", source)
                self._plausible(b, r, resolved.ingredient, once, source)
            if amount is None or per_day is None:
                return None
            mg = self._amount(b, r, {"value": amount[0], "unit": amount[1]}, resolved,
                              f"{element}[{i}].doseAndRate.doseQuantity", source)
            if mg is None:
                return None
            total += mg * per_day
        return round(total, 4) if total > 0 else None

    def _plausible(self, b: RecordBuilder, r: dict[str, Any], ingredient: str, dose: float | None,
                   source: str) -> float | None:
        drug = self.t.rules.drugs[ingredient]
        if dose is None or drug.min_daily_dose is None:
            return dose
        if dose > drug.min_daily_dose * self.t.rules.t("absurd_dose_factor") or dose <= 0:
            b.warn(r, f"daily dose {dose:g} {drug.dose_unit} of {ingredient} is implausible; dose treated as unknown",
                   element=f"{r['resourceType']}.{_DOSAGE_ELEMENT.get(r['resourceType'], 'dosage')}", source=source,
                   code="implausible-dose")
            return None
        return dose


def _bounds_end(dosages: Any, start: date) -> date | None:
    """The end of the first dosage's timing bounds (boundsPeriod.end, or start + boundsDuration)."""
    if not isinstance(dosages, list) or not dosages or not isinstance(dosages[0], dict):
        return None
    timing = _obj(dosages[0], "timing")
    repeat = _obj(timing, "repeat")
    period = _obj(repeat, "boundsPeriod")
    end = parse_date(period.get("end"), end=True)
    if end is not None:
        return end
    duration = _obj(repeat, "boundsDuration")
    value, unit = _num(duration.get("value"), "dosage.timing.repeat.boundsDuration.value"), _unit(duration)
    span = elements.days(value * DURATION_DAYS[unit], "dosage.timing.repeat.boundsDuration") if (
        value is not None and unit in DURATION_DAYS) else None
    if span is not None:
        return start + timedelta(days=span - 1)
    return None


STATUS_CHANGED = "http://hl7.org/fhir/5.0/StructureDefinition/extension-MedicationRequest.statusChanged"


def _stop_date(r: dict[str, Any], validity: dict[str, Any], start: date, supply: int | None) -> date | None:
    """The stop date of a stopped/cancelled order (clinical-spec §2 v2).

    `dispenseRequest.validityPeriod.end` when it falls before the supply's end (or there is no
    supply); else the status-change date, which R4 has no element for: the R5 element
    `MedicationRequest.statusChanged` carried by its cross-version extension (HL7 xver-r5.r4).
    """
    validity_end = parse_date(validity.get("end"), end=True)
    supply_end = start + timedelta(days=supply - 1) if supply else None
    if validity_end is not None and validity_end >= start and (supply_end is None or validity_end < supply_end):
        return validity_end
    for ext in elements.objects(r.get("extension"), "extension"):
        if ext.get("url") == STATUS_CHANGED:
            changed = parse_date(ext.get("valueDateTime"), end=False)
            if changed is not None:
                return max(changed, start)
    return None


def _dose_quantity(dosage: dict[str, Any]) -> tuple[float, str | None] | None:
    for dr in elements.objects(dosage.get("doseAndRate"), "dosage.doseAndRate"):
        if not isinstance(dr, dict):
            continue
        q = dr.get("doseQuantity")
        if isinstance(q, dict) and _num(q.get("value"), "dosage.doseAndRate.doseQuantity.value") is not None:
            unit = q.get("code") or q.get("unit")
            return float(q["value"]), unit if isinstance(unit, str) else None
        rng = dr.get("doseRange")
        if isinstance(rng, dict) and isinstance(rng.get("low"), dict) and _num(rng["low"].get("value"), "dosage.doseAndRate.doseRange.low.value") is not None:
            low = rng["low"]
            unit = low.get("code") or low.get("unit")
            return float(low["value"]), unit if isinstance(unit, str) else None
    return None

