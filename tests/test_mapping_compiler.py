"""The mapping compiler: what specs can say, what runs, and the exact errors of broken specs and records."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lienthong.errors import ConfigError, MappingError
from lienthong.mappings import CompiledMapping, Function, FunctionRegistry, NoArgs, SpecLoader


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def load(
    tmp_path: Path, text: str, name: str = "spec.yaml", loader: SpecLoader | None = None
) -> CompiledMapping:
    return (loader or SpecLoader()).load(write(tmp_path, name, text))


def load_errors(tmp_path: Path, text: str, name: str = "spec.yaml") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, name)
    return [str(issue) for issue in caught.value.issues]


DOSSIER: dict[str, Any] = {
    "event_id": "evt-1",
    "occurred_at": "2026-11-23T08:00:00+07:00",
    "dossier": {
        "code": "HS-1",
        "status": "received",
        "channel": "postal",
        "applicant": {"full_name": "Nguyễn Văn An", "id_number": "001090000123"},
        "documents": [{"code": "TK01", "name": "Tờ khai"}, {"code": "GT01", "name": "Giấy tờ"}],
        "fees": [{"amount": 8000, "method": "online"}, {"amount": 2000, "method": "cash"}],
    },
}


def test_paths_reach_nested_fields_list_items_every_item_and_the_root_from_inside_a_list(
    tmp_path: Path,
) -> None:
    mapping = load(
        tmp_path,
        """
        fields:
          code: dossier.code
          first_document: dossier.documents[0].code
          last_document: "dossier.documents[1].name"
          amounts: "dossier.fees[*].amount"
          missing: dossier.nothing.here
          documents:
            each: dossier.documents
            fields:
              code: code
              dossier: $.dossier.code
              position: {from: $position}
              index: {from: $index}
          codes: {each: dossier.documents, value: code}
        """,
    )
    assert mapping(DOSSIER) == {
        "code": "HS-1",
        "first_document": "TK01",
        "last_document": "Giấy tờ",
        "amounts": [8000, 2000],
        "missing": None,
        "documents": [
            {"code": "TK01", "dossier": "HS-1", "position": 1, "index": 0},
            {"code": "GT01", "dossier": "HS-1", "position": 2, "index": 1},
        ],
        "codes": ["TK01", "GT01"],
    }


@given(
    st.recursive(
        st.integers() | st.text(max_size=3),
        lambda inner: st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
        max_leaves=8,
    )
)
def test_a_path_reads_what_direct_access_reads(data: Any) -> None:
    mapping = SpecLoader().load_document(
        {"fields": {"ab": "a.b", "abc": "a.b.c", "aaaa": "a.a.a.a"}}, name="paths"
    )

    def direct(*keys: str) -> Any:
        value = data
        for key in keys:
            if value is None:
                return None
            if not isinstance(value, dict):
                raise TypeError
            value = value.get(key)
        return value

    expected = {}
    for field, keys in (("ab", "ab"), ("abc", "abc"), ("aaaa", "aaaa")):
        try:
            expected[field] = direct(*keys)
        except TypeError:
            with pytest.raises(MappingError, match="expected an object"):
                mapping(data)
            return
    assert mapping(data) == expected


def test_constants_defaults_params_and_required_fields(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        params:
          site: {description: the site}
          level: {default: 4}
        fields:
          version: {const: "2.0"}
          site: {param: site}
          level: {param: level}
          phone: {from: dossier.applicant.phone, default: ""}
          code: {from: dossier.code, required: true}
        """,
    )
    assert mapping(DOSSIER, params={"site": "S1"}) == {
        "version": "2.0",
        "site": "S1",
        "level": 4,
        "phone": "",
        "code": "HS-1",
    }
    assert mapping.missing_params({}) == ["site"]
    with pytest.raises(MappingError) as caught:
        mapping({"dossier": {}}, params={"site": "S1"}, record_id="evt-9")
    assert str(caught.value) == "code (from dossier.code): required but missing [mapping spec, record evt-9]"
    assert (caught.value.field, caught.value.source, caught.value.record) == (
        "code (from dossier.code)",
        "dossier.code",
        "evt-9",
    )


