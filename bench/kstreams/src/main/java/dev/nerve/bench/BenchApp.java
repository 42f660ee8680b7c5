package dev.nerve.bench;

import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.TimeWindows;

/**
 * One workload of bench/streams.py on Kafka Streams, until standard input closes.
 *
 * <pre>
 * BenchApp tumbling|session|join|count IN OUT BOOTSTRAP APPLICATION_ID STATE_DIR [TABLE]
 * </pre>
 *
 * <p>Every update is written at once (no record cache), as the Python systems measured beside
 * it emit on every update; one stream thread, as they run on one core.
 */
public final class BenchApp {
    private static final Duration WINDOW = Duration.ofSeconds(10);
    private static final Duration GAP = Duration.ofSeconds(5);
    private static final Duration GRACE = Duration.ofSeconds(2);

    private BenchApp() {}

    public static void main(String[] args) throws Exception {
        String workload = args[0];
        String in = args[1];
        String out = args[2];
        StreamsBuilder builder = new StreamsBuilder();
        KStream<String, String> source = builder.stream(in);
        switch (workload) {
            case "tumbling" -> source.groupByKey()
                    .windowedBy(TimeWindows.ofSizeAndGrace(WINDOW, GRACE))
                    .count()
                    .toStream()
                    .map((w, c) -> KeyValue.pair(
                            w.key() + "@" + w.window().start(), c == null ? null : c.toString()))
                    .to(out);
            case "session" -> source.groupByKey()
                    .windowedBy(SessionWindows.ofInactivityGapAndGrace(GAP, GRACE))
                    .count()
                    .toStream()
                    .map((w, c) -> KeyValue.pair(
                            w.key() + "@" + w.window().start() + "-" + w.window().end(),
                            c == null ? null : c.toString()))
                    .to(out);
            case "join" -> {
                KTable<String, String> table = builder.table(args[6]);
                source.join(table, (v, t) -> v + "|" + t).to(out);
            }
            case "count" -> source.groupByKey().count().toStream()
                    .mapValues(c -> c == null ? null : c.toString()).to(out);
            default -> throw new IllegalArgumentException("unknown workload " + workload);
        }
        Topology topology = builder.build();
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[4]);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[3]);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[5]);
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        KafkaStreams streams = new KafkaStreams(topology, props);
        CountDownLatch stop = new CountDownLatch(1);
        streams.setUncaughtExceptionHandler(error -> {
            error.printStackTrace();
            stop.countDown();
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                    .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        Thread stdin = new Thread(() -> {
            try {
                while (System.in.read() != -1) {
                    // Only the end of input matters.
                }
            } catch (java.io.IOException e) {
                // A broken pipe is an end of input too.
            }
            stop.countDown();
        }, "stdin-watch");
        stdin.setDaemon(true);
        stdin.start();
        stop.await();
        streams.close(Duration.ofSeconds(30));
    }
}
