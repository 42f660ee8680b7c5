import com.sun.tools.attach.VirtualMachine;
import java.util.TreeSet;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

/**
 * Prints the Kafka metrics a running broker (a JVM, by pid) holds, read over JMX through the
 * Attach API: for every MBean matching one of the patterns given, one line
 * "objectName<TAB>attribute<TAB>value" for its Count and Value attributes, those the
 * Prometheus JMX exporter turns into kafka_..._total and gauges.
 */
public final class KafkaMBeans {
    public static void main(String[] args) throws Exception {
        VirtualMachine vm = VirtualMachine.attach(args[0]);
        String address;
        try {
            address = vm.startLocalManagementAgent();
        } finally {
            vm.detach();
        }
        try (JMXConnector connector = JMXConnectorFactory.connect(new JMXServiceURL(address))) {
            MBeanServerConnection server = connector.getMBeanServerConnection();
            for (int i = 1; i < args.length; i++) {
                TreeSet<ObjectName> names = new TreeSet<>(server.queryNames(new ObjectName(args[i]), null));
                for (ObjectName name : names) {
                    for (String attribute : new String[] {"Count", "Value"}) {
                        try {
                            Object value = server.getAttribute(name, attribute);
                            System.out.println(name + "\t" + attribute + "\t" + value);
                        } catch (javax.management.AttributeNotFoundException absent) {
                            // a meter has no Value, a gauge no Count
                        }
                    }
                }
            }
        }
    }
}
