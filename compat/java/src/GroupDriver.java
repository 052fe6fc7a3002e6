import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConsumerGroupOffsetsResult;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.DeleteConsumerGroupOffsetsResult;
import org.apache.kafka.clients.admin.ListConsumerGroupsOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.consumer.RoundRobinAssignor;
import org.apache.kafka.clients.consumer.StickyAssignor;
import org.apache.kafka.common.ConsumerGroupState;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Drives the Java client's consumer groups for compat/python/test_groups_*.py.
 *
 * <pre>
 * member key=value...                  a group member process; the options, stdin commands
 *                                      and stdout events are described in compat/python/groups.py
 * list BOOTSTRAP [STATE...]            Admin.listConsumerGroups (inStates when states given):
 *                                      `group ID STATE TYPE`
 * describe BOOTSTRAP GROUP...          Admin.describeConsumerGroups: `group ID STATE TYPE
 *                                      ASSIGNOR MEMBERS` then `member ID CLIENT_ID INSTANCE P,P`
 * offsets BOOTSTRAP GROUP              Admin.listConsumerGroupOffsets: `offset TOPIC P O META`
 * alter BOOTSTRAP GROUP TOPIC P:O[:M]. Admin.alterConsumerGroupOffsets: `altered P OK|ERROR`
 * delete-offsets BOOTSTRAP GROUP TOPIC P...  Admin.deleteConsumerGroupOffsets (OffsetDelete):
 *                                      `deleted-offset P OK|ERROR`
 * delete BOOTSTRAP GROUP...            Admin.deleteConsumerGroups: `deleted GROUP OK|ERROR`
 * </pre>
 *
 * <p>ERROR is the simple class name of the exception the client raised for Kafka's error
 * code (UnknownTopicOrPartitionException for UNKNOWN_TOPIC_OR_PARTITION, and so on).
 */
public final class GroupDriver {
  private static final Duration TIMEOUT = Duration.ofSeconds(60);

  private GroupDriver() {}

  public static void main(String[] args) throws Exception {
    List<String> rest = List.of(args).subList(1, args.length);
    switch (args[0]) {
      case "member" -> new Member(options(rest)).run();
      case "list" -> list(rest.get(0), rest.subList(1, rest.size()));
      case "describe" -> describe(rest.get(0), rest.subList(1, rest.size()));
      case "offsets" -> offsets(rest.get(0), rest.get(1));
      case "alter" -> alter(rest.get(0), rest.get(1), rest.get(2), rest.subList(3, rest.size()));
      case "delete-offsets" ->
          deleteOffsets(rest.get(0), rest.get(1), rest.get(2), rest.subList(3, rest.size()));
      case "delete" -> delete(rest.get(0), rest.subList(1, rest.size()));
      default -> throw new IllegalArgumentException("unknown command " + args[0]);
    }
  }

  private static Map<String, String> options(List<String> arguments) {
    Map<String, String> options = new HashMap<>();
    options.put("commit", "batch");
    options.put("protocol", "classic");
    options.put("strategy", "range");
    options.put("session_ms", "10000");
    options.put("heartbeat_ms", "1000");
    options.put("instance", "");
    options.put("partitions", "6");
    for (String argument : arguments) {
      int equals = argument.indexOf('=');
      options.put(argument.substring(0, equals), argument.substring(equals + 1));
    }
    return options;
  }

  /** Prints one `<wall-clock ms> <kind> <args>` line, whole and flushed. */
  static synchronized void emit(Object... parts) {
    StringBuilder line = new StringBuilder().append(System.currentTimeMillis());
    for (Object part : parts) {
      line.append(' ').append(part);
    }
    System.out.println(line);
    System.out.flush();
  }

  static String partitions(Collection<TopicPartition> topicPartitions) {
    String joined =
        topicPartitions.stream()
            .map(TopicPartition::partition)
            .sorted()
            .map(String::valueOf)
            .collect(Collectors.joining(","));
    return joined.isEmpty() ? "-" : joined;
  }

