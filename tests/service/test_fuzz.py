"""A bounded, schema-driven fuzz run (Schemathesis) against a real server: every operation in
the OpenAPI document, with requests that fit the schema and requests that break it, with an
admin key and without one. No answer may be a 5xx, and every error answer has the project's
body ``{"error", "detail"}``."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.service.live_server import ADMIN_KEY, keyed_toy_server

pytestmark = pytest.mark.slow

EXAMPLES = 40  # per operation and key: about 1,100 requests in all


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = keyed_toy_server(tmp_path_factory.mktemp("fuzz"))
    yield running
    running.stop()


@pytest.mark.parametrize("key", [ADMIN_KEY, None], ids=["admin", "keyless"])
def test_schema_driven_requests_get_no_5xx_and_one_error_shape(server, key):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    headers = {"X-API-Key": key} if key else {}
    seen: dict[str, set[int]] = {}

    def fuzz(operation) -> None:
        label = f"{operation.method.upper()} {operation.path}"

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=st.one_of(
                operation.as_strategy(GenerationMode.POSITIVE),
                operation.as_strategy(GenerationMode.NEGATIVE),
            )
        )
        def check(case):
            response = case.call(base_url=server.url, headers=headers, timeout=30)
            seen.setdefault(label, set()).add(response.status_code)
            assert response.status_code < 500, f"{label}: {response.status_code} {response.text}"
            if response.status_code >= 400:
                assert set(response.json()) == {"error", "detail"}, f"{label}: {response.text}"

        check()

    for result in schema.get_all_operations():
        fuzz(result.ok())
    assert len(seen) >= 14, sorted(seen)
    if key is None:  # keyless: every protected operation answered 401, nothing else
        protected = {k: v for k, v in seen.items() if k not in ("GET /readyz", "GET /livez")}
        assert all(v == {401} for v in protected.values()), protected
    assert httpx.get(f"{server.url}/readyz").status_code == 200
