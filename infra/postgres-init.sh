#!/usr/bin/env bash
# PostgreSQL init script (the postgres image runs /docker-entrypoint-initdb.d/* once, on an empty volume):
# MLflow's database beside Airflow's (POSTGRES_DB). Each migrates its own schema with its own
# alembic_version table; in one database the second to migrate would fail. The name is stack.env's.
set -euo pipefail
mlflow_db="${CRISP_STACK_MLFLOW_DB:?CRISP_STACK_MLFLOW_DB is not set (env_file: stack.env)}"
if [ "$mlflow_db" = "$POSTGRES_DB" ]; then
  echo "postgres-init: CRISP_STACK_MLFLOW_DB must differ from the Airflow database ($POSTGRES_DB)" >&2
  exit 1
fi
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set db="$mlflow_db" --set owner="$POSTGRES_USER" <<'SQL'
CREATE DATABASE :"db" OWNER :"owner";
SQL
