#!/usr/bin/env bash
# One database per service, each owned by its own login role; no role can connect to another
# service's database. Run once by the postgres image (/docker-entrypoint-initdb.d/) on an empty
# data directory only: to add a service to an existing volume, run the same statements by hand
# (docs/operations.md) or recreate the volume.
#
# Passwords come from the environment (<SERVICE>_DB_PASSWORD); docker-compose.yml passes them, with
# development-only defaults. Use URL-safe passwords: they are also written into the services' DB URIs.
set -eo pipefail

create_service_database() {
    local name="$1"
    local password_var
    password_var="$(echo "${name}" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
    local password="${!password_var:-}"
    if [ -z "${password}" ]; then
        echo "init-databases: ${password_var} is not set" >&2
        return 1
    fi
    echo "init-databases: database and role '${name}'"
    psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname postgres \
        -v name="${name}" -v password="${password}" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
}

# Every service that has a database (DB_URIS in its config.yml). Keep in sync with
# docker-compose.yml; tests/unit/test_deploy_consistency.py checks it.
SERVICE_DATABASES="identity notify communes booking billing"

for service in ${SERVICE_DATABASES}; do
    create_service_database "${service}"
done