def test_conditionals_choose_a_value_or_leave_the_field_out(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        fields:
          postal:
            when: {path: dossier.channel, equals: postal}
            const: 1
            else: {const: 0}
          only_when_withdrawn:
            when: {path: dossier.status, in: [withdrawn, stopped]}
            const: true
          payments:
            cases:
              - when: {path: dossier.fees, empty: true}
                value: {const: 0}
              - when: {path: "dossier.fees[*].method", contains: online}
                value: {const: 1}
            else: {const: 2}
          has_id:
            when: {all: [{path: dossier.applicant.id_number, matches: "^\\\\d{12}$"}, {not: {path: dossier.code, exists: false}}]}
            const: yes
          cash_fees:
            each: dossier.fees
            where: {any: [{path: method, equals: cash}]}
            value: amount
        """,
    )
    assert mapping(DOSSIER) == {"postal": 1, "payments": 1, "has_id": "yes", "cash_fees": [2000]}
    in_person = {"dossier": {**DOSSIER["dossier"], "channel": "in_person", "fees": [], "status": "withdrawn"}}
    assert mapping(in_person) == {
        "postal": 0,
        "only_when_withdrawn": True,
        "payments": 0,
        "has_id": "yes",
        "cash_fees": [],
    }


def test_code_tables_strict_non_strict_and_with_a_default(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        tables:
          status: {values: {received: 1, processing: 4}}
          loose: {values: {received: 1}, strict: false}
          fallback: {values: {received: 1}, default: 0}
          numbers: {values: {1: one, 2: two}}
          flags: {values: {true: yes, false: no}}
        fields:
          strict: {from: dossier.status, table: status}
          loose: {from: dossier.channel, table: loose}
          fallback: {from: dossier.channel, table: fallback}
          number: {from: n, table: numbers}
          flag: {from: f, table: flags}
        """,
    )
    record = {"dossier": DOSSIER["dossier"], "n": "1", "f": True}
    assert mapping(record) == {"strict": 1, "loose": None, "fallback": 0, "number": "one", "flag": "yes"}
    with pytest.raises(
        MappingError,
        match=r"strict \(from dossier.status\): unknown code 'new' in table status \(known: received, processing\)",
    ):
        mapping({"dossier": {"status": "new"}, "n": 1, "f": True})


