"""The mapping spec format: what integrators write in YAML, validated by pydantic.

A spec maps one input record (an event, a ``CongDan`` record, a payment) to one output document. See the
README's "Writing a mapping" guide; ``lienthong mapping schema`` prints the JSON Schema of this model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SOURCE_KEYS = ("from", "const", "param", "each", "fields", "cases", "mapping")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Condition(_Model):
    """A test on the input. Give ``path`` and one test, or combine conditions with all/any/not."""

    path: str | None = Field(default=None, description="What to test, e.g. dossier.channel.")
    equals: Any = Field(default=None, description="This very value (text, number, true/false or null).")
    in_: list[Any] | None = Field(default=None, alias="in", description="One of these values.")
    exists: bool | None = Field(default=None, description="true: present and not null.")
    empty: bool | None = Field(default=None, description="true: missing, null, empty text or empty list.")
    contains: Any = Field(default=None, description="A list holding this value (use a [*] path).")
    matches: str | None = Field(
        default=None,
        description="A regular expression the text matches, in RE2 syntax (Python's without lookaround or"
        " backreferences: linear time on any input).",
    )
    all: list[Condition] | None = Field(default=None, description="Every one of these conditions holds.")
    any: list[Condition] | None = Field(default=None, description="At least one of these holds.")
    not_: Condition | None = Field(default=None, alias="not", description="This condition does not hold.")

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [
            k
            for k in ("equals", "in_", "exists", "empty", "contains", "matches")
            if k in self.model_fields_set
        ]
        combinators = [k for k in ("all", "any", "not_") if k in self.model_fields_set]
        if combinators:
            if tests or self.path is not None or len(combinators) > 1:
                raise ValueError("a condition is either one of all/any/not, or a path with one test")
        elif self.path is None or len(tests) != 1:
            raise ValueError(
                "give a path and exactly one test: equals, in, exists, empty, contains or matches"
            )
        return self


class Personal(_Model):
    """This output carries personal data, lawfully: say on what basis."""

    basis: str = Field(min_length=3, description="The legal basis, e.g. Nghị định 13/2023/NĐ-CP Điều 17.")


class Case(_Model):
    when: Condition
    value: FieldSpec | str = Field(description="What the field is when the condition holds.")


Call = str | dict[str, Any]
"""One function call: ``trim``, or ``{format_date: {format: dd/MM/yyyy}}``, or ``{pad: [5, "0"]}``."""


class FieldSpec(_Model):
    """How one output field is computed. A bare string instead of this object is a ``from`` path."""

    from_: str | list[str] | None = Field(default=None, alias="from", description="Input path(s).")
    const: Any = Field(default=None, description="A fixed value.")
    param: str | None = Field(default=None, description="A value the route's config supplies.")
    each: str | None = Field(default=None, description="A list path: the field is a list, one per item.")
    where: Condition | None = Field(default=None, description="With each: keep only items that match.")
    fields: dict[str, FieldSpec | str] | None = Field(default=None, description="A nested object.")
    value: FieldSpec | str | None = Field(default=None, description="With each: one value per item.")
    cases: list[Case] | None = Field(default=None, description="The first case whose condition holds.")
    mapping: str | SpecBody | None = Field(
        default=None, description="Another spec (file or inline), applied to the value or to each item."
    )
    default: Any = Field(default=None, description="Used when the input is missing, null or empty text.")
    required: bool = Field(default=False, description="Missing input is an error for this record.")
    table: str | None = Field(default=None, description="A code table to translate through.")
    apply: list[Call] | Call | None = Field(default=None, description="Functions, applied in order.")
    when: Condition | None = Field(default=None, description="Only when this holds; else `else` or omitted.")
    else_: FieldSpec | str | None = Field(
        default=None, alias="else", description="What the field is when `when` does not hold."
    )
    personal: Personal | None = Field(
        default=None, description="The field carries personal data: say on what legal basis."
    )
    description: str | None = Field(default=None, description="What the field is, for the spec's readers.")

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        given = [k for k in SOURCE_KEYS if _field_for(k) in self.model_fields_set]
        if "each" in given or "from" in given:
            # each says which list, and fields/mapping what each item becomes; from + mapping maps a value
            given = [k for k in given if k not in ("fields", "mapping")]
        if len(given) != 1:
            listed = ", ".join(SOURCE_KEYS)
            raise ValueError(
                f"give exactly one of {listed}" + (f" (got {', '.join(given)})" if given else "")
            )
        if self.where is not None and self.each is None:
            raise ValueError("where filters the items of each; add each")
        if self.value is not None and self.each is None:
            raise ValueError("value gives each item's value; add each")
        if self.each is not None and self.fields is None and self.value is None and self.mapping is None:
            raise ValueError("each needs fields, value or mapping to say what each item becomes")
        if self.else_ is not None and self.when is None and self.cases is None:
            raise ValueError("else goes with when or cases")
        return self


def _field_for(key: str) -> str:
    return "from_" if key == "from" else key


class Param(_Model):
    """A value the route's config supplies (`params:` of a delivery), read with `{param: NAME}`."""

    description: str = Field(default="", description="What the value is, for the route's author.")
    default: Any = Field(default=None, description="Used when the route gives no value.")
    required: bool = Field(
        default=True, description="The route must give a value (unless there is a default)."
    )


class Table(_Model):
    """A code table: the input's codes translated to the output's."""

    description: str = Field(default="", description="What the table translates.")
    values: dict[str | bool | int, Any] = Field(description="Input code → output code.")
    strict: bool = Field(default=True, description="An unknown code is an error (not a null).")
    default: Any = Field(default=None, description="For unknown codes; makes the table non-strict.")


class SpecBody(_Model):
    """The part of a spec that maps: also the shape of an inline ``mapping:``."""

    output: Literal["json", "xml"] = Field(default="json", description="What the mapping makes: json or xml.")
    xml_root: str | None = Field(default=None, description="The root element, for output: xml.")
    missing: Literal["null", "omit"] = Field(
        default="null", description="What a field with no value becomes: null, or left out."
    )
    params: dict[str, Param] = Field(default_factory=dict, description="The values routes supply, by name.")
    tables: dict[str, Table] = Field(default_factory=dict, description="Code tables, by name.")
    personal_sources: list[str] = Field(
        default_factory=list,
        description="Input paths holding personal data (a path covers everything under it).",
    )
    fields: dict[str, FieldSpec | str] = Field(
        default_factory=dict,
        description="The output's fields, in order: name → how it is made (or an input path).",
    )

    @model_validator(mode="after")
    def _xml_root(self) -> SpecBody:
        if self.output == "xml" and not self.xml_root:
            raise ValueError("output: xml needs xml_root, the name of the root element")
        return self


class Spec(SpecBody):
    """A mapping spec file."""

    name: str | None = Field(default=None, description="Defaults to the file name without .yaml.")
    description: str = Field(default="", description="What the mapping is for, in a line.")
    extends: str | None = Field(
        default=None, description="A spec whose fields, tables and params this one starts from."
    )
    include: list[str] = Field(
        default_factory=list, description="Files whose tables, params and personal_sources this spec uses."
    )


Case.model_rebuild()
FieldSpec.model_rebuild()
