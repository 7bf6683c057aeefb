import re
from collections import Counter
from pathlib import Path

import pytest

from hub.reference import catalogue
from hub.reference.catalogue import (
    CouncilRecord,
    ForceRecord,
    councils,
    coverage,
    other_organisations,
    police_forces,
)


def _forces() -> dict[str, ForceRecord]:
    return {force.code: force for force in police_forces()}


def _councils() -> dict[str, CouncilRecord]:
    return {council.code: council for council in councils()}


def test_there_are_43_territorial_forces_plus_btp() -> None:
    forces = police_forces()
    territorial = [force for force in forces if force.ons_code is not None]
    assert len(forces) == 44
    assert len(territorial) == 43
    assert [force.code for force in forces if force.ons_code is None] == ["BTP"]
    assert _forces()["BTP"].nation == "great_britain"


def test_territorial_forces_split_39_england_4_wales() -> None:
    nations = Counter(force.nation for force in police_forces() if force.ons_code is not None)
    assert nations == {"england": 39, "wales": 4}
    welsh = {force.code for force in police_forces() if force.nation == "wales"}
    assert welsh == {"DYFED_POWYS", "GWENT", "NORTH_WALES", "SOUTH_WALES"}


def test_force_ons_codes() -> None:
    forces = _forces()
    assert forces["MET"].ons_code == "E23000001"
    assert forces["CITY_OF_LONDON"].ons_code == "E23000034"
    assert forces["DYFED_POWYS"].ons_code == "W15000004"
    ons_codes = [force.ons_code for force in police_forces() if force.ons_code is not None]
    assert len(set(ons_codes)) == 43
    assert {code for code in ons_codes if code.startswith("E23")} == {
        f"E23{n:06d}" for n in range(1, 40)
    }
    assert {code for code in ons_codes if code.startswith("W15")} == {
        f"W15{n:06d}" for n in range(1, 5)
    }


def test_council_counts() -> None:
    assert Counter(council.nation for council in councils()) == {"england": 153, "wales": 22}
    assert Counter(council.kind for council in councils()) == {
        "county": 21,
        "unitary": 62,
        "metropolitan_district": 36,
        "london_borough": 32,
        "sui_generis": 2,
        "welsh_principal_area": 22,
    }


def test_council_codes_are_gss_codes_for_their_nation() -> None:
    pattern = {"england": r"(E06|E08|E09|E10)\d{6}", "wales": r"W06\d{6}"}
    bad = [c.code for c in councils() if not re.fullmatch(pattern[c.nation], c.code)]
    assert bad == []


def test_codes_are_unique_across_all_files() -> None:
    codes = [force.code for force in police_forces()]
    codes += [council.code for council in councils()]
    codes += [org.code for org in other_organisations()]
    assert [code for code, n in Counter(codes).items() if n > 1] == []


def test_every_council_has_a_territorial_force_of_its_own_nation() -> None:
    forces = _forces()
    mismatched = [
        council.code
        for council in councils()
        if forces[council.force_code].ons_code is None
        or forces[council.force_code].nation != council.nation
    ]
    assert mismatched == []


def test_every_territorial_force_covers_at_least_one_council() -> None:
    used = {council.force_code for council in councils()}
    territorial = {force.code for force in police_forces() if force.ons_code is not None}
    assert territorial - used == set()


def test_london_is_met_except_the_city() -> None:
    london = {c.code: c.force_code for c in councils() if c.code.startswith("E09")}
    assert len(london) == 33
    assert london.pop("E09000001") == "CITY_OF_LONDON"
    assert set(london.values()) == {"MET"}


