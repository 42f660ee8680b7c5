"""Registry state lives in Kafka: a restarted or second instance sees every schema and id, and
concurrent registrations through two instances never hand out one id twice, on nerve's broker
and on Apache Kafka alike."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

from tests._broker import BrokerProcess
from tests._registry import RegistryFactory
from tests.conftest import Backend
from tests.registry.conftest import Api


def schema(name: str, *fields: str) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "fields": [{"name": f, "type": "string", "default": ""} for f in fields],
        }
    )


def test_restart_keeps_every_schema_and_id(
    broker: BrokerProcess, registry_factory: RegistryFactory
) -> None:
    first = registry_factory(broker.bootstrap)
    api = Api(first.url)
    registered = {}
    for i in range(6):
        subject = f"restart-{i % 3}-value"
        body = {"schema": schema("R", *(f"f{j}" for j in range(i // 3 + 1)))}
        status, answer = api.post(f"/subjects/{subject}/versions", body)
        assert status == 200, answer
        registered[(subject, i // 3 + 1)] = answer["id"]
    api.put("/config/restart-0-value", {"compatibility": "FULL"})
    api.delete("/subjects/restart-2-value/versions/1")
    first.stop()
    broker.restart()

    second = Api(registry_factory(broker.bootstrap).url)
    for (subject, version), schema_id in registered.items():
        status, body = second.get(f"/subjects/{subject}/versions/{version}", deleted=True)
        assert (status, body["id"]) == (200, schema_id)
    assert second.get("/config/restart-0-value")[1] == {"compatibilityLevel": "FULL"}
    assert second.get("/subjects/restart-2-value/versions")[1] == [2]
    # New ids continue after the old ones.
    status, body = second.post("/subjects/after-value/versions", {"schema": schema("New")})
    assert body["id"] == max(registered.values()) + 1


def test_two_instances_never_hand_out_one_id_twice(
    backend: Backend, registry_factory: RegistryFactory
) -> None:
    topic = f"_schemas-{uuid.uuid4().hex[:8]}"  # a registry of its own on the shared backend
    apis = [Api(registry_factory(backend.bootstrap, topic).url) for _ in range(2)]

    def register(job: tuple[int, int]) -> tuple[int, str, int]:
        instance, n = job
        subject = f"s{n % 4}"
        # Each job registers a distinct schema (a new field), except that both instances
        # register the same schema for the same n: content decides the id.
        body = {"schema": schema("R", *(f"f{n}",)), "schemaType": "AVRO"}
        status, answer = apis[instance].post(f"/subjects/{subject}-{n}/versions", body)
        assert status == 200, answer
        return n, subject, answer["id"]

    jobs = [(i % 2, n) for n in range(12) for i in range(2)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(register, jobs))
    ids_by_schema: dict[int, set[int]] = {}
    for n, _, schema_id in results:
        ids_by_schema.setdefault(n, set()).add(schema_id)
    assert all(len(ids) == 1 for ids in ids_by_schema.values()), ids_by_schema
    distinct = [ids.pop() for ids in ids_by_schema.values()]
    assert len(set(distinct)) == len(distinct) == 12
    # Both instances answer alike.
    for api in apis:
        for n, schema_id in enumerate(distinct):
            status, body = api.get(f"/schemas/ids/{schema_id}")
            assert status == 200 and f'"f{n}"' in body["schema"]
    assert apis[0].get("/subjects")[1] == apis[1].get("/subjects")[1]
