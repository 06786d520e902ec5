"""The API fuzzed from its own OpenAPI document: no 5xx, every answer as documented.

Schemathesis makes valid and invalid requests to each operation of the
document, against the app with API keys, the target rule and every limit on,
over both backends. The number of examples is bounded and the search repeats
the same examples every run, so CI stays fast and stable; set
``FUZZ_EXAMPLES`` to search longer, with fresh examples each run.
"""

import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

KEY = "fuzzing-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

BOUNDED = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20")),
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def test_no_request_makes_a_5xx_or_an_undocumented_answer(make_client):
    client = make_client(api_keys=KEY, allow_private_targets=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app, headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]

    assert len(operations) >= 13
    for operation in operations:
        fuzz(operation, GenerationMode.POSITIVE)
        # An operation that takes nothing has no invalid form.
        if list(operation.iter_parameters()) or operation.body:
            fuzz(operation, GenerationMode.NEGATIVE)


def fuzz(operation, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(mode))
    @BOUNDED
    def call(case) -> None:
        case.call_and_validate(headers=AUTH, checks=CHECKS)

    call()
