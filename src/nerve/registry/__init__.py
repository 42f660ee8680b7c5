"""nerve's schema registry: the Confluent Schema Registry REST API over a compacted Kafka topic.

State lives in the `_schemas` topic (Confluent's record layout, one partition), so any number of
instances, on nerve's broker or on Apache Kafka, serve the same schemas. Depends on
confluent-kafka for Kafka, Starlette/uvicorn for HTTP and the schema type libraries (fastavro,
jsonschema, protobuf + protoc from grpcio-tools); never on the broker's internals.
"""
