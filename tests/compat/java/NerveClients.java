import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The Java Kafka client against a broker, driven by tests/compat/test_java_client.py.
 * Each mode prints its results on stdout, one per line; the client's own log goes to stderr.
 */
public final class NerveClients {
    public static void main(String[] args) throws Exception {
        String mode = args[0];
        String bootstrap = args[1];
        switch (mode) {
            case "admin" -> admin(bootstrap, args[2]);
            case "produce" -> produce(bootstrap, args[2], Integer.parseInt(args[3]));
            case "consume" -> consume(bootstrap, args[2], args[3], Integer.parseInt(args[4]),
                    args.length > 5 ? args[5] : "classic");
            case "transact" -> transact(bootstrap, args[2], args[3]);
            case "share" -> share(bootstrap, args[2], args[3], Integer.parseInt(args[4]));
            default -> throw new IllegalArgumentException(mode);
        }
    }

    static void admin(String bootstrap, String topic) throws Exception {
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", bootstrap))) {
            admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get();
            TopicDescription description =
                    admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            System.out.println("partitions " + description.partitions().size());
            System.out.println("cluster " + admin.describeCluster().clusterId().get());
        }
    }

    /** Client settings from the properties file NERVE_CLIENT_CONFIG names (TLS, SASL). */
    static void security(Properties props) {
        String path = System.getenv("NERVE_CLIENT_CONFIG");
        if (path == null) {
            return;
        }
        try (java.io.FileReader reader = new java.io.FileReader(path)) {
            props.load(reader);
        } catch (java.io.IOException e) {
            throw new RuntimeException(e);
        }
    }

    /** The producer with the library's defaults: acks=all and idempotence on. */
    static void produce(String bootstrap, String topic, int count) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        security(props);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                sent.add(producer.send(new ProducerRecord<>(topic, "k" + (i % 5), "v" + i)));
            }
            for (Future<RecordMetadata> f : sent) {
                f.get();
            }
            System.out.println("produced " + sent.size());
        }
    }

    /** A group consumer; protocol "consumer" is KIP-848's group protocol. */
    static void consume(String bootstrap, String topic, String group, int count, String protocol) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        security(props);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(
                ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(topic));
            int seen = 0;
            long deadline = System.currentTimeMillis() + 60_000;
            while (seen < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    System.out.println("record " + record.value());
                    seen++;
                }
            }
            consumer.commitSync();
            System.out.println("committed " + seen);
        }
    }

    static void transact(String bootstrap, String topic, String transactionalId) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        security(props);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            producer.beginTransaction();
            for (int i = 0; i < 3; i++) {
                producer.send(new ProducerRecord<>(topic, "committed-" + i));
            }
            producer.commitTransaction();
            producer.beginTransaction();
            for (int i = 0; i < 2; i++) {
                producer.send(new ProducerRecord<>(topic, "aborted-" + i));
            }
            producer.flush();
            producer.abortTransaction();
            System.out.println("transactions done");
        }
    }

    /**
     * A share-group member (KIP-932) reading from the start: v0 is released once (and so
     * delivered again), v1 rejected (never delivered again), every other record accepted;
     * each poll's acknowledgements committed with commitSync, whose failures are printed.
     */
    static void share(String bootstrap, String topic, String group, int count) throws Exception {
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", bootstrap))) {
            ConfigResource resource = new ConfigResource(ConfigResource.Type.GROUP, group);
            AlterConfigOp earliest = new AlterConfigOp(
                    new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET);
            admin.incrementalAlterConfigs(Map.of(resource, List.of(earliest))).all().get();
        }
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put("share.acknowledgement.mode", "explicit");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(
                ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        try (KafkaShareConsumer<String, String> consumer = new KafkaShareConsumer<>(props)) {
            consumer.subscribe(List.of(topic));
            int seen = 0;
            boolean released = false;
            long deadline = System.currentTimeMillis() + 60_000;
            while (seen < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    short deliveries = record.deliveryCount().orElse((short) 0);
                    if (record.value().equals("v0") && !released) {
                        consumer.acknowledge(record, AcknowledgeType.RELEASE);
                        released = true;
                        System.out.println("released v0 " + deliveries);
                        continue;
                    }
                    if (record.value().equals("v1")) {
                        consumer.acknowledge(record, AcknowledgeType.REJECT);
                        System.out.println("rejected v1 " + deliveries);
                        seen++;
                        continue;
                    }
                    consumer.acknowledge(record, AcknowledgeType.ACCEPT);
                    System.out.println("record " + record.value() + " " + deliveries);
                    seen++;
                }
                // commitSync sends what was acknowledged in a ShareAcknowledge and answers
                // each partition's outcome: a failure here is an acknowledgement not applied.
                consumer.commitSync().forEach((partition, failure) -> failure.ifPresent(
                        e -> System.out.println("commit failed " + partition + " " + e)));
            }
            System.out.println("consumed " + seen);
        }
    }
}
