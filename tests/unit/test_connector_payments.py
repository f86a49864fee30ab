"""Stripe's error answers mapped to the error tree (httpx.MockTransport), and request checks."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from connectors.actions.base import EffectRequest
from connectors.actions.payments import PaymentsConnector
from connectors.errors import ClientError, Conflict, ConnectorError, NotConfigured, ServerError
from connectors.http_base import RetryPolicy

API_KEY = "sk_test_UnitKey123"


def _payments(handler: Callable[[httpx.Request], httpx.Response]) -> PaymentsConnector:
    return PaymentsConnector(
        api_key=API_KEY,
        base_url="https://stripe.test",
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=1),
    )


def _stripe_error(status: int, error: dict[str, str], **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": error}, headers=headers)


CUSTOMER = EffectRequest(idempotency_key="k-1", action="signup", target="customer", params={"name": "A"})


@pytest.mark.parametrize(
    ("answer", "error_type"),
    [
        (
            _stripe_error(400, {"type": "idempotency_error", "message": "Keys for idempotent requests..."}),
            Conflict,
        ),
        (
            _stripe_error(
                409, {"type": "api_error", "message": "lock timeout"}, **{"Stripe-Should-Retry": "true"}
            ),
            ServerError,
        ),
        (_stripe_error(409, {"type": "invalid_request_error", "message": "conflict"}), Conflict),
        (_stripe_error(402, {"type": "card_error", "message": "Your card was declined."}), ClientError),
        (_stripe_error(401, {"type": "invalid_request_error", "message": "Invalid API Key"}), NotConfigured),
        (_stripe_error(500, {"type": "api_error", "message": "boom"}), ServerError),
    ],
)
async def test_stripe_errors_map_to_the_error_tree(
    answer: httpx.Response, error_type: type[ConnectorError]
) -> None:
    payments = _payments(lambda _: answer)
    with pytest.raises(error_type) as caught:
        await payments.perform(CUSTOMER)
    assert type(caught.value) is error_type
    assert answer.json()["error"]["message"][:20] in str(caught.value)


async def test_a_declined_card_is_final_and_says_why() -> None:
    payments = _payments(
        lambda _: _stripe_error(402, {"type": "card_error", "message": "Your card was declined."})
    )
    with pytest.raises(ClientError, match="Your card was declined") as caught:
        await payments.perform(CUSTOMER)
    assert not caught.value.retryable


async def test_the_key_never_appears_in_a_stripe_error() -> None:
    payments = _payments(lambda r: _stripe_error(401, {"message": f"got {r.headers['Authorization']}"}))
    with pytest.raises(NotConfigured) as caught:
        await payments.perform(CUSTOMER)
    assert API_KEY not in str(caught.value)


async def test_the_result_is_the_stripe_objects_id_and_status() -> None:
    answer = {"id": "pi_1", "object": "payment_intent", "status": "succeeded", "amount": 5, "currency": "usd"}
    payments = _payments(lambda _: httpx.Response(200, json={**answer, "client_secret": "pi_1_secret_x"}))
    request = EffectRequest(
        idempotency_key="k-2", action="pay", target="payment_intent", params={"amount": 5, "currency": "usd"}
    )
    assert await payments.perform(request) == answer  # nothing more: no client secret in the ledger