def test_xml_output_writes_attributes_repeated_elements_and_leaves_out_nulls(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        output: xml
        xml_root: HDon
        fields:
          DLHDon:
            fields:
              "@Id": {const: data}
              Ma: dossier.code
              Trong: dossier.nothing
              HHDVu:
                each: dossier.fees
                fields: {ThTien: amount}
        """,
    )
    xml = mapping.render(mapping(DOSSIER)).decode()
    assert xml == (
        "<?xml version='1.0' encoding='UTF-8'?>\n<HDon>\n  <DLHDon Id=\"data\">\n    <Ma>HS-1</Ma>\n"
        "    <HHDVu>\n      <ThTien>8000</ThTien>\n    </HHDVu>\n    <HHDVu>\n      <ThTien>2000</ThTien>\n"
        "    </HHDVu>\n  </DLHDon>\n</HDon>\n"
    )


def test_specs_compose_by_extends_include_and_mapping(tmp_path: Path) -> None:
    write(tmp_path, "codes.yaml", "tables:\n  status: {values: {received: 1}}\n")
    write(tmp_path, "person.yaml", "fields:\n  name: full_name\n")
    write(
        tmp_path,
        "base.yaml",
        """
        include: [codes.yaml]
        fields:
          code: dossier.code
          status: {from: dossier.status, table: status}
        """,
    )
    mapping = load(
        tmp_path,
        """
        extends: base.yaml
        fields:
          status: {from: dossier.status, table: status, apply: to_string}
          applicant: {from: dossier.applicant, mapping: person.yaml}
          inline:
            from: dossier.applicant
            mapping:
              fields: {id: id_number}
          documents: {each: dossier.documents, mapping: {fields: {c: code}}}
        """,
        name="child.yaml",
    )
    assert mapping.name == "child"
    assert mapping(DOSSIER) == {
        "code": "HS-1",
        "status": "1",
        "applicant": {"name": "Nguyễn Văn An"},
        "inline": {"id": "001090000123"},
        "documents": [{"c": "TK01"}, {"c": "GT01"}],
    }


def test_the_hash_covers_every_file_a_spec_uses_and_a_stored_document_compiles_to_the_same(
    tmp_path: Path,
) -> None:
    write(tmp_path, "codes.yaml", "tables:\n  status: {values: {received: 1}}\n")
    spec = "include: [codes.yaml]\nfields:\n  status: {from: dossier.status, table: status}\n"
    first = load(tmp_path, spec)
    assert load(tmp_path, spec).hash == first.hash
    again = SpecLoader().load_document(first.document, name=first.name)
    assert again.hash == first.hash
    assert again(DOSSIER) == first(DOSSIER) == {"status": 1}
    write(tmp_path, "codes.yaml", "tables:\n  status: {values: {received: 2}}\n")
    changed = load(tmp_path, spec)
    assert changed.hash != first.hash
    assert changed(DOSSIER) == {"status": 2}


def test_an_unknown_function_names_the_file_line_field_and_the_closest_name(tmp_path: Path) -> None:
    errors = load_errors(
        tmp_path,
        """
        description: portal dossier
        fields:
          MaHoSo: dossier.code
          NgayHenTra:
            from: dossier.due_at
            apply:
              - trim
              - fromat_date
        """,
        name="portal_dossier.yaml",
    )
    assert errors == [
        "portal_dossier.yaml:8 fields.NgayHenTra: unknown function 'fromat_date' (did you mean 'format_date'?)"
    ]


def test_every_problem_in_a_spec_is_listed_with_its_line(tmp_path: Path) -> None:
    errors = load_errors(
        tmp_path,
        """
        tables:
          status: {values: {received: 1}}
        fields:
          a: {from: dossier.status, table: statsu}
          b: {param: site}
          c: {from: "dossier..code"}
          d: {from: x, apply: {pad: {width: 0}}}
          e: {from: x, const: 1}
          f: {frm: x}
          g: {from: x, apply: {format_date: {format: yyyyMMddQ}}}
          h: {when: {path: x}, const: 1}
        """,
    )
    assert errors == [
        "spec.yaml:8 fields.e: give exactly one of from, const, param, each, fields, cases, mapping (got from, const)",
        "spec.yaml:9 fields.f.frm: unknown key (check its spelling; `lienthong mapping schema` lists the keys)",
        "spec.yaml:11 fields.h.when: give a path and exactly one test: equals, in, exists, empty, contains or matches",
    ]  # shape errors first: the spec is not compiled until its shape is right
    fixed = load_errors(
        tmp_path,
        """
        tables:
          status: {values: {received: 1}}
        fields:
          a: {from: dossier.status, table: statsu}
          b: {param: site}
          c: {from: "dossier..code"}
          d: {from: x, apply: {pad: {width: 0}}}
          g: {from: x, apply: {format_date: {format: yyyyMMddQ}}}
        """,
    )
    assert fixed == [
        "spec.yaml:4 fields.a.table: unknown table 'statsu' (did you mean 'status'?)",
        "spec.yaml:5 fields.b.param: unknown param 'site' (declared in params: none declared)",
        "spec.yaml:6 fields.c.from: not a path: 'dossier..code' (write keys joined by dots, e.g. dossier.applicant.kind)",
        "spec.yaml:7 fields.d: pad: width: Input should be greater than or equal to 1 (arguments: width, char, side)",
        "spec.yaml:8 fields.g: unknown date pattern letters 'Q' in 'yyyyMMddQ' (known: iso8601, yyyy, yy, MM, dd, HH, mm, ss, SSS, XXX, Z)",
    ]


def test_broken_files_and_references_are_named(tmp_path: Path) -> None:
    assert load_errors(tmp_path, "fields: [a, b\n") == [
        "spec.yaml:2 invalid YAML: column 1: the list opened with [ at line 1, column 9 is never closed: close it with ]"
    ]
    assert load_errors(tmp_path, "extends: nowhere.yaml\n") == [
        "spec.yaml:1 extends: cannot read spec nowhere.yaml: No such file or directory"
    ]
    write(tmp_path, "a.yaml", "extends: b.yaml\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    assert load_errors(tmp_path, "extends: a.yaml\n", name="c.yaml") == [
        "b.yaml:1 extends: spec files use each other in a cycle: c.yaml → a.yaml → b.yaml → a.yaml"
    ]
    write(tmp_path, "withfields.yaml", "fields: {a: b}\n")
    assert load_errors(tmp_path, "include: [withfields.yaml]\n") == [
        "spec.yaml:1 include[0]: an included file brings tables, params and personal_sources; use extends for fields"
    ]
    assert load_errors(tmp_path, "output: xml\nfields: {a: b}\n") == [
        "spec.yaml:1 output: xml needs xml_root, the name of the root element"
    ]
    assert load_errors(tmp_path, "output: xml\nxml_root: HDon\nfields: {'bad name': b}\n") == [
        "spec.yaml:3 fields.bad name: not an XML element name: 'bad name'"
    ]


PERSONAL = """
personal_sources: [dossier.applicant.id_number, dossier.applicant.full_name]
fields:
  code: dossier.code
"""


@pytest.mark.parametrize(
    ("field", "copies"),
    [
        ("id: dossier.applicant.id_number", "dossier.applicant.id_number"),
        ("who: dossier.applicant", "dossier.applicant.id_number"),  # copying a parent copies its children
        ("all: $", "dossier.applicant.id_number"),
        ("hashed: {from: dossier.applicant.id_number, apply: sha256}", "dossier.applicant.id_number"),
        (
            "name: {from: [dossier.code, dossier.applicant.full_name], apply: join}",
            "dossier.applicant.full_name",
        ),
        ("nested: {fields: {inner: dossier.applicant.full_name}}", "dossier.applicant.full_name"),
        (
            "chosen: {when: {path: dossier.code, exists: true}, const: 1, else: dossier.applicant.full_name}",
            "dossier.applicant.full_name",
        ),
        ("sub: {from: dossier.applicant, mapping: {fields: {n: full_name}}}", "dossier.applicant.full_name"),
    ],
)
def test_a_mapping_copying_personal_data_into_an_untagged_output_is_rejected(
    tmp_path: Path, field: str, copies: str
) -> None:
    errors = load_errors(tmp_path, PERSONAL + f"  {field}\n")
    (error,) = errors
    key = field.split(":", maxsplit=1)[0]
    assert error.startswith(f"spec.yaml:4 fields.{key}")
    assert f"copies personal data ({copies}) into an output not tagged personal" in error


def test_tagged_outputs_may_carry_personal_data_and_conditions_on_it_are_allowed(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        PERSONAL
        + """
  id:
    from: dossier.applicant.id_number
    personal: {basis: "Nghị định 13/2023/NĐ-CP Điều 17"}
  user:
    personal: {basis: "Quyết định 766/QĐ-TTg"}
    fields: {name: dossier.applicant.full_name}
  adult: {when: {path: dossier.applicant.id_number, exists: true}, const: 1}
""",
    )
    assert mapping(DOSSIER)["user"] == {"name": "Nguyễn Văn An"}
    assert load_errors(
        tmp_path, PERSONAL + "  id: {from: dossier.applicant.id_number, personal: {basis: ''}}\n"
    ) == ["spec.yaml:4 fields.id.personal.basis: String should have at least 3 characters"]


def test_a_runtime_failure_names_the_item_of_the_list_and_the_input_path(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        fields:
          docs:
            each: dossier.documents
            fields:
              name: {from: name, required: true, apply: upper}
        """,
    )
    record = {"dossier": {"documents": [{"name": "a"}, {"name": ["b"]}]}}
    with pytest.raises(MappingError) as caught:
        mapping(record, record_id="evt-7")
    assert (
        str(caught.value)
        == "docs[1].name (from dossier.documents[1].name): upper expects text, got list [mapping spec, record evt-7]"
    )
    with pytest.raises(MappingError, match=r"docs \(from dossier.documents\): expected a list, got str"):
        mapping({"dossier": {"documents": "none"}})
    with pytest.raises(MappingError, match="expected an object at dossier, got text"):
        mapping({"dossier": "HS-1"})


