"""Payments through the Stripe REST API, each effect under the ledger's idempotency key.

`ActionSpec.target` names the operation; the action's params (and its `amount`) fill it:

    customer        create a customer                        email, name, description, phone
    payment_intent  create and confirm a PaymentIntent       amount, currency, customer,
                                                             payment_method (pm_card_visa)
    refund          refund a PaymentIntent                   payment_intent, amount (optional)
    balance_credit  credit a customer's balance              customer, amount, currency
    balance_debit   debit it (the credit's compensation)     customer, amount, currency

Amounts are whole numbers in the currency's smallest unit (cents for USD), as Stripe wants.
Requests are form-encoded with `Authorization: Bearer <key>` and `Idempotency-Key: <key>`,
so a retried effect is applied once by Stripe. The result is the Stripe object's id and status.

Lookup: Stripe cannot be asked "was the request with this idempotency key applied?" (its
replay of a key is a POST, which would apply the effect if it had not been). So `lookup`
never concludes "not applied": it raises a final ClientError, the reconciler stops asking,
and an effect whose outcome is unknown is settled by Stripe's webhook or by the operator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from connectors.actions.base import EffectRequest
from connectors.breaker import BreakerSnapshot, CircuitBreaker
from connectors.errors import ClientError, Conflict, ConnectorError, NotConfigured, ServerError
from connectors.http_base import (
    DEFAULT_TIMEOUT,
    ResilientHttp,
    RetryPolicy,
    error_for_response,
    error_message_of,
)
from connectors.redaction import Redactor, safe_url

STRIPE_API_URL = "https://api.stripe.com"
TEST_CARD = "pm_card_visa"
# Which operation undoes which: a manifest declares the undoing action as the compensation.
COMPENSATIONS = {"balance_credit": "balance_debit", "payment_intent": "refund"}

Form = dict[str, str | list[str]]


@dataclass(frozen=True)
class Operation:
    path: Callable[[Mapping[str, Any]], str]
    build: Callable[[EffectRequest], Form]
    accepts: frozenset[str]


class PaymentsConnector:
    name = "payments"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = STRIPE_API_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._http = ResilientHttp(
            self.name,
            base_url=base_url,
            transport=transport,
            timeout=timeout,
            headers={"Authorization": f"Bearer {api_key}"},
            secrets=[api_key],
            retry=retry,
            breaker=breaker,
            error_mapper=stripe_error,
        )

    def breaker_state(self) -> BreakerSnapshot:
        return self._http.breaker_state()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def perform(self, request: EffectRequest) -> dict[str, Any]:
        operation = OPERATIONS.get(request.target or "")
        if operation is None:
            raise NotConfigured(
                f"action {request.action!r} uses the payments connector with target {request.target!r}; "
                f"set the manifest's `target` to one of {sorted(OPERATIONS)}"
            )
        _refuse_unknown_params(request, operation.accepts)
        response = await self._http.request(
            "POST",
            operation.path(request.params),
            data=operation.build(request),
            idempotency_key=request.idempotency_key,
        )
        try:
            return _summary_of(response.json())
        except ValueError as exc:
            # The effect happened but its answer is unreadable; Stripe replays it for the same key.
            where = f"POST {safe_url(response.request.url)} answered {response.status_code}"
            raise ServerError(f"{where} with a body that is not JSON", status=response.status_code) from exc

    async def lookup(self, request: EffectRequest) -> dict[str, Any] | None:
        """Stripe has no lookup by idempotency key: this says "cannot tell", never "not applied"."""
        raise ClientError(
            f"action {request.action!r} (payments {request.target}): Stripe cannot look up an effect by "
            "its idempotency key; its webhook (`aios webhook`) or the operator must settle it"
        )


def stripe_error(response: httpx.Response, redact: Redactor) -> ConnectorError:
    """Stripe's error answers, refined: key reuse is a Conflict, and Stripe may say "retry"."""
    error = error_for_response(response, redact)
    details = _stripe_error_details(response)
    where = f"{response.request.method} {safe_url(response.request.url)} answered {response.status_code}"
    message = redact(error_message_of(response))
    if details.get("type") == "idempotency_error":
        return Conflict(f"{where}: {message}", status=response.status_code)
    # Stripe-Should-Retry is Stripe's own word, e.g. on a 409 while another request holds a lock.
    if response.headers.get("Stripe-Should-Retry") == "true" and not error.retryable:
        return ServerError(f"{where}: {message} (Stripe says retry)", status=response.status_code)
    return error


