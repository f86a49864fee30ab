#!/bin/sh
# Registers the custom search attributes of aios in a Temporal namespace.
#
# Run by the one-shot `temporal-search-attributes` service of docker-compose.yml
# (image temporalio/admin-tools, which ships the `temporal` CLI). Safe to run again:
# an attribute that already exists is left as it is. The `temporal` CLI reads the
# server from TEMPORAL_ADDRESS (for example temporal:7233).
#
# Environment:
#   TEMPORAL_ADDRESS      host:port of the frontend (read by the CLI itself)
#   TEMPORAL_NAMESPACE    namespace to register in (default: default)
#   WAIT_TIMEOUT_SECONDS  how long to wait for the server and namespace (default: 300)

set -eu

namespace="${TEMPORAL_NAMESPACE:-default}"
timeout="${WAIT_TIMEOUT_SECONDS:-300}"
attributes="AiosAgent AiosManifestVersion AiosState AiosRisk AiosCause"

log() {
    echo "register-search-attributes: $*" >&2
}

wait_for() {
    description="$1"
    shift
    waited=0
    until "$@" >/dev/null 2>&1; do
        if [ "$waited" -ge "$timeout" ]; then
            log "gave up after ${timeout}s waiting for ${description}"
            exit 1
        fi
        sleep 2
        waited=$((waited + 2))
    done
    log "${description}: ready"
}

wait_for "Temporal server at ${TEMPORAL_ADDRESS:-127.0.0.1:7233}" \
    temporal operator cluster health
# auto-setup registers the `default` namespace only after the server answers.
wait_for "namespace ${namespace}" \
    temporal operator namespace describe --namespace "$namespace"

# One attribute per call, so that an attribute that already exists does not stop
# the others from being created.
for name in $attributes; do
    if output=$(temporal operator search-attribute create \
        --namespace "$namespace" --name "$name" --type Keyword 2>&1); then
        log "created ${name} (Keyword)"
    elif printf '%s' "$output" | grep -qi "already exists"; then
        log "${name} already exists"
    else
        log "could not create ${name}: ${output}"
        exit 1
    fi
done

# Check that every attribute is there with the Keyword type ("already exists" above
# is also the answer when an attribute of that name has another type).
listing=$(temporal operator search-attribute list --namespace "$namespace")
for name in $attributes; do
    if ! printf '%s\n' "$listing" | awk -v n="$name" '$1 == n && $2 == "Keyword" { ok = 1 } END { exit !ok }'; then
        found=$(printf '%s\n' "$listing" | awk -v n="$name" '$1 == n { print $2 }')
        log "${name} should be a Keyword search attribute in namespace ${namespace}, found: ${found:-nothing}"
        exit 1
    fi
done
log "search attributes of namespace ${namespace}: ${attributes}"
