// kafkajs against a broker, driven by tests/compat/test_other_languages.py: one mode per run,
// results on stdout one per line, kafkajs's log (WARN and above) on stderr, exit 1 on error.
// Security from the environment, when set: NERVE_SASL_MECHANISM (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512) with NERVE_SASL_USERNAME and NERVE_SASL_PASSWORD; NERVE_TLS_CA turns TLS on,
// NERVE_TLS_CERT and NERVE_TLS_KEY add a client certificate.
import { readFileSync } from "node:fs";
import { Kafka, logLevel } from "kafkajs";

const [mode, bootstrap, ...args] = process.argv.slice(2);
const env = process.env;
const security = {};
if (env.NERVE_TLS_CA) {
  security.ssl = { ca: [readFileSync(env.NERVE_TLS_CA)], rejectUnauthorized: true };
  if (env.NERVE_TLS_CERT) {
    security.ssl.cert = readFileSync(env.NERVE_TLS_CERT);
    security.ssl.key = readFileSync(env.NERVE_TLS_KEY);
  }
}
if (env.NERVE_SASL_MECHANISM) {
  security.sasl = {
    mechanism: env.NERVE_SASL_MECHANISM.toLowerCase(),
    username: env.NERVE_SASL_USERNAME,
    password: env.NERVE_SASL_PASSWORD,
  };
}
const kafka = new Kafka({
  clientId: "nerve-compat",
  brokers: [bootstrap],
  // kafkajs gives a connection (TLS handshake included) 1 s by default: short on a loaded
  // machine against a JVM's first handshakes.
  connectionTimeout: 10000,
  ...security,
  logLevel: logLevel.WARN,
  logCreator: () => ({ level, log }) => {
    const name = Object.keys(logLevel).find((key) => logLevel[key] === level);
    process.stderr.write(`${name} ${log.message} ${JSON.stringify(log)}\n`);
  },
});

async function admin(topic) {
  const client = kafka.admin();
  await client.connect();
  await client.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  const meta = await client.fetchTopicMetadata({ topics: [topic] });
  console.log(`partitions ${meta.topics[0].partitions.length}`);
  await client.disconnect();
}

async function produce(topic, count) {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const messages = [];
  for (let i = 0; i < count; i++) {
    messages.push({ key: `k${i % 5}`, value: `v${i}`, headers: { lang: "js" } });
  }
  await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();
  console.log(`produced ${count}`);
}

async function consume(topic, group, count) {
  const consumer = kafka.consumer({ groupId: group, readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const values = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${values.length} of ${count}`)), 60000);
    consumer.run({
      eachMessage: async ({ message }) => {
        values.push(message.value.toString());
        if (values.length >= count) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect(); // commits what was consumed
  values.sort();
  for (const v of values) console.log(`record ${v}`);
  console.log(`committed ${values.length}`);
}

async function transact(topic, transactionalId) {
  const producer = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (const [commit, prefix, n] of [[true, "committed", 3], [false, "aborted", 2]]) {
    const txn = await producer.transaction();
    const messages = Array.from({ length: n }, (_, i) => ({ value: `${prefix}-${i}` }));
    await txn.send({ topic, messages });
    if (commit) await txn.commit();
    else await txn.abort();
  }
  await producer.disconnect();
  console.log("transactions done");
}

const modes = {
  admin: () => admin(args[0]),
  produce: () => produce(args[0], Number(args[1])),
  consume: () => consume(args[0], args[1], Number(args[2])),
  transact: () => transact(args[0], args[1]),
};

try {
  await modes[mode]();
  process.exit(0);
} catch (err) {
  process.stderr.write(`ERROR ${err.stack || err}\n`);
  process.exit(1);
}
