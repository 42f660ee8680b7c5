// Prints, as JSON, every config Apache Kafka defines for topics, brokers, groups and client
// metrics: name, type, default (as DescribeConfigs shows it), validator, and for brokers the
// dynamic update mode, for topics the broker synonyms. Run by scripts/kafka-configs/generate
// against the Kafka jars; the output is src/nerve/broker/kafka_configs.json.
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.*;
import java.util.function.Function;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.types.Password;

public class DumpConfigs {
    static StringBuilder out = new StringBuilder();

    static String quote(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c)); else b.append(c);
            }
        }
        return b.append('"').toString();
    }

    static String value(Object v) {
        if (v == null) return "null";
        if (v instanceof Number || v instanceof Boolean) return v.toString();
        if (v instanceof Collection) {
            StringJoiner j = new StringJoiner(", ", "[", "]");
            for (Object o : (Collection<?>) v) j.add(value(o));
            return j.toString();
        }
        if (v instanceof ConfigDef.Validator) return validator((ConfigDef.Validator) v);
        return quote(v.toString());
    }

    // A validator as {"class": ..., "text": toString(), and its fields}; lambdas keep the text.
    static String validator(ConfigDef.Validator v) {
        if (v == null) return "null";
        StringJoiner j = new StringJoiner(", ", "{", "}");
        j.add("\"class\": " + quote(v.getClass().getName()));
        j.add("\"text\": " + quote(String.valueOf(v)));
        for (Class<?> c = v.getClass(); c != null && c != Object.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                if (Modifier.isStatic(f.getModifiers()) || f.isSynthetic()) continue;
                try {
                    f.setAccessible(true);
                    Object fv = f.get(v);
                    if (fv != null && fv.getClass().getName().contains("$$Lambda")) continue;
                    j.add(quote(f.getName()) + ": " + value(fv));
                } catch (Exception e) {
                    // a field of another module that is not open to reflection: text only
                }
            }
        }
        return j.toString();
    }

    static String defaultString(ConfigDef.ConfigKey key) {
        if (!key.hasDefault()) return "null";
        Object d = key.defaultValue;
        if (d == null) return "null";
        if (d instanceof Password) return "null";
        return quote(ConfigDef.convertToString(d, key.type));
    }

    static void keys(String section, Map<String, ConfigDef.ConfigKey> keys,
                     Function<String, String> extra, boolean last) {
        out.append("  ").append(quote(section)).append(": [\n");
        List<String> names = new ArrayList<>(keys.keySet());
        Collections.sort(names);
        for (int i = 0; i < names.size(); i++) {
            ConfigDef.ConfigKey k = keys.get(names.get(i));
            out.append("    {\"name\": ").append(quote(k.name))
               .append(", \"type\": ").append(quote(k.type.name()))
               .append(", \"default\": ").append(defaultString(k))
               .append(", \"importance\": ").append(quote(k.importance == null ? null : k.importance.name()))
               .append(", \"internal\": ").append(k.internalConfig)
               .append(", \"validator\": ").append(validator(k.validator));
            String more = extra.apply(k.name);
            if (more != null) out.append(", ").append(more);
            out.append(i == names.size() - 1 ? "}\n" : "},\n");
        }
        out.append(last ? "  ]\n" : "  ],\n");
    }

    public static void main(String[] args) throws Exception {
        Map<String, List<org.apache.kafka.server.config.ConfigSynonym>> synonyms =
            org.apache.kafka.server.config.ServerTopicConfigSynonyms.ALL_TOPIC_CONFIG_SYNONYMS;
        Map<String, String> modes =
            org.apache.kafka.server.config.DynamicBrokerConfig.dynamicConfigUpdateModes();
        out.append("{\n  \"generated_by\": \"scripts/kafka-configs/generate (DumpConfigs.java run against")
           .append(" Apache Kafka's jars); do not edit by hand\",\n");
        out.append("  \"kafka_version\": ").append(quote(args[0])).append(",\n");
        keys("topic", org.apache.kafka.storage.internals.log.LogConfig.configKeys(), name -> {
            List<org.apache.kafka.server.config.ConfigSynonym> list = synonyms.get(name);
            if (list == null) return "\"synonyms\": []";
            StringJoiner j = new StringJoiner(", ", "\"synonyms\": [", "]");
            for (org.apache.kafka.server.config.ConfigSynonym s : list) {
                String conv = "none";
                if (s.converter() == org.apache.kafka.server.config.ConfigSynonym.HOURS_TO_MILLISECONDS) conv = "hours";
                if (s.converter() == org.apache.kafka.server.config.ConfigSynonym.MINUTES_TO_MILLISECONDS) conv = "minutes";
                j.add("{\"name\": " + quote(s.name()) + ", \"unit\": " + quote(conv) + "}");
            }
            return j.toString();
        }, false);
        ConfigDef broker = kafka.server.KafkaConfig.configDef();
        keys("broker", broker.configKeys(), name -> {
            String mode = modes.get(name);
            boolean sensitive = broker.configKeys().get(name).type == ConfigDef.Type.PASSWORD;
            return "\"update_mode\": " + quote(mode == null ? "read-only" : mode)
                + ", \"sensitive\": " + sensitive;
        }, false);
        keys("group", org.apache.kafka.coordinator.group.GroupConfig.CONFIG_DEF.configKeys(), n -> null, false);
        keys("client_metrics", org.apache.kafka.server.metrics.ClientMetricsConfigs.configDef().configKeys(), n -> null, true);
        out.append("}\n");
        System.out.print(out);
    }
}
