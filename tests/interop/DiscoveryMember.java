// Curator 5 service discovery (curator-x-discovery) on the Java side of the interop tests of
// corral-recipes (recipes/tests/discovery_interop.rs compiles and runs this with javac/java
// at test time).
//
// Usage:
//   DiscoveryMember print
//       Prints, one per line, the JSON Curator's default JsonInstanceSerializer writes for
//       a few fixed instances (compared byte for byte with the Rust serializer).
//   DiscoveryMember <connect> <base-path> register <service> <id>[,<id>...] <port>
//       Registers one DYNAMIC instance per id (address 127.0.0.1, payload a HashMap
//       {"zone": "java-<id>"}), printing REGISTERED <id> for each. Then reads commands from
//       stdin: "unregister <id>" (prints UNREGISTERED <id>) and "quit".
//   DiscoveryMember <connect> <base-path> watch <service>
//       Runs a Curator ServiceCache of the service. Initially and after each change it prints
//       one line per instance,
//         INSTANCE <id> <address> <port> <payload class> <payload> <enabled>
//       then SEEN <ids, sorted, comma-separated> (SEEN - when there is none). Stops on "quit"
//       or when stdin closes.
// Every mode ends with DONE. Errors go to stderr with a non-zero exit status.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.ServiceType;
import org.apache.curator.x.discovery.UriSpec;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;
import org.apache.curator.x.discovery.details.ServiceCacheListener;

public final class DiscoveryMember {
    private DiscoveryMember() {}

    /** A payload POJO, written with its class name. */
    public static final class Details {
        public String description = "d";
        public int weight = 3;

        public Details() {}
    }

    private static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    @SuppressWarnings({"rawtypes", "unchecked"})
    private static void print() throws Exception {
        ServiceInstance<Details> pojo = ServiceInstance.<Details>builder()
            .name("svc").id("id-1").address("10.0.0.1").port(8080).payload(new Details())
            .uriSpec(new UriSpec("{scheme}://foo.com:{port}")).registrationTimeUTC(1234).build();
        say(new String(new JsonInstanceSerializer<>(Details.class).serialize(pojo),
            StandardCharsets.UTF_8));
        ServiceInstance<Map> map = ServiceInstance.<Map>builder()
            .name("svc").id("id-2").address("h").sslPort(443)
            .payload(new HashMap<>(Map.of("zone", "eu-1"))).serviceType(ServiceType.STATIC)
            .registrationTimeUTC(5).build();
        say(new String(new JsonInstanceSerializer<>(Map.class).serialize(map),
            StandardCharsets.UTF_8));
        ServiceInstance<String> text = ServiceInstance.<String>builder()
            .name("svc").id("id-3").address("h").payload("hello")
            .serviceType(ServiceType.DYNAMIC_SEQUENTIAL).registrationTimeUTC(6).build();
        say(new String(new JsonInstanceSerializer<>(String.class).serialize(text),
            StandardCharsets.UTF_8));
        ServiceInstance<Object> disabled = ServiceInstance.<Object>builder()
            .name("svc").id("id-4").address("h").port(1).payload(5L).enabled(false)
            .serviceType(ServiceType.PERMANENT).registrationTimeUTC(7).build();
        // The full (non-compatible) mode is the only one that writes "enabled".
        say(new String(new JsonInstanceSerializer<>(Object.class, false).serialize(disabled),
            StandardCharsets.UTF_8));
        say("DONE");
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 1 && args[0].equals("print")) {
            print();
            return;
        }
        if (args.length < 4) {
            System.err.println("usage: DiscoveryMember print | <connect> <base> register|watch ...");
            System.exit(2);
        }
        String connect = args[0];
        String base = args[1];
        String mode = args[2];
        String service = args[3];
        BufferedReader stdin =
            new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));

        CuratorFramework client = CuratorFrameworkFactory.newClient(
            connect, 10_000, 10_000, new ExponentialBackoffRetry(100, 5));
        client.start();
        try {
            if (!client.blockUntilConnected(30, TimeUnit.SECONDS)) {
                throw new IllegalStateException("not connected to " + connect);
            }
            @SuppressWarnings("rawtypes")
            ServiceDiscovery<Map> discovery = ServiceDiscoveryBuilder.builder(Map.class)
                .client(client).basePath(base).build();
            discovery.start();
            try {
                if (mode.equals("register")) {
                    register(discovery, service, args[4].split(","), Integer.parseInt(args[5]),
                        stdin);
                } else if (mode.equals("watch")) {
                    watch(discovery, service, stdin);
                } else {
                    throw new IllegalArgumentException("unknown mode " + mode);
                }
            } finally {
                discovery.close();
            }
            say("DONE");
        } finally {
            client.close();
        }
    }

    @SuppressWarnings({"rawtypes", "unchecked"})
    private static void register(ServiceDiscovery<Map> discovery, String service, String[] ids,
                                 int port, BufferedReader stdin) throws Exception {
        Map<String, ServiceInstance<Map>> registered = new HashMap<>();
        for (String id : ids) {
            ServiceInstance<Map> instance = ServiceInstance.<Map>builder()
                .name(service).id(id).address("127.0.0.1").port(port)
                .payload(new HashMap<>(Map.of("zone", "java-" + id))).build();
            discovery.registerService(instance);
            registered.put(id, instance);
            say("REGISTERED " + id);
        }
        String line;
        while ((line = stdin.readLine()) != null) {
            line = line.trim();
            if (line.equals("quit")) {
                return;
            }
            if (line.startsWith("unregister ")) {
                String id = line.substring("unregister ".length());
                discovery.unregisterService(registered.remove(id));
                say("UNREGISTERED " + id);
            }
        }
    }

    @SuppressWarnings("rawtypes")
    private static void watch(ServiceDiscovery<Map> discovery, String service,
                              BufferedReader stdin) throws Exception {
        ServiceCache<Map> cache = discovery.serviceCacheBuilder().name(service).build();
        final String[] last = {null};
        Runnable report = () -> {
            synchronized (last) {
                TreeMap<String, ServiceInstance<Map>> byId = new TreeMap<>();
                for (ServiceInstance<Map> i : cache.getInstances()) {
                    byId.put(i.getId(), i);
                }
                StringBuilder lines = new StringBuilder();
                List<String> ids = new ArrayList<>(byId.keySet());
                for (ServiceInstance<Map> i : byId.values()) {
                    Object payload = i.getPayload();
                    lines.append("INSTANCE ").append(i.getId()).append(' ')
                        .append(i.getAddress()).append(' ').append(i.getPort()).append(' ')
                        .append(payload == null ? "null" : payload.getClass().getName())
                        .append(' ').append(String.valueOf(payload).replace(' ', '_'))
                        .append(' ').append(i.isEnabled()).append('\n');
                }
                String seen = ids.isEmpty() ? "-" : String.join(",", ids);
                String text = lines + "SEEN " + seen;
                if (!text.equals(last[0])) {
                    last[0] = text;
                    say(text);
                }
            }
        };
        cache.addListener(new ServiceCacheListener() {
            @Override
            public void cacheChanged() {
                report.run();
            }

            @Override
            public void stateChanged(CuratorFramework client, ConnectionState newState) {}
        });
        cache.start();
        try {
            report.run();
            String line;
            while ((line = stdin.readLine()) != null) {
                if (line.trim().equals("quit")) {
                    return;
                }
            }
        } finally {
            cache.close();
        }
    }
}
