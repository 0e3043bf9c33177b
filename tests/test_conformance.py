"""The conformance suite: every case, in every host, at several page sizes.

Each case in tests/conformance/ has projections/*.js, an events file and
expected.json. Every host must produce the expected output, and all hosts
must produce the same output as each other, whatever the page size.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from conformance_hosts import (
    CASES,
    DESCRIBING_HOSTS,
    HOSTS,
    InlineHost,
    PythonHost,
    case_names,
    check_against_expected,
    plv8_available,
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


@pytest.mark.parametrize("case", case_names())
def test_case_in_plv8(case: str, databases: Callable[[], str], cluster) -> None:
    """The PLV8 host joins the runner wherever PostgreSQL has plv8."""
    if not plv8_available(cluster.dsn):
        pytest.skip("plv8 is not installed in this PostgreSQL: no registry reachable here ships it")
    folder = CASES / case
    expected = json.loads((folder / "expected.json").read_text("utf-8"))
    output = InlineHost("plv8").run(folder, 1000, databases)
    check_against_expected(output, expected)
    assert without_stack(output) == without_stack(PythonHost().run(folder, 1000, databases))