def test_plugin_functions_are_found_through_the_entry_point_and_their_bugs_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "lienthong_demo_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "lienthong_demo_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: lienthong-demo-plugin\nVersion: 1.0\n"
    )
    (site / "lienthong_demo_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[lienthong.mappings]\nreverse = lienthong_demo_plugin:FUNCTIONS\n"
    )
    (site / "lienthong_demo_plugin.py").write_text(
        textwrap.dedent(
            """
            from lienthong.mappings import Function, NoArgs

            def _reverse(args, context):
                return lambda value: value[::-1]

            def _broken(args, context):
                return lambda value: 1 / 0

            FUNCTIONS = [
                Function("reverse", _reverse, NoArgs, "Reverse text."),
                Function("broken", _broken, NoArgs, "Always fails."),
            ]
            """
        )
    )
    monkeypatch.syspath_prepend(str(site))
    registry = FunctionRegistry.with_plugins()
    assert {"reverse", "broken", "format_date"} <= set(registry.names())
    mapping = load(
        tmp_path,
        "fields:\n  a: {from: dossier.code, apply: reverse}\n  b: {from: dossier.code, apply: broken}\n",
        loader=SpecLoader(registry),
    )
    with pytest.raises(MappingError, match=r"b \(from dossier.code\): ZeroDivisionError: division by zero"):
        mapping(DOSSIER)
    assert SpecLoader(
        FunctionRegistry.builtin().adding(Function("shout", lambda a, c: str.upper, NoArgs, ""))
    ).load(write(tmp_path, "shout.yaml", "fields: {a: {from: dossier.code, apply: shout}}"))(DOSSIER) == {
        "a": "HS-1"
    }


CODES = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)


@given(st.dictionaries(CODES, st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=8), CODES)
def test_a_strict_table_maps_every_known_code_and_refuses_every_other(
    table: dict[str, int], code: str
) -> None:
    mapping = SpecLoader().load_document(
        {"tables": {"t": {"values": table}}, "fields": {"out": {"from": "code", "table": "t"}}}, name="codes"
    )
    if code in table:
        assert mapping({"code": code}) == {"out": table[code]}
    else:
        with pytest.raises(MappingError, match=f"unknown code '{code}' in table t"):
            mapping({"code": code})


def test_a_number_json_cannot_store_is_a_load_error(tmp_path: Path) -> None:
    assert load_errors(tmp_path, "fields:\n  big: {const: 99999999999999999999999}\n") == [
        "spec holds a value JSON cannot store: Integer exceeds 64-bit range"
    ]
