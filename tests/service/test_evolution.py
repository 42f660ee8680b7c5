"""Schema evolution: v2 of a producer deployed beside a v1 consumer. Adding an optional field
is harmless (the consumer reads the events, keeping the field it does not know); a change that
no event could survive stops the consumer at start, naming the field."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from nerve.service import Event, Service
from nerve.service.runtime import ServiceError
from nerve.testing import Platform


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with Platform() as running:
        yield running


class Tick(Event, topic="evo.ticks", key="n"):
    n: int


class ReadingV1(Event, topic="evo.readings", key="sensor"):
    sensor: str
    value: float


class ReadingV2(Event, topic="evo.readings", key="sensor"):
    sensor: str
    value: float
    unit: str = "C"  # the most common change: an optional field


class Stored(Event, topic="evo.stored", key="sensor"):
    sensor: str
    value: float
    extra: dict[str, str]


def producer(model: type[ReadingV1] | type[ReadingV2]) -> Service:
    sensor = Service("evo-sensor")

    @sensor.on(Tick)
    def read(tick: Tick) -> ReadingV1 | ReadingV2:
        return model(sensor=f"s{tick.n}", value=float(tick.n))

    # The return annotation names both; a deployed producer registers only what it emits.
    sensor.emits = [model]
    return sensor


def consumer() -> Service:
    store = Service("evo-store")

    @store.on(ReadingV1)
    def keep(reading: ReadingV1) -> Stored:
        extra = {k: str(v) for k, v in (reading.model_extra or {}).items()}
        return Stored(sensor=reading.sensor, value=reading.value, extra=extra)

    return store


def test_a_v2_producer_beside_a_v1_consumer(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    platform.run(producer(ReadingV1), consumer())
    platform.emit(Tick(n=1))
    platform.expect(Stored, lambda s: s.sensor == "s1")
    platform.stop_services()

    # v2 of the producer: the registry accepts it (BACKWARD), the v1 consumer keeps running.
    platform.run(producer(ReadingV2), consumer())
    platform.emit(Tick(n=2))
    [stored] = platform.expect(Stored, lambda s: s.sensor == "s2")
    assert stored.extra == {"unit": "C"}  # the unknown field is kept, not refused
    assert platform.read("evo.readings.dlq") == []
    platform.stop_services()
    versions = httpx.get(f"{platform.registry_url}/subjects/evo.readings-value/versions").json()
    assert versions == [1, 2]

    # Restarted, the v1 consumer checks the latest schema (v2) and is content.
    with caplog.at_level(logging.WARNING, logger="nerve.service"):
        platform.run(consumer())
    assert not [r for r in caplog.records if "ReadingV1 reading" in r.getMessage()]
    platform.stop_services()

    # Constructing an event still refuses fields the model does not have.
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        ReadingV1(sensor="s", value=1.0, unit="C")  # type: ignore[call-arg]


def test_a_consumer_refuses_to_start_when_its_model_cannot_read_the_latest_schema(
    platform: Platform,
) -> None:
    class Measured(Event, topic="evo.measured", key="sensor"):
        sensor: str
        value: float
        taken_at: str | None = None

    url = platform.registry_url
    subject = "evo.measured-value"
    httpx.put(f"{url}/config/{subject}", json={"compatibility": "NONE"}).raise_for_status()

    def register(schema: dict[str, object]) -> None:
        body = {"schemaType": "JSON", "schema": json.dumps(schema)}
        httpx.post(f"{url}/subjects/{subject}/versions", json=body).raise_for_status()

    reader = Service("evo-reader")
    reader.on(Measured)(lambda event: None)

    # A producer dropped a field the consumer requires: no event could be read.
    only_sensor = {"sensor": {"type": "string"}}
    register({"type": "object", "properties": only_sensor, "required": ["sensor"]})
    with pytest.raises(ServiceError, match=r"Measured reading evo.measured-value .*'value'"):
        platform.run(reader)

    # ... or changed its type.
    register(
        {
            "type": "object",
            "properties": {"sensor": {"type": "string"}, "value": {"type": "string"}},
            "required": ["sensor", "value"],
        }
    )
    with pytest.raises(ServiceError, match=r"'value': the latest schema writes string"):
        platform.run(reader)


def test_an_optional_field_in_the_latest_schema_that_the_model_requires_is_a_warning(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    class Parcel(Event, topic="evo.parcels", key="id"):
        id: str
        weight: float

    url = platform.registry_url
    schema = {
        "type": "object",
        "properties": {"id": {"type": "string"}, "weight": {"type": "number"}},
        "required": ["id"],
    }
    body = {"schemaType": "JSON", "schema": json.dumps(schema)}
    httpx.post(f"{url}/subjects/evo.parcels-value/versions", json=body).raise_for_status()
    parcels = Service("evo-parcels")
    parcels.on(Parcel)(lambda event: None)
    with caplog.at_level(logging.WARNING, logger="nerve.service"):
        platform.run(parcels)
    time.sleep(0.1)
    platform.stop_services()
    [warning] = [r.getMessage() for r in caplog.records if "Parcel reading" in r.getMessage()]
    assert "'weight'" in warning and "optional" in warning
