package dev.nerve.streams.reference;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;

/**
 * Runs scenarios of Kafka Streams against a cluster until its standard input closes.
 *
 * <pre>
 * ReferenceApp SCENARIO[,SCENARIO...] BOOTSTRAP APPLICATION_ID [--eos] [--topic-prefix P]
 *              [--state-dir DIR]
 * </pre>
 *
 * <p>One scenario runs as application {@code APPLICATION_ID}; several run side by side in this
 * one JVM (start-up dominates a small scenario), each its own KafkaStreams instance with the
 * application id {@code APPLICATION_ID-SCENARIO}. Standard output says {@code running NAME}
 * whenever a scenario reaches RUNNING and {@code failed NAME} if one dies; the exit status is
 * then 1. Records are processed as they arrive and each update is written at once
 * (no record cache), so the output is every intermediate result, as the tests compare it.
 */
public final class ReferenceApp {
    private static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(30);

    private ReferenceApp() {}

    public static void main(String[] args) throws Exception {
        Options options = Options.parse(args);
        List<KafkaStreams> apps = new ArrayList<>();
        CountDownLatch stop = new CountDownLatch(1);
        AtomicBoolean failed = new AtomicBoolean(false);
        for (String scenario : options.scenarios()) {
            String applicationId = options.scenarios().size() == 1
                    ? options.applicationId()
                    : options.applicationId() + "-" + scenario;
            KafkaStreams streams = new KafkaStreams(
                    Scenarios.build(scenario, Scenarios.Topics.of(options.topicPrefix(), scenario)),
                    config(options, applicationId));
            streams.setStateListener((now, before) -> {
                if (now == KafkaStreams.State.RUNNING) {
                    say("running " + scenario);
                } else if (now == KafkaStreams.State.ERROR) {
                    failed.set(true);
                    say("failed " + scenario);
                    stop.countDown();
                }
            });
            // A dead stream thread would leave the scenario's output silently short: stop it.
            streams.setUncaughtExceptionHandler(error -> StreamThreadExceptionResponse.SHUTDOWN_CLIENT);
            apps.add(streams);
        }
        Thread closer = new Thread(() -> closeAll(apps), "close-on-signal");
        Runtime.getRuntime().addShutdownHook(closer);
        apps.forEach(KafkaStreams::start);

        Thread stdin = new Thread(() -> {
            try {
                while (System.in.read() != -1) {
                    // Only the end of input matters.
                }
            } catch (IOException e) {
                // A broken pipe is an end of input too.
            }
            stop.countDown();
        }, "stdin-watch");
        stdin.setDaemon(true);
        stdin.start();
        stop.await();

        closeAll(apps);
        Runtime.getRuntime().removeShutdownHook(closer);
        System.exit(failed.get() ? 1 : 0);
    }

    private static Properties config(Options options, String applicationId) throws IOException {
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, options.bootstrap());
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        // Emit on every update: no store cache folding several updates into one.
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // Delete consumed repartition records soon after each commit (DeleteRecords), as an
        // application running for longer than the default 30 s would.
        props.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 100);
        // Window and session changelogs are "compact,delete" with retention.ms of the window's
        // retention plus this: the scenarios' timestamps are years old, and with the default
        // (one day) the broker's retention check may delete a changelog before a restart reads
        // it back, depending on when the check first runs. A century keeps them.
        props.put(StreamsConfig.WINDOW_STORE_CHANGE_LOG_ADDITIONAL_RETENTION_MS_CONFIG, 100L * 365 * 24 * 3600 * 1000);
        props.put(StreamsConfig.STATE_DIR_CONFIG, options.stateDir().resolve(applicationId).toString());
        // Left and outer stream-stream joins emit an unmatched record once its window closes, but
        // by default look for such records at most once per second of wall-clock time: that
        // makes the output depend on timing. Zero looks on every record (a private setting).
        props.put("__emit.interval.ms.kstreams.outer.join.spurious.results.fix__", 0L);
        if (options.exactlyOnce()) {
            props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        }
        return props;
    }

    /** Closes every instance at once (one by one, each waiting for its thread, is slow). */
    private static void closeAll(List<KafkaStreams> apps) {
        CloseOptions leave = CloseOptions
                .groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                .withTimeout(CLOSE_TIMEOUT);
        List<Thread> closing = new ArrayList<>();
        for (KafkaStreams streams : apps) {
            Thread thread = new Thread(() -> streams.close(leave), "close");
            thread.start();
            closing.add(thread);
        }
        for (Thread thread : closing) {
            try {
                thread.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    private static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    record Options(List<String> scenarios, String bootstrap, String applicationId,
                   boolean exactlyOnce, String topicPrefix, Path stateDir) {
        static Options parse(String[] args) throws IOException {
            if (args.length < 3) {
                throw new IllegalArgumentException(
                        "usage: ReferenceApp SCENARIO[,SCENARIO...] BOOTSTRAP APPLICATION_ID"
                                + " [--eos] [--topic-prefix P] [--state-dir DIR]");
            }
            List<String> scenarios = List.of(args[0].split(","));
            for (String scenario : scenarios) {
                if (!Scenarios.NAMES.contains(scenario)) {
                    throw new IllegalArgumentException("unknown scenario " + scenario
                            + "; known: " + String.join(", ", Scenarios.NAMES));
                }
            }
            boolean exactlyOnce = false;
            String topicPrefix = "";
            Path stateDir = null;
            for (int i = 3; i < args.length; i++) {
                switch (args[i]) {
                    case "--eos" -> exactlyOnce = true;
                    case "--topic-prefix" -> topicPrefix = value(args, ++i);
                    case "--state-dir" -> stateDir = Path.of(value(args, ++i));
                    default -> throw new IllegalArgumentException("unknown option " + args[i]);
                }
            }
            if (stateDir == null) {
                stateDir = Files.createTempDirectory("streams-reference");
            }
            return new Options(scenarios, args[1], args[2], exactlyOnce, topicPrefix, stateDir);
        }

        private static String value(String[] args, int i) {
            if (i >= args.length) {
                throw new IllegalArgumentException(args[i - 1] + " needs a value");
            }
            return args[i];
        }
    }
}
