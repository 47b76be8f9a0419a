// Holds a Curator 5 lock on a path, for the interop tests of corral-recipes
// (recipes/tests/interop.rs compiles and runs this with javac/java at test time).
//
// Usage: LockHolder <connect-string> <lock-path> <mutex|read|write|semaphore:N> <hold-ms> [rounds]
//
// For each round it prints, one line each, with System.currentTimeMillis():
//   ACQUIRING <ms>   before asking for the lock
//   HELD <ms>        once Curator says we hold it
//   RELEASING <ms>   just before releasing (after holding hold-ms, or, with hold-ms < 0,
//                    after reading one line from stdin)
//   RELEASED <ms>    once the release returned
// and DONE at the end. Errors go to stderr with a non-zero exit status.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.retry.ExponentialBackoffRetry;

public final class LockHolder {
    private LockHolder() {}

    private static void say(String what) {
        System.out.println(what + " " + System.currentTimeMillis());
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println(
                "usage: LockHolder <connect> <path> <mutex|read|write|semaphore:N> <hold-ms> [rounds]");
            System.exit(2);
        }
        String connect = args[0];
        String path = args[1];
        String kind = args[2];
        long holdMs = Long.parseLong(args[3]);
        int rounds = args.length > 4 ? Integer.parseInt(args[4]) : 1;
        BufferedReader stdin =
            new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));

        CuratorFramework client = CuratorFrameworkFactory.newClient(
            connect, 10_000, 10_000, new ExponentialBackoffRetry(100, 5));
        client.start();
        try {
            if (!client.blockUntilConnected(30, TimeUnit.SECONDS)) {
                throw new IllegalStateException("not connected to " + connect);
            }
            InterProcessMutex mutex = null;
            InterProcessSemaphoreV2 semaphore = null;
            if (kind.equals("mutex")) {
                mutex = new InterProcessMutex(client, path);
            } else if (kind.equals("read")) {
                mutex = new InterProcessReadWriteLock(client, path).readLock();
            } else if (kind.equals("write")) {
                mutex = new InterProcessReadWriteLock(client, path).writeLock();
            } else if (kind.startsWith("semaphore:")) {
                int leases = Integer.parseInt(kind.substring("semaphore:".length()));
                semaphore = new InterProcessSemaphoreV2(client, path, leases);
            } else {
                throw new IllegalArgumentException("unknown lock kind " + kind);
            }
            for (int round = 0; round < rounds; round++) {
                say("ACQUIRING");
                Lease lease = null;
                if (mutex != null) {
                    mutex.acquire();
                } else {
                    lease = semaphore.acquire();
                }
                say("HELD");
                if (holdMs < 0) {
                    if (stdin.readLine() == null) {
                        throw new IllegalStateException("stdin closed while holding");
                    }
                } else if (holdMs > 0) {
                    Thread.sleep(holdMs);
                }
                say("RELEASING");
                if (mutex != null) {
                    mutex.release();
                } else {
                    semaphore.returnLease(lease);
                }
                say("RELEASED");
            }
            System.out.println("DONE");
            System.out.flush();
        } finally {
            client.close();
        }
    }
}
