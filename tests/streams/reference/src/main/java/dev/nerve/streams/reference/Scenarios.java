package dev.nerve.streams.reference;

import java.time.Duration;
import java.util.List;
import java.util.function.BiFunction;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.ValueJoiner;
import org.apache.kafka.streams.kstream.Windowed;

/**
 * The topology of each scenario. tests/streams/scenarios.py holds their inputs and says what
 * each one checks; the names, topics and output formats here must match it.
 *
 * <p>Topics: a scenario with one input reads {@code <name>-in}; a join reads
 * {@code <name>-left} and {@code <name>-right}; every scenario writes {@code <name>-out}. Keys
 * and values are UTF-8 strings. A windowed key is written as {@code key@START-END} (epoch ms,
 * END as Kafka Streams reports it), a count as decimal text, a join result as {@code L+R} with
 * {@code null} for a missing side, and a deleted table row as a tombstone (null value).
 */
final class Scenarios {
    static final List<String> NAMES = List.of(
            "tumbling", "tumbling-final", "hopping", "sliding", "session", "aggregate", "group-by",
            "stream-table-inner", "stream-table-left",
            "stream-stream-inner", "stream-stream-left", "stream-stream-outer",
            "table-table-inner", "table-table-left", "table-table-outer",
            "fk-join", "fk-join-left");

    private static final Duration WINDOW = Duration.ofSeconds(10);
    private static final Duration HOP = Duration.ofSeconds(5);
    private static final Duration GRACE = Duration.ofSeconds(2);
    private static final Duration SESSION_GAP = Duration.ofSeconds(5);
    private static final Duration JOIN_DIFFERENCE = Duration.ofSeconds(5);

    private static final Serde<String> TEXT = Serdes.String();
    private static final Consumed<String, String> READ = Consumed.with(TEXT, TEXT);
    private static final Produced<String, String> WRITE = Produced.with(TEXT, TEXT);

    private static final ValueJoiner<String, String, String> JOIN =
            (left, right) -> left + "+" + right;

    private Scenarios() {}

    /** The topic names of one scenario, under an optional prefix (to run it twice on a cluster). */
    record Topics(String in, String left, String right, String out) {
        static Topics of(String prefix, String scenario) {
            String base = prefix + scenario;
            return new Topics(base + "-in", base + "-left", base + "-right", base + "-out");
        }
    }

