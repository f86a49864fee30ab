"""The payments connector against stripe-mock, Stripe's official mock of its REST API.

stripe-mock is stateless: it validates each request against Stripe's OpenAPI spec and
answers with fixture objects (it echoes the Idempotency-Key header back but never
deduplicates). So these tests check the request and response shapes and that the key and
the credentials are sent; deduplication by key is the effect server's to show.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from activities.deps import build_connectors
from aios.settings import load_settings
from connectors.actions.base import EffectRequest
from connectors.actions.payments import COMPENSATIONS, PaymentsConnector, stripe_error
from connectors.errors import ClientError, NotConfigured
from connectors.http_base import ResilientHttp
from tests.support.stripe_mock import StripeMock, stripe_mock_fixture  # noqa: F401  (the fixture)

TEST_KEY = "sk_test_123"


class RecordingTransport(httpx.AsyncBaseTransport):
    """The real network transport, remembering each exchange so tests can read the wire."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        self.exchanges.append((request, response))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    def form(self, index: int = -1) -> dict[str, list[str]]:
        return parse_qs(self.exchanges[index][0].content.decode())


@pytest.fixture
def wire() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
async def payments(stripe_mock: StripeMock, wire: RecordingTransport) -> AsyncIterator[PaymentsConnector]:
    connector = PaymentsConnector(api_key=TEST_KEY, base_url=stripe_mock.url, transport=wire)
    yield connector
    await connector.aclose()


def _request(target: str, key: str = "run-1/step-1/pay", **params: object) -> EffectRequest:
    return EffectRequest(idempotency_key=key, action=f"do_{target}", target=target, params=params)


async def test_create_customer_sends_key_and_bearer_credentials(
    payments: PaymentsConnector, wire: RecordingTransport
) -> None:
    result = await payments.perform(_request("customer", email="ada@example.com", name="Ada"))
    assert result["id"].startswith("cus_")
    assert result["object"] == "customer"
    request, response = wire.exchanges[-1]
    assert (request.method, request.url.path) == ("POST", "/v1/customers")
    assert request.headers["Authorization"] == f"Bearer {TEST_KEY}"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Idempotency-Key"] == "run-1/step-1/pay"
    assert response.headers["Idempotency-Key"] == "run-1/step-1/pay"  # stripe-mock echoes it
    assert wire.form() == {"email": ["ada@example.com"], "name": ["Ada"]}


async def test_payment_intent_is_created_and_confirmed_in_minor_units(
    payments: PaymentsConnector, wire: RecordingTransport
) -> None:
    result = await payments.perform(_request("payment_intent", amount=1250, currency="eur", customer="cus_1"))
    assert result["id"].startswith("pi_")
    assert result["object"] == "payment_intent"
    assert isinstance(result["status"], str)
    assert (result["amount"], result["currency"]) == (1250, "eur")
    assert wire.form() == {
        "amount": ["1250"],
        "currency": ["eur"],
        "customer": ["cus_1"],
        "payment_method": ["pm_card_visa"],
        "payment_method_types[]": ["card"],
        "confirm": ["true"],
    }


async def test_amount_may_come_from_the_action_amount(
    payments: PaymentsConnector, wire: RecordingTransport
) -> None:
    request = EffectRequest(
        idempotency_key="k-amount",
        action="pay",
        target="payment_intent",
        params={"currency": "usd"},
        amount=700,
    )
    await payments.perform(request)
    assert wire.form()["amount"] == ["700"]


async def test_refund_of_a_payment_intent(payments: PaymentsConnector, wire: RecordingTransport) -> None:
    result = await payments.perform(_request("refund", payment_intent="pi_123", amount=300))
    assert result["id"].startswith("re_")
    assert result["status"] == "succeeded"
    assert wire.exchanges[-1][0].url.path == "/v1/refunds"
    assert wire.form() == {"payment_intent": ["pi_123"], "amount": ["300"]}


