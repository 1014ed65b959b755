#!/bin/sh
# docker-compose.yml's `secrets` step, before the broker starts: generates the broker's passwords
# on the first start (kept in the `secrets` volume, reused afterwards), so no password ships in
# this repository. Never prints them. Read one when you need it:
#   docker compose run --rm secrets cat /secrets/mqtt-ops.password
set -eu
dir="${SECRETS_DIR:-/secrets}"
umask 077
mkdir -p "$dir"
generate() { tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32; }
for user in tera-cdc ops; do
  [ -s "$dir/mqtt-$user.password" ] || generate >"$dir/mqtt-$user.password"
done
# Mosquitto's password file (salted hashes), written anew from the kept passwords.
: >"$dir/passwd.new"
for user in tera-cdc ops; do
  mosquitto_passwd -b "$dir/passwd.new" "$user" "$(cat "$dir/mqtt-$user.password")"
done
mv "$dir/passwd.new" "$dir/passwd"
# Each file readable by its reader only: Mosquitto (uid 1883 in its image) and tera-cdc (node, 1000).
chown "${MOSQUITTO_UID:-1883}" "$dir/passwd"
chown "${TERA_CDC_UID:-1000}" "$dir/mqtt-tera-cdc.password"
chmod 600 "$dir"/*
