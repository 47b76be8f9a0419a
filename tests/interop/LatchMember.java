// A Curator 5 LeaderLatch participant, for the interop tests of corral-recipes
// (recipes/tests/leader_interop.rs compiles and runs this with javac/java at test time).
//
// Usage: LatchMember <connect-string> <latch-path> <id>
//
// Prints, one line each, with System.currentTimeMillis():
//   STARTED <ms>      once the latch is started
//   LEADER <ms>       when Curator says we lead (LeaderLatchListener.isLeader)
//   NOT_LEADER <ms>   when Curator says we no longer lead
//   CLOSING <ms>      before closing (after reading "close" from stdin)
//   CLOSED <ms>       once the close returned
// and DONE at the end. Errors go to stderr with a non-zero exit status.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.retry.ExponentialBackoffRetry;

public final class LatchMember {
    private LatchMember() {}

    private static synchronized void say(String what) {
        System.out.println(what + " " + System.currentTimeMillis());
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: LatchMember <connect> <path> <id>");
            System.exit(2);
        }
        CuratorFramework client = CuratorFrameworkFactory.newClient(
            args[0], 10_000, 10_000, new ExponentialBackoffRetry(100, 5));
        client.start();
        try {
            if (!client.blockUntilConnected(30, TimeUnit.SECONDS)) {
                throw new IllegalStateException("not connected to " + args[0]);
            }
            LeaderLatch latch = new LeaderLatch(client, args[1], args[2],
                LeaderLatch.CloseMode.NOTIFY_LEADER);
            latch.addListener(new LeaderLatchListener() {
                @Override
                public void isLeader() {
                    say("LEADER");
                }

                @Override
                public void notLeader() {
                    say("NOT_LEADER");
                }
            });
            latch.start();
            say("STARTED");
            BufferedReader stdin =
                new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            String line;
            while ((line = stdin.readLine()) != null) {
                if (line.trim().equals("close")) {
                    break;
                }
            }
            say("CLOSING");
            latch.close();
            say("CLOSED");
            System.out.println("DONE");
            System.out.flush();
        } finally {
            client.close();
        }
    }
}