async def test_balance_credit_and_its_compensating_debit_move_the_same_amount(
    payments: PaymentsConnector, wire: RecordingTransport
) -> None:
    params = {"customer": "cus_9", "amount": 500, "currency": "usd"}
    credit = await payments.perform(_request("balance_credit", key="r/step-2/credit", **params))
    undo = COMPENSATIONS["balance_credit"]
    debit = await payments.perform(_request(undo, key="r/step-2/credit/undo/debit", **params))
    assert credit["object"] == debit["object"] == "customer_balance_transaction"
    # Stripe: a credit is a negative balance transaction, a debit a positive one.
    assert (credit["amount"], debit["amount"]) == (-500, 500)
    paths = {request.url.path for request, _ in wire.exchanges}
    assert paths == {"/v1/customers/cus_9/balance_transactions"}
    keys = [request.headers["Idempotency-Key"] for request, _ in wire.exchanges]
    assert keys == ["r/step-2/credit", "r/step-2/credit/undo/debit"]


async def test_a_retry_sends_the_same_idempotency_key(
    payments: PaymentsConnector, wire: RecordingTransport
) -> None:
    request = _request("customer", key="run-7/step-1/signup", email="x@example.com")
    await payments.perform(request)
    await payments.perform(request)
    keys = {sent.headers["Idempotency-Key"] for sent, _ in wire.exchanges}
    assert keys == {"run-7/step-1/signup"}


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_request("customer", colour="blue"), "unknown parameters ['colour']"),
        (_request("payment_intent", amount=12.5, currency="usd"), "positive whole number"),
        (_request("payment_intent", amount=-5, currency="usd"), "positive whole number"),
        (_request("payment_intent", amount=100), "needs the parameter 'currency'"),
        (_request("refund"), "needs the parameter 'payment_intent'"),
        (_request("balance_credit", amount=5, currency="usd"), "needs the parameter 'customer'"),
    ],
)
async def test_a_malformed_request_is_refused_before_anything_is_sent(
    payments: PaymentsConnector, wire: RecordingTransport, request_: EffectRequest, message: str
) -> None:
    with pytest.raises(ClientError, match=message.replace("[", r"\[").replace("]", r"\]")):
        await payments.perform(request_)
    assert wire.exchanges == []


async def test_an_unknown_target_names_the_operations(payments: PaymentsConnector) -> None:
    with pytest.raises(NotConfigured, match="one of \\['balance_credit'"):
        await payments.perform(_request("payout"))


async def test_stripe_validation_errors_are_client_errors_with_stripes_message(
    stripe_mock: StripeMock,
) -> None:
    # The connector validates amounts itself, so speak to Stripe through the base directly.
    http = ResilientHttp(
        "payments",
        base_url=stripe_mock.url,
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        error_mapper=stripe_error,
    )
    try:
        with pytest.raises(ClientError) as caught:
            await http.request(
                "POST", "/v1/refunds", data={"payment_intent": "pi_1", "amount": "abc"}, idempotency_key="k"
            )
    finally:
        await http.aclose()
    assert type(caught.value) is ClientError
    assert caught.value.status == 400
    assert "Request validation error" in str(caught.value)


async def test_a_refused_key_is_not_configured_and_never_shown(stripe_mock: StripeMock) -> None:
    secret = "sk_live_DoNotLeak987"
    payments = PaymentsConnector(api_key=secret, base_url=stripe_mock.url)
    with pytest.raises(NotConfigured) as caught:
        await payments.perform(_request("customer", name="x"))
    await payments.aclose()
    assert caught.value.status == 401
    assert secret not in str(caught.value)  # stripe-mock echoes the Authorization header
    assert "[REDACTED]" in str(caught.value)


async def test_settings_with_a_loopback_stripe_use_the_test_key(
    stripe_mock: StripeMock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(stripe_base_url=stripe_mock.url)
    async with httpx.AsyncClient() as http:
        connector = build_connectors(settings, http)["payments"]
        assert isinstance(connector, PaymentsConnector)
        result = await connector.perform(_request("customer", name="From settings"))
        await connector.aclose()
    assert result["id"].startswith("cus_")
