"""A failed TLS handshake becomes one line that names the setting to change."""

from __future__ import annotations

import pytest

from aios.settings import load_settings
from aios.temporal.server_errors import temporal_unreachable

# The SDK's own words for each failure, as the cluster profile's TLS test meets them.
CONNECT = "Failed client connect: Server connection error: tonic::transport::Error(Transport, ConnectError("
AFTER = "Failed client connect: `get_system_info` call error after connection: Status { code: Unknown, "
CASES = {
    CONNECT + "Custom { kind: InvalidData, error: InvalidMessage(InvalidContentType) }))": "unset AIOS_",
    CONNECT
    + "Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }))": "not signed by the CA",
    AFTER + 'error: "received fatal alert: CertificateRequired" })': "set AIOS_TEMPORAL_TLS_CERT",
    AFTER
    + 'error: "stream closed because of a broken pipe" })': "if it serves TLS, set AIOS_TEMPORAL_TLS_CA",
    AFTER + 'source: Some(hyper::Error(Canceled, "connection closed")) })': "if it serves TLS",
    "Connection refused (os error 111)": "start the local stack with `aios dev up`",
}


@pytest.mark.parametrize("sdk_error", sorted(CASES))
def test_the_message_names_what_to_change(sdk_error: str) -> None:
    message = str(temporal_unreachable(load_settings(), RuntimeError(sdk_error)))
    assert message.startswith("cannot reach Temporal at ") and "\n" not in message
    assert CASES[sdk_error] in message, message
