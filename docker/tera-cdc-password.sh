#!/bin/sh
# Run by the postgres image on its first start, after 03-prepare-database.sql created the role:
# gives tera_cdc the password docker-compose.yml puts in tera-cdc's database URL.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v password="$TERA_CDC_DB_PASSWORD" <<'SQL'
ALTER ROLE tera_cdc PASSWORD :'password';
SQL
