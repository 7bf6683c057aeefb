"""Official reference data: police forces, councils and the other organisations the hub knows.

The CSV files in ``hub.reference.data`` are the single source; this module only reads and
checks them, so a bad edit to a file fails loudly at first use rather than seeding bad rows.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

_FORCE_CODE = re.compile(r"[A-Z][A-Z0-9_]*")
_FORCE_ONS_CODE = {"england": re.compile(r"E23\d{6}"), "wales": re.compile(r"W15\d{6}")}
_COUNCIL_CODE = {"england": re.compile(r"E(06|08|09|10)\d{6}"), "wales": re.compile(r"W06\d{6}")}
_FORCE_NATIONS = frozenset({"england", "wales", "great_britain"})
_COUNCIL_KINDS = frozenset(
    {
        "county",
        "unitary",
        "metropolitan_district",
        "london_borough",
        "sui_generis",
        "welsh_principal_area",
    }
)
_OTHER_KINDS = frozenset({"inspectorate", "hub_operator"})

# BTP has no police force area of its own: it polices the railways across England, Wales
# and Scotland, so it sits alongside the territorial force of every council.
BTP = "BTP"


@dataclass(frozen=True, slots=True)
class ForceRecord:
    code: str
    name: str
    nation: str
    ons_code: str | None


@dataclass(frozen=True, slots=True)
class CouncilRecord:
    code: str
    name: str
    nation: str
    kind: str
    force_code: str


@dataclass(frozen=True, slots=True)
class OtherOrganisationRecord:
    code: str
    name: str
    kind: str


def _rows(filename: str, header: list[str]) -> list[tuple[int, dict[str, str]]]:
    text = files("hub.reference.data").joinpath(filename).read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != header:
        raise ValueError(f"{filename}: header should be {','.join(header)}")
    rows: list[tuple[int, dict[str, str]]] = []
    seen: set[str] = set()
    for row in reader:
        if None in row or any(value is None for value in row.values()):
            raise ValueError(f"{filename} line {reader.line_num}: wrong number of fields")
        if row["code"] in seen:
            raise ValueError(f"{filename} line {reader.line_num}: duplicate code {row['code']}")
        seen.add(row["code"])
        rows.append((reader.line_num, row))
    return rows


@cache
def police_forces() -> tuple[ForceRecord, ...]:
    filename = "police_forces.csv"
    forces: list[ForceRecord] = []
    for line, row in _rows(filename, ["code", "name", "nation", "ons_code"]):
        where = f"{filename} line {line}"
        code, nation, ons_code = row["code"], row["nation"], row["ons_code"] or None
        if not _FORCE_CODE.fullmatch(code):
            raise ValueError(f"{where}: bad code {code!r}")
        if nation not in _FORCE_NATIONS:
            raise ValueError(f"{where}: unknown nation {nation!r}")
        # Only territorial forces have a police force area, and its code says which nation.
        pattern = _FORCE_ONS_CODE.get(nation)
        if pattern is None:
            valid = ons_code is None
        else:
            valid = ons_code is not None and pattern.fullmatch(ons_code) is not None
        if not valid:
            raise ValueError(f"{where}: bad ONS code {row['ons_code']!r} for nation {nation}")
        forces.append(ForceRecord(code, row["name"], nation, ons_code))
    return tuple(forces)


@cache
def councils() -> tuple[CouncilRecord, ...]:
    filename = "councils.csv"
    territorial = {force.code for force in police_forces() if force.ons_code is not None}
    result: list[CouncilRecord] = []
    for line, row in _rows(filename, ["code", "name", "nation", "kind", "force_code"]):
        where = f"{filename} line {line}"
        code, nation, kind, force_code = row["code"], row["nation"], row["kind"], row["force_code"]
        pattern = _COUNCIL_CODE.get(nation)
        if pattern is None:
            raise ValueError(f"{where}: unknown nation {nation!r}")
        if not pattern.fullmatch(code):
            raise ValueError(f"{where}: {code!r} is not a GSS council code for {nation}")
        if kind not in _COUNCIL_KINDS:
            raise ValueError(f"{where}: unknown kind {kind!r}")
        if force_code not in territorial:
            raise ValueError(f"{where}: {force_code!r} is not a territorial police force")
        result.append(CouncilRecord(code, row["name"], nation, kind, force_code))
    return tuple(result)


@cache
def other_organisations() -> tuple[OtherOrganisationRecord, ...]:
    filename = "other_organisations.csv"
    result: list[OtherOrganisationRecord] = []
    for line, row in _rows(filename, ["code", "name", "kind"]):
        where = f"{filename} line {line}"
        if not _FORCE_CODE.fullmatch(row["code"]):
            raise ValueError(f"{where}: bad code {row['code']!r}")
        if row["kind"] not in _OTHER_KINDS:
            raise ValueError(f"{where}: unknown kind {row['kind']!r}")
        result.append(OtherOrganisationRecord(row["code"], row["name"], row["kind"]))
    return tuple(result)


@cache
def coverage() -> tuple[tuple[str, str], ...]:
    """(force_code, council_code) pairs: each council's territorial force, then BTP."""
    if BTP not in {force.code for force in police_forces()}:
        raise ValueError(f"police_forces.csv: {BTP} is missing")
    return tuple(
        pair
        for council in councils()
        for pair in ((council.force_code, council.code), (BTP, council.code))
    )