def _stripe_error_details(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else {}


# -- the operations -------------------------------------------------------------------------


def _customer(request: EffectRequest) -> Form:
    return _present(request.params, "email", "name", "description", "phone")


def _payment_intent(request: EffectRequest) -> Form:
    params = request.params
    form: Form = {
        "amount": str(_amount(request)),
        "currency": _required(params, "currency", request),
        "payment_method": str(params.get("payment_method", TEST_CARD)),
        "payment_method_types[]": "card",  # card only: confirming needs no return_url
        "confirm": "true",
    }
    return form | _present(params, "customer", "description")


def _refund(request: EffectRequest) -> Form:
    # As a compensation, the refund undoes the PaymentIntent the original effect created.
    original = request.original or {}
    if "payment_intent" not in request.params and original.get("object") == "payment_intent":
        return {"payment_intent": str(original["id"])}
    form: Form = {"payment_intent": _required(request.params, "payment_intent", request)}
    if "amount" in request.params or request.amount is not None:
        form["amount"] = str(_amount(request))
    return form


def _balance(sign: int) -> Callable[[EffectRequest], Form]:
    """Stripe counts a customer's credit as a negative balance transaction, a debit as positive."""

    def build(request: EffectRequest) -> Form:
        _required(request.params, "customer", request)  # it goes in the path, not the form
        form: Form = {
            "amount": str(sign * _amount(request)),
            "currency": _required(request.params, "currency", request),
        }
        return form | _present(request.params, "description")

    return build


def _customer_path(params: Mapping[str, Any]) -> str:
    return f"/v1/customers/{quote(str(params.get('customer', '')), safe='')}/balance_transactions"


BALANCE_PARAMS = frozenset({"customer", "amount", "currency", "description"})
OPERATIONS: dict[str, Operation] = {
    "customer": Operation(
        lambda _: "/v1/customers", _customer, frozenset({"email", "name", "description", "phone"})
    ),
    "payment_intent": Operation(
        lambda _: "/v1/payment_intents",
        _payment_intent,
        frozenset({"amount", "currency", "customer", "payment_method", "description"}),
    ),
    "refund": Operation(lambda _: "/v1/refunds", _refund, frozenset({"payment_intent", "amount"})),
    "balance_credit": Operation(_customer_path, _balance(-1), BALANCE_PARAMS),
    "balance_debit": Operation(_customer_path, _balance(+1), BALANCE_PARAMS),
}


# -- parameters -----------------------------------------------------------------------------


def _amount(request: EffectRequest) -> int:
    """The amount in the currency's smallest unit: a positive whole number."""
    value = request.params.get("amount", request.amount)
    whole = _whole_number(value)
    if whole is None or whole <= 0:
        raise ClientError(
            f"action {request.action!r}: amount must be a positive whole number in the currency's "
            f"smallest unit (1250 for 12.50 USD), got {value!r}"
        )
    return whole


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _required(params: Mapping[str, Any], name: str, request: EffectRequest) -> str:
    value = params.get(name)
    if value is None or str(value) == "":
        raise ClientError(f"action {request.action!r} ({request.target}) needs the parameter {name!r}")
    return str(value)


def _present(params: Mapping[str, Any], *names: str) -> Form:
    return {name: str(params[name]) for name in names if params.get(name) is not None}


def _refuse_unknown_params(request: EffectRequest, accepted: frozenset[str]) -> None:
    # Stripe refuses unknown parameters anyway; saying so here names the action and the fix.
    unknown = sorted(set(request.params) - accepted)
    if unknown:
        raise ClientError(
            f"action {request.action!r} ({request.target}) got unknown parameters {unknown}; "
            f"it accepts {sorted(accepted)}"
        )


def _summary_of(stripe_object: dict[str, Any]) -> dict[str, Any]:
    summary = {key: stripe_object.get(key) for key in ("id", "object", "status")}
    summary |= {key: stripe_object[key] for key in ("amount", "currency") if key in stripe_object}
    return summary
