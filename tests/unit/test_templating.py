from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.templating import (
    TemplateError,
    check_template,
    make_renderer,
    placeholders,
    render,
    valid_template_name,
)

COLUMNS = ["Telefon", "Ism", "Qarz summasi"]


def test_placeholders_in_order_each_once() -> None:
    template = "Salom {Ism}! {qarz summasi} so'm. {ism}, to'lang: {Telefon}"

    assert placeholders(template) == ["Ism", "qarz summasi", "Telefon"]


def test_doubled_braces_are_literal_not_placeholders() -> None:
    assert placeholders("Kod: {{ism}} va {{ {Ism} }}") == ["Ism"]
    assert render("Kod: {{ism}} va {{{Ism}}}", {"Ism": "Ali"}) == "Kod: {ism} va {Ali}"


@pytest.mark.parametrize(
    ("template", "problem", "position"),
    [
        ("Salom {ism", "unclosed", 6),
        ("Salom ism}", "unopened", 9),
        ("Salom {} !", "empty", 6),
        ("Salom {   }", "empty", 6),
        ("{a{b}", "unclosed", 0),
        ("{ism}} ok", "unopened", 5),
    ],
)
def test_bad_braces_name_the_problem_and_where(template: str, problem: str, position: int) -> None:
    with pytest.raises(TemplateError) as caught:
        placeholders(template)

    assert caught.value.kind == "syntax"
    assert (caught.value.problem, caught.value.position) == (problem, position)


def test_check_template_names_unknown_placeholders_as_written() -> None:
    template = "Hurmatli { ISM }, {Familiya} {qarz   summasi} {Manzil} {familiya}"

    assert check_template(template, COLUMNS) == ["Familiya", "Manzil"]


def test_check_template_passes_bad_syntax_on() -> None:
    with pytest.raises(TemplateError):
        check_template("Salom {ism", COLUMNS)


def test_render_matches_columns_like_check_template() -> None:
    fields = {"Ism": "Dilnoza", "Qarz summasi": "150 000"}

    text = render("Hurmatli { ism }, qarzingiz {QARZ SUMMASI} so'm.", fields)

    assert text == "Hurmatli Dilnoza, qarzingiz 150 000 so'm."


def test_values_are_inserted_verbatim_never_reinterpreted() -> None:
    fields = {"Ism": "{Telefon} }}{{ {", "Telefon": "998901234567"}

    assert render("Salom, {Ism}!", fields) == "Salom, {Telefon} }}{{ {!"


def test_missing_value_and_unknown_placeholder_render_empty() -> None:
    assert render("Salom, {Ism}{Familiya}!", {"Ism": ""}) == "Salom, !"


def test_renderer_bound_to_columns_uses_first_of_case_twins() -> None:
    renderer = make_renderer("{ism}: {summa}", ["Ism", "ISM", "Summa"])

    assert renderer({"Ism": "Ali", "ISM": "Vali", "Summa": "5"}) == "Ali: 5"
    assert renderer({}) == ": "


def test_template_without_placeholders_renders_itself() -> None:
    assert make_renderer("Aksiya! {{50%}}", COLUMNS)({"Ism": "x"}) == "Aksiya! {50%}"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_escaped_text_renders_back_to_itself(text: str) -> None:
    escaped = text.replace("{", "{{").replace("}", "}}")

    assert placeholders(escaped) == []
    assert render(escaped, {"x": "y"}) == text


@pytest.mark.parametrize(
    "name",
    ["Qarz eslatma", "Акция_1", "oʻquvchilar-2024", "a", "x" * 32, "وعد", "Йўл"],
)
def test_valid_template_names(name: str) -> None:
    assert valid_template_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "x" * 33, " leading", "trailing ", "semi;colon", "new\nline", "emoji 🎉", "a.b", "{x}"],
)
def test_invalid_template_names(name: str) -> None:
    assert not valid_template_name(name)


def test_decomposed_letters_count_as_letters_in_names() -> None:
    assert valid_template_name("Мои\u0306")  # "Мой" typed as и + combining breve
    assert not valid_template_name("\u0306abc")
