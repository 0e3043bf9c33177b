"""The conformance suite: every case, in every host, at several page sizes.

Each case in tests/conformance/ has projections/*.js, an events file and
expected.json. Every host must produce the expected output, and all hosts
must produce the same output as each other, whatever the page size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from conformance_hosts import (
    CASES,
    DESCRIBING_HOSTS,
    HOSTS,
    LANGUAGES,
    InlineHost,
    PythonHost,
    case_names,
    check_against_expected,
    require_language,
    without_stack,
)

PAGE_SIZES = (1, 1000)


def test_there_are_enough_cases() -> None:
    assert len(case_names()) >= 15


@pytest.mark.parametrize("case", case_names())
def test_case_in_every_host(case: str, databases: Callable[[], str]) -> None:
    folder = CASES / case
    expected = json.loads((folder / "expected.json").read_text("utf-8"))
    outputs = {}
    for host in HOSTS:
        for page_size in PAGE_SIZES:
            output = host.run(folder, page_size, databases)
            check_against_expected(output, expected)
            outputs[f"{host.name}/page-size-{page_size}"] = without_stack(output)
    first_name, first = next(iter(outputs.items()))
    for name, output in outputs.items():
        assert output == first, f"{name} differs from {first_name}"
    if "projections" in expected:
        for host in DESCRIBING_HOSTS:
            described = {info["name"]: info for info in host.describe(folder)}
            for name, want in expected["projections"].items():
                assert {k: described[name][k] for k in want} == want, f"{host.name}: {name}"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("case", case_names())
def test_case_in_a_javascript_language(case: str, language: str, databases: Callable[[], str], cluster) -> None:
    """PLV8 and PL/JS run every case, at both page sizes, exactly as the Python host does."""
    require_language(cluster.dsn, language)
    folder = CASES / case
    expected = json.loads((folder / "expected.json").read_text("utf-8"))
    reference = without_stack(PythonHost().run(folder, 1000, databases))
    if language == "pljs":  # QuickJS words its own TypeErrors differently: compare up to the error's name
        expected, reference = quickjs_wording(expected), quickjs_wording(reference)
    for page_size in PAGE_SIZES:
        output = InlineHost(language).run(folder, page_size, databases)
        if language == "pljs":
            output = quickjs_wording(output)
        check_against_expected(output, expected)
        assert without_stack(output) == reference, f"{language}/page-size-{page_size} differs from python"


def quickjs_wording(output: dict[str, Any]) -> dict[str, Any]:
    """An output (or expected.json) as QuickJS words it: engine error texts cut after ``TypeError`` etc.

    QuickJS words its own errors differently from V8, and ignores
    ``//# sourceURL``: its stacks name ``<input>`` with the file's line and
    column (docs/sandbox.md).
    """
    if "error" not in output:
        return output
    error = dict(output["error"])
    for key in ("message", "messageStartsWith"):
        if key in error:
            error[key] = re.sub(
                r"((?:Type|Range|Reference|Syntax|Internal)Error)(?::.*)?$", r"\1", error[key], flags=re.S
            )
    thrown = error.get("error")
    if isinstance(thrown, dict) and thrown.get("name") in ("TypeError", "RangeError", "ReferenceError", "SyntaxError"):
        error["error"] = {"name": thrown["name"]}
    if "stackIncludes" in error:
        error["stackIncludes"] = re.sub(r"^[^:]*\.js:", "<input>:", error["stackIncludes"])
    return {**output, "error": error}