  static String errorName(Throwable error) {
    Throwable cause = error instanceof ExecutionException && error.getCause() != null
        ? error.getCause()
        : error;
    return cause.getClass().getSimpleName();
  }

  /** A group member: subscribes, reports assignments and records, obeys stdin commands. */
  static final class Member implements ConsumerRebalanceListener {
    private final Map<String, String> options;
    private final String topic;
    private final KafkaConsumer<byte[], byte[]> consumer;
    private final Set<Integer> owned = new TreeSet<>();
    private final Map<Integer, Long> positions = new TreeMap<>();
    private final LinkedBlockingQueue<String> commands = new LinkedBlockingQueue<>();

    Member(Map<String, String> options) {
      this.options = options;
      this.topic = options.get("topic");
      Properties props = new Properties();
      props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, options.get("bootstrap"));
      props.put(ConsumerConfig.GROUP_ID_CONFIG, options.get("group"));
      props.put(ConsumerConfig.CLIENT_ID_CONFIG, options.get("name"));
      props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
      props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
      props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "500");
      props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
      props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
      if (options.get("protocol").equals("consumer")) {
        // KIP-848: the broker owns the session timeout, heartbeat interval and assignor.
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
      } else {
        props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, options.get("session_ms"));
        props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, options.get("heartbeat_ms"));
        props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor(options.get("strategy")));
      }
      if (!options.get("instance").isEmpty()) {
        props.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, options.get("instance"));
      }
      this.consumer = new KafkaConsumer<>(props);
    }

    private static String assignor(String strategy) {
      return switch (strategy) {
        case "range" -> RangeAssignor.class.getName();
        case "roundrobin" -> RoundRobinAssignor.class.getName();
        case "sticky" -> StickyAssignor.class.getName();
        case "cooperative-sticky" -> CooperativeStickyAssignor.class.getName();
        default -> throw new IllegalArgumentException("unknown strategy " + strategy);
      };
    }

    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> revoked) {
      for (TopicPartition tp : revoked) {
        owned.remove(tp.partition());
        positions.remove(tp.partition());
      }
      emit("revoke", partitions(revoked));
    }

    @Override
    public void onPartitionsLost(Collection<TopicPartition> lost) {
      for (TopicPartition tp : lost) {
        owned.remove(tp.partition());
        positions.remove(tp.partition());
      }
      emit("lost", partitions(lost));
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> assigned) {
      for (TopicPartition tp : assigned) {
        owned.add(tp.partition());
      }
      emit("assign", partitions(assigned), consumer.groupMetadata().generationId());
    }

    void run() {
      Thread reader = new Thread(() -> {
        try (BufferedReader in =
            new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
          for (String line = in.readLine(); line != null; line = in.readLine()) {
            if (!line.isBlank()) {
              commands.add(line.trim());
            }
          }
        } catch (java.io.IOException e) {
          // stdin gone: the test went away
        }
        commands.add("close");
      });
      reader.setDaemon(true);
      reader.start();
      consumer.subscribe(List.of(topic), this);
      boolean running = true;
      while (running) {
        ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(100));
        Map<Integer, Long> read = new TreeMap<>();
        for (ConsumerRecord<byte[], byte[]> record : records) {
          emit("record", record.partition(), record.offset(),
              new String(record.key(), StandardCharsets.UTF_8));
          positions.put(record.partition(), record.offset() + 1);
          read.put(record.partition(), record.offset() + 1);
        }
        if (!read.isEmpty() && options.get("commit").equals("batch")) {
          commit(offsetsOf(read));
        }
        for (String command = commands.poll(); command != null; command = commands.poll()) {
          String[] words = command.split(" ");
          switch (words[0]) {
            case "close" -> running = false;
            case "commit" -> {
              if (words.length == 1) {
                commit(offsetsOf(positions));
              } else {
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (int i = 1; i < words.length; i++) {
                  String[] f = words[i].split(":", 3);
                  offsets.put(new TopicPartition(topic, Integer.parseInt(f[0])),
                      new OffsetAndMetadata(Long.parseLong(f[1]), f.length > 2 ? f[2] : null));
                }
                commit(offsets);
              }
            }
            case "committed" -> committed();
            case "seek" -> {
              int partition = Integer.parseInt(words[1]);
              long offset = Long.parseLong(words[2]);
              consumer.seek(new TopicPartition(topic, partition), offset);
              positions.put(partition, offset);
              emit("seeked", partition, offset);
            }
            default -> emit("error", "unknown_command", words[0]);
          }
          if (!running) {
            break;
          }
        }
      }
      consumer.close(Duration.ofSeconds(20));
      emit("closed");
    }

    private Map<TopicPartition, OffsetAndMetadata> offsetsOf(Map<Integer, Long> next) {
      Map<TopicPartition, OffsetAndMetadata> offsets = new TreeMap<>(
          (a, b) -> Integer.compare(a.partition(), b.partition()));
      next.forEach((partition, offset) -> {
        if (owned.contains(partition)) {
          offsets.put(new TopicPartition(topic, partition), new OffsetAndMetadata(offset));
        }
      });
      return offsets;
    }

    private void commit(Map<TopicPartition, OffsetAndMetadata> offsets) {
      if (offsets.isEmpty()) {
        return;
      }
      try {
        consumer.commitSync(offsets, TIMEOUT);
      } catch (KafkaException e) {
        emit("commit-error", errorName(e));
        return;
      }
      emit("commit", offsets.entrySet().stream()
          .sorted((a, b) -> Integer.compare(a.getKey().partition(), b.getKey().partition()))
          .map(e -> e.getKey().partition() + ":" + e.getValue().offset())
          .collect(Collectors.joining(",")));
    }

    private void committed() {
      Set<TopicPartition> all = new HashSet<>();
      int count = Integer.parseInt(options.get("partitions"));
      for (int p = 0; p < count; p++) {
        all.add(new TopicPartition(topic, p));
      }
      Map<TopicPartition, OffsetAndMetadata> answer = consumer.committed(all, TIMEOUT);
      List<String> items = new ArrayList<>();
      for (int p = 0; p < count; p++) {
        OffsetAndMetadata om = answer.get(new TopicPartition(topic, p));
        if (om == null) {
          items.add(p + ":-1:-");
        } else {
          String metadata = om.metadata() == null || om.metadata().isEmpty() ? "-" : om.metadata();
          items.add(p + ":" + om.offset() + ":" + metadata);
        }
      }
      emit("committed", String.join(",", items));
    }
  }

  private static Admin admin(String bootstrap) {
    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "60000");
    return Admin.create(props);
  }

  private static <T> T get(KafkaFuture<T> future) throws Exception {
    return future.get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
  }

  private static void list(String bootstrap, List<String> states) throws Exception {
    try (Admin admin = admin(bootstrap)) {
      ListConsumerGroupsOptions options = new ListConsumerGroupsOptions();
      if (!states.isEmpty()) {
        options.inStates(states.stream().map(ConsumerGroupState::parse).collect(Collectors.toSet()));
      }
      for (ConsumerGroupListing listing : get(admin.listConsumerGroups(options).all())) {
        System.out.println("group " + listing.groupId() + " "
            + listing.state().map(Enum::name).orElse("-") + " "
            + listing.type().map(Enum::name).orElse("-"));
      }
    }
  }

  private static void describe(String bootstrap, List<String> groups) throws Exception {
    try (Admin admin = admin(bootstrap)) {
      Map<String, KafkaFuture<ConsumerGroupDescription>> described =
          admin.describeConsumerGroups(groups).describedGroups();
      for (String group : groups) {
        ConsumerGroupDescription d;
        try {
          d = get(described.get(group));
        } catch (ExecutionException e) {
          System.out.println("group-error " + group + " " + errorName(e));
          continue;
        }
        String assignor = d.partitionAssignor() == null || d.partitionAssignor().isEmpty()
            ? "-" : d.partitionAssignor();
        System.out.println("group " + d.groupId() + " " + d.state().name() + " " + d.type().name()
            + " " + assignor + " " + d.members().size());
        for (MemberDescription m : d.members()) {
          System.out.println("member " + m.consumerId() + " " + m.clientId() + " "
              + m.groupInstanceId().orElse("-") + " "
              + partitions(m.assignment().topicPartitions()));
        }
      }
    }
  }

  private static void offsets(String bootstrap, String group) throws Exception {
    try (Admin admin = admin(bootstrap)) {
      Map<TopicPartition, OffsetAndMetadata> offsets =
          get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
      for (Map.Entry<TopicPartition, OffsetAndMetadata> e : new TreeMap<>(
          offsets.entrySet().stream().collect(Collectors.toMap(
              x -> x.getKey().topic() + "\t" + String.format("%06d", x.getKey().partition()),
              x -> x))).values()) {
        OffsetAndMetadata om = e.getValue();
        String metadata = om == null || om.metadata() == null || om.metadata().isEmpty()
            ? "-" : om.metadata();
        System.out.println("offset " + e.getKey().topic() + " " + e.getKey().partition() + " "
            + (om == null ? -1 : om.offset()) + " " + metadata);
      }
    }
  }

  private static void alter(String bootstrap, String group, String topic, List<String> items)
      throws Exception {
    Map<TopicPartition, OffsetAndMetadata> offsets = new TreeMap<>(
        (a, b) -> Integer.compare(a.partition(), b.partition()));
    for (String item : items) {
      String[] f = item.split(":", 3);
      offsets.put(new TopicPartition(topic, Integer.parseInt(f[0])),
          new OffsetAndMetadata(Long.parseLong(f[1]), f.length > 2 ? f[2] : ""));
    }
    try (Admin admin = admin(bootstrap)) {
      AlterConsumerGroupOffsetsResult result = admin.alterConsumerGroupOffsets(group, offsets);
      for (TopicPartition tp : offsets.keySet()) {
        String outcome;
        try {
          get(result.partitionResult(tp));
          outcome = "OK";
        } catch (ExecutionException e) {
          outcome = errorName(e);
        }
        System.out.println("altered " + tp.partition() + " " + outcome);
      }
    }
  }

  private static void deleteOffsets(String bootstrap, String group, String topic, List<String> items)
      throws Exception {
    Set<TopicPartition> partitions = new TreeSet<>(
        (a, b) -> Integer.compare(a.partition(), b.partition()));
    for (String item : items) {
      partitions.add(new TopicPartition(topic, Integer.parseInt(item)));
    }
    try (Admin admin = admin(bootstrap)) {
      DeleteConsumerGroupOffsetsResult result = admin.deleteConsumerGroupOffsets(group, partitions);
      for (TopicPartition tp : partitions) {
        String outcome;
        try {
          get(result.partitionResult(tp));
          outcome = "OK";
        } catch (ExecutionException e) {
          outcome = errorName(e);
        }
        System.out.println("deleted-offset " + tp.partition() + " " + outcome);
      }
    }
  }

  private static void delete(String bootstrap, List<String> groups) throws Exception {
    try (Admin admin = admin(bootstrap)) {
      Map<String, KafkaFuture<Void>> deleted = admin.deleteConsumerGroups(groups).deletedGroups();
      for (String group : groups) {
        String outcome;
        try {
          get(deleted.get(group));
          outcome = "OK";
        } catch (ExecutionException e) {
          outcome = errorName(e);
        }
        System.out.println("deleted " + group + " " + outcome);
      }
    }
  }
}
