"""Broker security: listeners and TLS, SASL mechanisms, SCRAM credentials, the authorizer and
its ACL store. Kafka's model and config names throughout, so a client configured for a Kafka
cluster connects to nerve unchanged. Depends on ``nerve.security`` (principals) and the
broker's internal-topic helpers; off (one PLAINTEXT listener, no authorizer) unless configured.
"""
