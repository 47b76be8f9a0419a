// A Curator 5 queue producer or consumer, for the interop tests of corral-recipes
// (recipes/tests/queue_interop.rs compiles and runs this with javac/java at test time).
//
// Usage: QueueMember <connect-string> <queue-path> <mode> <count> [lock-path]
//
// Modes (items are UTF-8 strings):
//   put             DistributedQueue.put of <prefix>-0 .. <prefix>-(count-1), prefix "j"
//   put-multi       one DistributedQueue.putMulti of <count> items
//   put-priority    DistributedPriorityQueue.put of "j-<n>" with priority n % 3
//   take            a DistributedQueue consumer (lock-safe with [lock-path]); takes
//                   <count> items, or with <count> < 0 until "stop" on stdin
//   simple-put      SimpleDistributedQueue.offer of <count> items
//   simple-take     SimpleDistributedQueue.take of <count> items
//
// Prints "READY <ms>" once started, "ITEM <text>" per item consumed (in order), and DONE
// at the end. Errors go to stderr with a non-zero exit status.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Iterator;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.queue.DistributedPriorityQueue;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.MultiItem;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueConsumer;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.framework.recipes.queue.SimpleDistributedQueue;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;

public final class QueueMember {
    private QueueMember() {}

    private static final QueueSerializer<String> UTF8 = new QueueSerializer<String>() {
        @Override
        public byte[] serialize(String item) {
            return item.getBytes(StandardCharsets.UTF_8);
        }

        @Override
        public String deserialize(byte[] bytes) {
            return new String(bytes, StandardCharsets.UTF_8);
        }
    };

    private static synchronized void say(String what) {
        System.out.println(what);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: QueueMember <connect> <path> <mode> <count> [lock-path]");
            System.exit(2);
        }
        String path = args[1];
        String mode = args[2];
        int count = Integer.parseInt(args[3]);
        String lockPath = args.length > 4 ? args[4] : null;
        CuratorFramework client = CuratorFrameworkFactory.newClient(
            args[0], 10_000, 10_000, new ExponentialBackoffRetry(100, 5));
        client.start();
        try {
            if (!client.blockUntilConnected(30, TimeUnit.SECONDS)) {
                throw new IllegalStateException("not connected to " + args[0]);
            }
            switch (mode) {
                case "put":
                case "put-multi": {
                    DistributedQueue<String> queue =
                        QueueBuilder.builder(client, null, UTF8, path).buildQueue();
                    queue.start();
                    say("READY " + System.currentTimeMillis());
                    if (mode.equals("put")) {
                        for (int n = 0; n < count; n++) {
                            queue.put("j-" + n);
                        }
                    } else {
                        String[] items = new String[count];
                        for (int n = 0; n < count; n++) {
                            items[n] = "m-" + n;
                        }
                        final Iterator<String> it = Arrays.asList(items).iterator();
                        queue.putMulti(new MultiItem<String>() {
                            @Override
                            public String nextItem() {
                                return it.hasNext() ? it.next() : null;
                            }
                        });
                    }
                    if (!queue.flushPuts(30, TimeUnit.SECONDS)) {
                        throw new IllegalStateException("puts not flushed");
                    }
                    queue.close();
                    break;
                }
                case "put-priority": {
                    DistributedPriorityQueue<String> queue =
                        QueueBuilder.builder(client, null, UTF8, path).buildPriorityQueue(0);
                    queue.start();
                    say("READY " + System.currentTimeMillis());
                    for (int n = 0; n < count; n++) {
                        queue.put("j-" + n, n % 3);
                    }
                    if (!queue.flushPuts(30, TimeUnit.SECONDS)) {
                        throw new IllegalStateException("puts not flushed");
                    }
                    queue.close();
                    break;
                }
                case "take": {
                    final CountDownLatch taken = new CountDownLatch(Math.max(count, 0));
                    QueueConsumer<String> consumer = new QueueConsumer<String>() {
                        @Override
                        public void consumeMessage(String message) {
                            say("ITEM " + message);
                            taken.countDown();
                        }

                        @Override
                        public void stateChanged(CuratorFramework c, ConnectionState s) {}
                    };
                    QueueBuilder<String> builder = QueueBuilder.builder(client, consumer, UTF8, path);
                    if (lockPath != null) {
                        builder = builder.lockPath(lockPath);
                    }
                    DistributedQueue<String> queue = builder.buildQueue();
                    queue.start();
                    say("READY " + System.currentTimeMillis());
                    if (count >= 0) {
                        if (!taken.await(60, TimeUnit.SECONDS)) {
                            throw new IllegalStateException("items did not arrive");
                        }
                    } else {
                        BufferedReader stdin = new BufferedReader(
                            new InputStreamReader(System.in, StandardCharsets.UTF_8));
                        String line;
                        while ((line = stdin.readLine()) != null && !line.trim().equals("stop")) {
                            // wait for "stop"
                        }
                    }
                    queue.close();
                    break;
                }
                case "simple-put": {
                    SimpleDistributedQueue queue = new SimpleDistributedQueue(client, path);
                    say("READY " + System.currentTimeMillis());
                    for (int n = 0; n < count; n++) {
                        if (!queue.offer(("s-" + n).getBytes(StandardCharsets.UTF_8))) {
                            throw new IllegalStateException("offer failed");
                        }
                    }
                    break;
                }
                case "simple-take": {
                    SimpleDistributedQueue queue = new SimpleDistributedQueue(client, path);
                    say("READY " + System.currentTimeMillis());
                    for (int n = 0; n < count; n++) {
                        byte[] item = queue.poll(60, TimeUnit.SECONDS);
                        if (item == null) {
                            throw new IllegalStateException("item did not arrive");
                        }
                        say("ITEM " + new String(item, StandardCharsets.UTF_8));
                    }
                    break;
                }
                default:
                    throw new IllegalArgumentException("unknown mode " + mode);
            }
            System.out.println("DONE");
            System.out.flush();
        } finally {
            client.close();
        }
    }
}
