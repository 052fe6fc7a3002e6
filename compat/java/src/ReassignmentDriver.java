import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.PartitionReassignment;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;

/**
 * Drives the Java AdminClient's partition reassignment and leader election APIs for
 * compat/python/test_reassignment.py.
 *
 * <pre>
 * reassign BOOTSTRAP [--await TIMEOUT_MS] TOPIC:P=B,B,...|TOPIC:P=cancel...
 *                          one Admin.alterPartitionReassignments call, one entry per
 *                          partition (cancel is Optional.empty()), answered in the order
 *                          given: `reassign TOPIC P OK` or `reassign TOPIC P ERROR MESSAGE`;
 *                          with --await, then await-none at once (in the same client)
 * list BOOTSTRAP           Admin.listPartitionReassignments (all): one `ongoing` line per
 *                          partition, then `listed N`
 * await-none BOOTSTRAP TIMEOUT_MS
 *                          listPartitionReassignments every 50 ms until it is empty; every
 *                          answer that differs from the one before is printed as its
 *                          `ongoing` lines after `poll MS N`; ends with `none MS` (exit 0),
 *                          or `still MS N` (exit 1) when TIMEOUT_MS passes first
 * describe BOOTSTRAP TOPIC Admin.describeTopics: `partition P LEADER REPLICAS ISR`
 * elect BOOTSTRAP PREFERRED|UNCLEAN TOPIC P...
 *                          Admin.electLeaders: `elect TOPIC P OK` or `elect TOPIC P ERROR MESSAGE`
 * </pre>
 *
 * <p>An `ongoing` line is {@code ongoing TOPIC P REPLICAS ADDING REMOVING}, each list comma
 * separated ("-" when empty). ERROR is the simple class name of the exception the client
 * raised for Kafka's error code (InvalidReplicaAssignmentException for
 * INVALID_REPLICA_ASSIGNMENT, and so on); MESSAGE is the rest of the line.
 */
public final class ReassignmentDriver {
  private static final Duration TIMEOUT = Duration.ofSeconds(30);
  private static final long POLL_MS = 50;

  private ReassignmentDriver() {}

  public static void main(String[] args) throws Exception {
    List<String> rest = List.of(args).subList(1, args.length);
    int exit = 0;
    try (Admin admin = admin(rest.get(0))) {
      switch (args[0]) {
        case "reassign" -> {
          if (rest.get(1).equals("--await")) {
            reassign(admin, rest.subList(3, rest.size()));
            exit = awaitNone(admin, Long.parseLong(rest.get(2)));
          } else {
            reassign(admin, rest.subList(1, rest.size()));
          }
        }
        case "list" -> System.out.println("listed " + printOngoing(ongoing(admin)));
        case "await-none" -> exit = awaitNone(admin, Long.parseLong(rest.get(1)));
        case "describe" -> describe(admin, rest.get(1));
        case "elect" -> elect(admin, rest.get(1), rest.get(2), rest.subList(3, rest.size()));
        default -> throw new IllegalArgumentException("unknown command " + args[0]);
      }
    }
    System.out.flush();
    System.exit(exit);
  }

