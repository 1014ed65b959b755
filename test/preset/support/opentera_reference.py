"""OpenTera's own DatabaseEvents for a list of committed row states, written from the spec
(spec/opentera/event-format.md and event_fields.json), not from tera-cdc's code: the independent
reference of the contract test.

stdin: {"fields": <event_fields.json>, "published_secrets": [...], "steps": [
          {"model": m, "op": "create"|"update"|"delete", "row": {column: value}, "timestamps": [column, ...]}]}
stdout: [{"model": m, "type": 1|2|3, "object_value": "<json.dumps text>"}, ...]

Keys OpenTera reads from other tables at publish time (derived_keys other than user_name) are
left out: tera-cdc documents them as not provided (docs/opentera-preset.md), and none of
OpenTera's services reads them (consumers.md).
"""
import datetime
import json
import sys

EVENT_TYPE = {"create": 1, "update": 2, "delete": 3}
ENDPOINTS = ("service_endpoint_user", "service_endpoint_participant", "service_endpoint_device")


def value_of(column, value, timestamps):
    if value is not None and column in timestamps:
        # psycopg2 hands OpenTera an aware datetime; isoformat() is what json.dumps' caller wrote.
        return datetime.datetime.fromisoformat(value).isoformat()
    return value


def create_or_update(spec, op, row, timestamps, published_secrets):
    keys = set(spec["create"]) | set(spec["update"])
    secrets = set(spec["secrets"]) - set(published_secrets)
    derived = set(spec["derived_keys"])
    columns = sorted(k for k in keys if k not in secrets and k not in derived)
    d = {}
    for column in columns:
        if column == "deleted_at" and row.get(column) is None:
            continue  # SoftDeleteMixin: present only while set
        d[column] = value_of(column, row.get(column), timestamps)
    if spec["table"] == "t_services":
        for key in ENDPOINTS:
            if not d.get(key):
                d.pop(key, None)  # TeraService.to_json(): removed when falsy
    if "user_name" in spec["derived_keys"]:
        d["user_name"] = row["user_firstname"] + " " + row["user_lastname"]
    return d


def delete(spec, model, row, published_secrets):
    if spec["delete"] is None:
        return None  # server_settings: OpenTera publishes no delete
    secrets = set(spec["secrets"]) - set(published_secrets)
    d = {}
    for key in spec["delete"]:
        if key not in secrets:  # withheld by the preset (test_invitation_key), documented
            d[key] = row[key]
    if model == "test_invitation":
        d["id_test_invitation"] = row["id_test_type"]  # OpenTera's bug, as it publishes it
    return d


def main():
    request = json.loads(sys.stdin.read())
    fields = request["fields"]
    out = []
    for step in request["steps"]:
        spec = fields[step["model"]]
        if step["op"] == "delete":
            d = delete(spec, step["model"], step["row"], request["published_secrets"])
        else:
            d = create_or_update(spec, step["op"], step["row"], set(step["timestamps"]), request["published_secrets"])
        if d is not None:
            out.append({"model": step["model"], "type": EVENT_TYPE[step["op"]], "object_value": json.dumps(d)})
    sys.stdout.write(json.dumps(out))


main()
