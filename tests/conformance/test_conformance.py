"""The conformance suite: every case, in every host, at several page sizes.

Each case in tests/conformance/ has projections/*.js, an events file and
expected.json. Every host must produce the expected output, and the same
output as every other host (the Python simulation at page size 1000 is the
reference each is compared with), at page size 1000 and, for the small
cases, 1. Each case runs in each host as a test of its own (two hosts that
run the Python engine by another way leave out the cases about the engine
alone: docs/conformance.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from jsproj.tools.hosts import NodeHost, PythonHost

from conformance_hosts import (
    CASES,
    ENGINE_CASES,
    LANGUAGES,
    appends_each,
    case_names,
    case_params,
    check_against_expected,
    host_case_params,
    hosts,
    job,
    language_host,
    page_sizes,
    reference,
    require_language,
    without_stack,
)


def test_there_are_enough_cases() -> None:
    assert len(case_names()) >= 15


def test_the_engine_cases_are_cases_and_leave_the_variant_hosts_the_storing_ones() -> None:
    assert ENGINE_CASES <= set(case_names())
    assert len(set(case_names()) - ENGINE_CASES) >= 20


def test_the_large_cases_are_few_and_the_small_ones_run_one_event_per_page() -> None:
    large = [case for case in case_names() if page_sizes(CASES / case) == (1000,)]
    assert large == ["many-streams"], "page size 1 leaves out only the large cases"
    assert page_sizes(CASES / "aggregate") == (1, 1000)


@pytest.mark.parametrize(("case", "host"), host_case_params())
def test_case_in_every_host(case: str, host: str, databases: Callable[[], str]) -> None:
    folder = CASES / case
    expected = json.loads((folder / "expected.json").read_text("utf-8"))
    runner = hosts(databases, each=appends_each(folder))[host]
    for page_size in page_sizes(folder, host):
        output = runner.run(job(folder, page_size))
        check_against_expected(output, expected)
        assert without_stack(output) == reference(case), f"{host}/page-size-{page_size} differs from python"
    if "projections" in expected and isinstance(runner, PythonHost | NodeHost):
        described = {info["name"]: info for info in runner.describe(folder / "projections")}
        for name, want in expected["projections"].items():
            assert {k: described[name][k] for k in want} == want, f"{host}: {name}"


@pytest.mark.slow  # (make test-fast: the hosts of FAST_HOSTS)
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("case", case_params())
def test_case_in_a_javascript_language(case: str, language: str, databases: Callable[[], str], cluster) -> None:
    """PLV8 and PL/JS run every case exactly as the Python host does (page size 1 too for the small cases)."""
    require_language(cluster.dsn, language)
    folder = CASES / case
    expected = json.loads((folder / "expected.json").read_text("utf-8"))
    want = reference(case)
    if language == "pljs":  # QuickJS words its own TypeErrors differently: compare up to the error's name
        expected, want = quickjs_wording(expected), quickjs_wording(want)
    for page_size in page_sizes(folder, language):
        output = language_host(databases, language, each=appends_each(folder)).run(job(folder, page_size))
        if language == "pljs":
            output = quickjs_wording(output)
        check_against_expected(output, expected)
        assert without_stack(output) == want, f"{language}/page-size-{page_size} differs from python"


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