  private static Admin admin(String bootstrap) {
    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(AdminClientConfig.CLIENT_ID_CONFIG, "reassignment-java");
    props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
    props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) TIMEOUT.toMillis());
    props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 500);
    return Admin.create(props);
  }

  private static void reassign(Admin admin, List<String> specs) throws Exception {
    Map<TopicPartition, Optional<NewPartitionReassignment>> wanted = new LinkedHashMap<>();
    for (String spec : specs) {
      int equals = spec.lastIndexOf('=');
      int colon = spec.lastIndexOf(':', equals);
      TopicPartition tp = new TopicPartition(
          spec.substring(0, colon), Integer.parseInt(spec.substring(colon + 1, equals)));
      String target = spec.substring(equals + 1);
      if (target.equals("cancel")) {
        wanted.put(tp, Optional.empty());
      } else {
        List<Integer> replicas = new ArrayList<>();
        for (String broker : target.split(",")) {
          replicas.add(Integer.parseInt(broker));
        }
        wanted.put(tp, Optional.of(new NewPartitionReassignment(replicas)));
      }
    }
    Map<TopicPartition, KafkaFuture<Void>> results =
        admin.alterPartitionReassignments(wanted).values();
    for (TopicPartition tp : wanted.keySet()) {
      System.out.println("reassign " + tp.topic() + " " + tp.partition() + " " + outcome(results.get(tp)));
    }
  }

  private static String outcome(KafkaFuture<?> future) throws InterruptedException {
    try {
      future.get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
      return "OK";
    } catch (ExecutionException e) {
      return describeError(e.getCause());
    } catch (java.util.concurrent.TimeoutException e) {
      return "TimeoutException no answer within " + TIMEOUT;
    }
  }

  private static String describeError(Throwable error) {
    String message = String.valueOf(error.getMessage()).replace('\n', ' ');
    return error.getClass().getSimpleName() + " " + message;
  }

  private static Map<TopicPartition, PartitionReassignment> ongoing(Admin admin) throws Exception {
    return admin.listPartitionReassignments().reassignments().get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
  }

  private static int printOngoing(Map<TopicPartition, PartitionReassignment> ongoing) {
    System.out.print(render(ongoing));
    return ongoing.size();
  }

  /** The `ongoing` lines of a listing, sorted (PartitionReassignment has no equals). */
  private static String render(Map<TopicPartition, PartitionReassignment> ongoing) {
    Map<String, PartitionReassignment> sorted = new TreeMap<>();
    ongoing.forEach((tp, r) -> sorted.put(tp.topic() + " " + tp.partition(), r));
    StringBuilder lines = new StringBuilder();
    sorted.forEach((tp, r) -> lines.append("ongoing ").append(tp).append(' ')
        .append(brokers(r.replicas())).append(' ').append(brokers(r.addingReplicas())).append(' ')
        .append(brokers(r.removingReplicas())).append('\n'));
    return lines.toString();
  }

  private static String brokers(List<Integer> ids) {
    return ids.isEmpty() ? "-" : ids.stream().map(String::valueOf).collect(Collectors.joining(","));
  }

  private static String nodes(List<Node> nodes) {
    return brokers(nodes.stream().map(Node::id).collect(Collectors.toList()));
  }

  private static int awaitNone(Admin admin, long timeoutMs) throws Exception {
    long started = System.nanoTime();
    String last = null;
    while (true) {
      Map<TopicPartition, PartitionReassignment> now = ongoing(admin);
      long elapsedMs = (System.nanoTime() - started) / 1_000_000;
      String rendered = render(now);
      if (!rendered.equals(last)) {
        System.out.println("poll " + elapsedMs + " " + now.size());
        System.out.print(rendered);
        last = rendered;
      }
      if (now.isEmpty()) {
        System.out.println("none " + elapsedMs);
        return 0;
      }
      if (elapsedMs > timeoutMs) {
        System.out.println("still " + elapsedMs + " " + now.size());
        return 1;
      }
      Thread.sleep(POLL_MS);
    }
  }

  private static void describe(Admin admin, String topic) throws Exception {
    TopicDescription description = admin.describeTopics(Collections.singleton(topic))
        .allTopicNames().get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS).get(topic);
    for (TopicPartitionInfo p : description.partitions()) {
      int leader = p.leader() == null ? -1 : p.leader().id();
      System.out.println("partition " + p.partition() + " " + leader + " " + nodes(p.replicas()) + " "
          + nodes(p.isr()));
    }
  }

  private static void elect(Admin admin, String type, String topic, List<String> partitions)
      throws Exception {
    Set<TopicPartition> wanted = new HashSet<>();
    for (String p : partitions) {
      wanted.add(new TopicPartition(topic, Integer.parseInt(p)));
    }
    Map<TopicPartition, Optional<Throwable>> results = admin
        .electLeaders(ElectionType.valueOf(type), wanted)
        .partitions().get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
    for (String p : partitions) {
      Optional<Throwable> error = results.get(new TopicPartition(topic, Integer.parseInt(p)));
      String outcome = error == null ? "MISSING no result for the partition"
          : error.map(ReassignmentDriver::describeError).orElse("OK");
      System.out.println("elect " + topic + " " + p + " " + outcome);
    }
  }
}