    static Topology build(String scenario, Topics topics) {
        StreamsBuilder builder = new StreamsBuilder();
        switch (scenario) {
            case "tumbling" -> timeWindowedCount(builder, topics,
                    TimeWindows.ofSizeAndGrace(WINDOW, GRACE), false);
            case "tumbling-final" -> timeWindowedCount(builder, topics,
                    TimeWindows.ofSizeAndGrace(WINDOW, GRACE), true);
            case "hopping" -> timeWindowedCount(builder, topics,
                    TimeWindows.ofSizeAndGrace(WINDOW, GRACE).advanceBy(HOP), false);
            case "sliding" -> writeWindowed(grouped(builder, topics)
                    .windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(WINDOW, GRACE))
                    .count().toStream(), topics);
            case "session" -> writeWindowed(grouped(builder, topics)
                    .windowedBy(SessionWindows.ofInactivityGapAndGrace(SESSION_GAP, GRACE))
                    .count().toStream(), topics);
            case "aggregate" -> grouped(builder, topics)
                    .reduce((sum, value) -> Long.toString(Long.parseLong(sum) + Long.parseLong(value)))
                    .toStream().to(topics.out(), WRITE);
            case "group-by" -> builder.stream(topics.in(), READ)
                    .groupBy((key, value) -> beforeBar(value), Grouped.with(TEXT, TEXT))
                    .count().toStream()
                    .mapValues(count -> count == null ? null : Long.toString(count))
                    .to(topics.out(), WRITE);
            case "stream-table-inner" -> builder.stream(topics.left(), READ)
                    .join(builder.table(topics.right(), READ), JOIN).to(topics.out(), WRITE);
            case "stream-table-left" -> builder.stream(topics.left(), READ)
                    .leftJoin(builder.table(topics.right(), READ), JOIN).to(topics.out(), WRITE);
            case "stream-stream-inner", "stream-stream-left", "stream-stream-outer" ->
                    streamStreamJoin(builder, topics, scenario.substring("stream-stream-".length()));
            case "table-table-inner" -> leftTable(builder, topics)
                    .join(rightTable(builder, topics), JOIN).toStream().to(topics.out(), WRITE);
            case "table-table-left" -> leftTable(builder, topics)
                    .leftJoin(rightTable(builder, topics), JOIN).toStream().to(topics.out(), WRITE);
            case "table-table-outer" -> leftTable(builder, topics)
                    .outerJoin(rightTable(builder, topics), JOIN).toStream().to(topics.out(), WRITE);
            case "fk-join", "fk-join-left" ->
                    foreignKeyJoin(builder, topics, scenario.equals("fk-join-left"));
            default -> throw new IllegalArgumentException(
                    "unknown scenario " + scenario + "; known: " + String.join(", ", NAMES));
        }
        return builder.build();
    }

    private static KGroupedStream<String, String> grouped(StreamsBuilder builder, Topics topics) {
        return builder.stream(topics.in(), READ).groupByKey(Grouped.with(TEXT, TEXT));
    }

    private static void timeWindowedCount(
            StreamsBuilder builder, Topics topics, TimeWindows windows, boolean finalOnly) {
        KTable<Windowed<String>, Long> counts = grouped(builder, topics).windowedBy(windows).count();
        if (finalOnly) {
            counts = counts.suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()));
        }
        writeWindowed(counts.toStream(), topics);
    }

    private static void writeWindowed(KStream<Windowed<String>, Long> counts, Topics topics) {
        counts.map((window, count) -> KeyValue.pair(
                        window.key() + "@" + window.window().start() + "-" + window.window().end(),
                        count == null ? null : Long.toString(count)))
                .to(topics.out(), WRITE);
    }

    private static void streamStreamJoin(StreamsBuilder builder, Topics topics, String kind) {
        KStream<String, String> left = builder.stream(topics.left(), READ);
        KStream<String, String> right = builder.stream(topics.right(), READ);
        JoinWindows windows = JoinWindows.ofTimeDifferenceAndGrace(JOIN_DIFFERENCE, GRACE);
        StreamJoined<String, String, String> serdes = StreamJoined.with(TEXT, TEXT, TEXT);
        KStream<String, String> joined = switch (kind) {
            case "inner" -> left.join(right, JOIN, windows, serdes);
            case "left" -> left.leftJoin(right, JOIN, windows, serdes);
            default -> left.outerJoin(right, JOIN, windows, serdes);
        };
        joined.to(topics.out(), WRITE);
    }

    private static KTable<String, String> leftTable(StreamsBuilder builder, Topics topics) {
        return builder.table(topics.left(), READ);
    }

    private static KTable<String, String> rightTable(StreamsBuilder builder, Topics topics) {
        return builder.table(topics.right(), READ);
    }

    /** Left values are {@code FK|payload}; the result is {@code payload+right}. */
    private static void foreignKeyJoin(StreamsBuilder builder, Topics topics, boolean leftJoin) {
        KTable<String, String> left = leftTable(builder, topics);
        KTable<String, String> right = rightTable(builder, topics);
        BiFunction<String, String, String> foreignKey = (key, value) -> beforeBar(value);
        ValueJoiner<String, String, String> joiner =
                (leftValue, rightValue) -> afterBar(leftValue) + "+" + rightValue;
        KTable<String, String> joined = leftJoin
                ? left.leftJoin(right, foreignKey, joiner)
                : left.join(right, foreignKey, joiner);
        joined.toStream().to(topics.out(), WRITE);
    }

    private static String beforeBar(String value) {
        if (value == null) {
            return null;
        }
        int bar = value.indexOf('|');
        return bar < 0 ? value : value.substring(0, bar);
    }

    private static String afterBar(String value) {
        int bar = value.indexOf('|');
        return bar < 0 ? "" : value.substring(bar + 1);
    }
}