def test_spot_checks() -> None:
    by_code = _councils()
    expected = {
        "W06000015": ("Cardiff", "wales", "welsh_principal_area", "SOUTH_WALES"),
        "E09000001": ("City of London", "england", "sui_generis", "CITY_OF_LONDON"),
        "E08000025": ("Birmingham", "england", "metropolitan_district", "WEST_MIDLANDS"),
        "E06000052": ("Cornwall", "england", "unitary", "DEVON_CORNWALL"),
        "E06000053": ("Isles of Scilly", "england", "sui_generis", "DEVON_CORNWALL"),
        "E06000063": ("Cumberland", "england", "unitary", "CUMBRIA"),
        "E06000066": ("Somerset", "england", "unitary", "AVON_SOMERSET"),
        "E10000016": ("Kent", "england", "county", "KENT"),
        "E09000033": ("Westminster", "england", "london_borough", "MET"),
        "W06000023": ("Powys", "wales", "welsh_principal_area", "DYFED_POWYS"),
    }
    for code, (name, nation, kind, force_code) in expected.items():
        assert by_code[code] == CouncilRecord(code, name, nation, kind, force_code)


def test_abolished_councils_are_gone() -> None:
    # Pre-reorganisation counties and unitaries, and Barnsley and Sheffield's pre-2025 codes.
    abolished = {
        "E10000002",
        "E10000006",
        "E10000009",
        "E10000021",
        "E10000023",
        "E10000027",
        "E06000028",
        "E06000029",
        "E06000048",
        "E08000020",
        "E08000016",
        "E08000019",
    }
    assert abolished & _councils().keys() == set()


def test_other_organisations() -> None:
    kinds = {org.code: org.kind for org in other_organisations()}
    assert kinds == {
        "OFSTED": "inspectorate",
        "HMICFRS": "inspectorate",
        "CIW": "inspectorate",
        "HUB": "hub_operator",
    }


def test_coverage_is_territorial_force_plus_btp_for_every_council() -> None:
    pairs = coverage()
    assert len(pairs) == 2 * 175
    assert len(set(pairs)) == len(pairs)
    assert {council for force, council in pairs if force == "BTP"} == _councils().keys()
    territorial = {council: force for force, council in pairs if force != "BTP"}
    assert territorial == {c.code: c.force_code for c in councils()}
    assert ("CITY_OF_LONDON", "E09000001") in pairs
    assert ("MET", "E09000001") not in pairs


FORCES_HEADER = "code,name,nation,ons_code\n"
GOOD_FORCES = (
    FORCES_HEADER + "MET,Metropolitan Police Service,england,E23000001\nBTP,BTP,great_britain,\n"
)
COUNCILS_HEADER = "code,name,nation,kind,force_code\n"


@pytest.mark.parametrize(
    ("forces", "council_rows", "message"),
    [
        (
            FORCES_HEADER + "MET,Met,scotland,E23000001\n",
            "",
            "police_forces.csv line 2: unknown nation",
        ),
        (FORCES_HEADER + "met,Met,england,E23000001\n", "", "police_forces.csv line 2: bad code"),
        (
            FORCES_HEADER + "MET,Met,england,W15000001\n",
            "",
            "police_forces.csv line 2: bad ONS code",
        ),
        (
            GOOD_FORCES + "MET,Met again,england,E23000001\n",
            "",
            "police_forces.csv line 4: duplicate",
        ),
        (
            GOOD_FORCES,
            "E09000002,Barking,england,borough,MET\n",
            "councils.csv line 2: unknown kind",
        ),
        (GOOD_FORCES, "E07000001,X,england,unitary,MET\n", "councils.csv line 2: 'E07000001'"),
        (
            GOOD_FORCES,
            "E09000002,Barking,england,london_borough,BTP\n",
            "councils.csv line 2: 'BTP'",
        ),
        (GOOD_FORCES, "E09000002,Barking,england,london_borough,NOPE\n", "councils.csv line 2"),
    ],
)
def test_bad_rows_are_rejected_with_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forces: str, council_rows: str, message: str
) -> None:
    (tmp_path / "police_forces.csv").write_text(forces, encoding="utf-8")
    (tmp_path / "councils.csv").write_text(COUNCILS_HEADER + council_rows, encoding="utf-8")
    monkeypatch.setattr(catalogue, "files", lambda _package: tmp_path)
    catalogue.police_forces.cache_clear()
    catalogue.councils.cache_clear()
    try:
        with pytest.raises(ValueError, match=re.escape(message)):
            catalogue.councils()
    finally:
        catalogue.police_forces.cache_clear()
        catalogue.councils.cache_clear()
