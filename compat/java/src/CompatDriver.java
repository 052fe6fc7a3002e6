import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Drives Apache Kafka's Java client (kafka-clients) for the compatibility suite.
 *
 * <p>Record generation and verification live in compat/python (records.py); this driver
 * only moves records between files and the broker, in the line format described there
 * (tab-separated, bytes in base64), and prints admin answers as lines for pytest to check.
 *
 * <pre>
 * produce  BOOTSTRAP TOPIC CODEC IN OUT   producer with default settings (idempotence on,
 *                                        acks=all) besides compression and serializers
 * consume  BOOTSTRAP TOPIC PARTITIONS OUT assign + seek to 0, no group, read to end offsets
 * create   BOOTSTRAP TOPIC PARTITIONS     AdminClient.createTopics
 * offsets  BOOTSTRAP TOPIC P:SPEC...      ListOffsets; SPEC is earliest, latest or a timestamp
 * alter    BOOTSTRAP TOPIC NAME=VALUE...  incrementalAlterConfigs (SET)
 * describe BOOTSTRAP TOPIC NAME...        describeConfigs
 * </pre>
 */
public final class CompatDriver {
  private static final Duration TIMEOUT = Duration.ofSeconds(60);

  private CompatDriver() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 3) {
      throw new IllegalArgumentException("usage: COMMAND BOOTSTRAP TOPIC ...");
    }
    String bootstrap = args[1];
    String topic = args[2];
    switch (args[0]) {
      case "produce" -> produce(bootstrap, topic, args[3], Path.of(args[4]), Path.of(args[5]));
      case "consume" -> consume(bootstrap, topic, Integer.parseInt(args[3]), Path.of(args[4]));
      case "create" -> create(bootstrap, topic, Integer.parseInt(args[3]));
      case "offsets" -> offsets(bootstrap, topic, List.of(args).subList(3, args.length));
      case "alter" -> alter(bootstrap, topic, List.of(args).subList(3, args.length));
      case "describe" -> describe(bootstrap, topic, List.of(args).subList(3, args.length));
      default -> throw new IllegalArgumentException("unknown command " + args[0]);
    }
  }

  /** One record in the exchange format. */
  private record Line(
      int partition,
      long offset,
      long timestamp,
      int timestampType,
      byte[] key,
      byte[] value,
      List<Header> headers) {

    static Line parse(String text) {
      String[] f = text.split("\t", -1);
      if (f.length != 7) {
        throw new IllegalArgumentException("malformed record line: " + text);
      }
      List<Header> headers = new ArrayList<>();
      if (!f[6].isEmpty()) {
        for (String pair : f[6].split(",")) {
          String[] nv = pair.split(":", -1);
          headers.add(new RecordHeader(new String(decode(nv[0]), StandardCharsets.UTF_8), decode(nv[1])));
        }
      }
      return new Line(
          Integer.parseInt(f[0]),
          Long.parseLong(f[1]),
          Long.parseLong(f[2]),
          Integer.parseInt(f[3]),
          decode(f[4]),
          decode(f[5]),
          headers);
    }

    String format() {
      StringBuilder h = new StringBuilder();
      for (Header header : headers) {
        if (h.length() > 0) {
          h.append(',');
        }
        h.append(encode(header.key().getBytes(StandardCharsets.UTF_8)))
            .append(':')
            .append(encode(header.value()));
      }
      return partition + "\t" + offset + "\t" + timestamp + "\t" + timestampType + "\t"
          + encode(key) + "\t" + encode(value) + "\t" + h;
    }
  }

  private static byte[] decode(String text) {
    return text.equals("-") ? null : Base64.getDecoder().decode(text);
  }

  private static String encode(byte[] bytes) {
    return bytes == null ? "-" : Base64.getEncoder().encodeToString(bytes);
  }

  private static void produce(String bootstrap, String topic, String codec, Path in, Path out)
      throws Exception {
    List<Line> lines = new ArrayList<>();
    try (BufferedReader reader = Files.newBufferedReader(in)) {
      for (String text = reader.readLine(); text != null; text = reader.readLine()) {
        lines.add(Line.parse(text));
      }
    }
    Properties props = new Properties();
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
    props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    List<Future<RecordMetadata>> futures = new ArrayList<>();
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
      for (Line line : lines) {
        futures.add(producer.send(new ProducerRecord<>(
            topic, line.partition(), line.timestamp(), line.key(), line.value(), line.headers())));
      }
      producer.flush();
      try (BufferedWriter writer = Files.newBufferedWriter(out)) {
        for (int i = 0; i < lines.size(); i++) {
          RecordMetadata metadata = futures.get(i).get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
          Line line = lines.get(i);
          writer.write(new Line(metadata.partition(), metadata.offset(), metadata.timestamp(),
              line.timestampType(), line.key(), line.value(), line.headers()).format());
          writer.newLine();
        }
      }
    }
    System.out.println("produced " + lines.size());
  }

  private static void consume(String bootstrap, String topic, int partitions, Path out)
      throws Exception {
    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
    List<TopicPartition> assignment = new ArrayList<>();
    for (int p = 0; p < partitions; p++) {
      assignment.add(new TopicPartition(topic, p));
    }
    long count = 0;
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props);
        BufferedWriter writer = Files.newBufferedWriter(out)) {
      consumer.assign(assignment);
      for (TopicPartition tp : assignment) {
        consumer.seek(tp, 0);
      }
      Map<TopicPartition, Long> ends = consumer.endOffsets(assignment, TIMEOUT);
      long deadline = System.nanoTime() + TIMEOUT.toNanos();
      while (!reachedEnds(consumer, ends)) {
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException("timed out consuming; end offsets " + ends);
        }
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          List<Header> headers = new ArrayList<>();
          r.headers().forEach(headers::add);
          int type = r.timestampType() == TimestampType.CREATE_TIME ? 0
              : r.timestampType() == TimestampType.LOG_APPEND_TIME ? 1 : -1;
          writer.write(new Line(r.partition(), r.offset(), r.timestamp(), type, r.key(), r.value(),
              headers).format());
          writer.newLine();
          count++;
        }
      }
    }
    System.out.println("consumed " + count);
  }

  private static boolean reachedEnds(KafkaConsumer<?, ?> consumer, Map<TopicPartition, Long> ends) {
    for (Map.Entry<TopicPartition, Long> end : ends.entrySet()) {
      if (consumer.position(end.getKey(), TIMEOUT) < end.getValue()) {
        return false;
      }
    }
    return true;
  }

  private static Admin admin(String bootstrap) {
    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    return Admin.create(props);
  }

  private static void create(String bootstrap, String topic, int partitions) throws Exception {
    try (Admin admin = admin(bootstrap)) {
      admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1)))
          .all()
          .get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
    }
    System.out.println("created " + topic);
  }

  private static void offsets(String bootstrap, String topic, List<String> specs) throws Exception {
    Map<TopicPartition, OffsetSpec> requests = new HashMap<>();
    try (Admin admin = admin(bootstrap)) {
      // One ListOffsets call per spec: a request names each partition once.
      for (String spec : specs) {
        String[] ps = spec.split(":", 2);
        TopicPartition tp = new TopicPartition(topic, Integer.parseInt(ps[0]));
        OffsetSpec offsetSpec = switch (ps[1]) {
          case "earliest" -> OffsetSpec.earliest();
          case "latest" -> OffsetSpec.latest();
          default -> OffsetSpec.forTimestamp(Long.parseLong(ps[1]));
        };
        requests.clear();
        requests.put(tp, offsetSpec);
        ListOffsetsResult.ListOffsetsResultInfo info = admin.listOffsets(requests)
            .partitionResult(tp)
            .get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        System.out.println("offset " + ps[0] + " " + ps[1] + " " + info.offset());
      }
    }
  }

  private static void alter(String bootstrap, String topic, List<String> settings) throws Exception {
    ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
    List<AlterConfigOp> ops = new ArrayList<>();
    for (String setting : settings) {
      String[] nv = setting.split("=", 2);
      ops.add(new AlterConfigOp(new ConfigEntry(nv[0], nv[1]), AlterConfigOp.OpType.SET));
    }
    try (Admin admin = admin(bootstrap)) {
      admin.incrementalAlterConfigs(Map.of(resource, (Collection<AlterConfigOp>) ops))
          .all()
          .get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
    }
    System.out.println("altered " + settings.size());
  }

  private static void describe(String bootstrap, String topic, List<String> names) throws Exception {
    ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
    try (Admin admin = admin(bootstrap)) {
      Config config = admin.describeConfigs(List.of(resource))
          .all()
          .get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)
          .get(resource);
      for (String name : names) {
        ConfigEntry entry = config.get(name);
        if (entry == null) {
          System.out.println("config " + name + " MISSING");
        } else {
          System.out.println("config " + name + " " + entry.value() + " " + entry.source());
        }
      }
    }
  }
}
