#!/usr/bin/env bash
# Creates the application's role and database next to the ones Temporal uses.
#
# The postgres image runs the files in /docker-entrypoint-initdb.d only when it
# initialises an empty data directory (the first `docker compose up`). It sources
# this file when it is not executable and runs it when it is, so the file works
# either way and never calls `exit`.
#
# The `temporal` and `temporal_visibility` databases are not created here: the
# temporalio/auto-setup container creates and migrates them itself.

set -e

psql -v ON_ERROR_STOP=1 \
    --username "$POSTGRES_USER" \
    --dbname postgres \
    --set app_user="${APP_DB_USER:?APP_DB_USER is not set (see infra/compose.env)}" \
    --set app_password="${APP_DB_PASSWORD:?APP_DB_PASSWORD is not set (see infra/compose.env)}" \
    --set app_db="${APP_DB_NAME:?APP_DB_NAME is not set (see infra/compose.env)}" \
    <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'app_user', :'app_password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_user')
\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_user')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'app_db')
\gexec
SQL
