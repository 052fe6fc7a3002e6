import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The Java client's producer for the replication fault tests
 * (compat/python/test_replication.py).
 *
 * <pre>
 * ReplicationProducer BOOTSTRAP TOPIC PARTITIONS RATE_PER_S DURATION_S
 * </pre>
 *
 * <p>Idempotence on and acks=all, stated explicitly (they are also the client's
 * defaults), with a delivery timeout long enough to ride out a leader failover. Sends
 * numbered records for DURATION_S seconds at about RATE_PER_S a second: record n goes
 * to partition n % PARTITIONS with the per-partition sequence number s = n / PARTITIONS,
 * key "P:S" and value "java-pP-S" (S in 9 digits). Each acknowledgement is printed from
 * the send callback as one line, {@code acked PARTITION OFFSET SEQ}; a failed delivery
 * as {@code failed PARTITION SEQ ERROR}. After the duration it flushes what is in
 * flight (bounded by the close timeout) and prints {@code sent=S acked=A failed=F}.
 */
public final class ReplicationProducer {
  private static final int DELIVERY_TIMEOUT_MS = 120_000;
  private static final int REQUEST_TIMEOUT_MS = 10_000;
  private static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(90);

  private ReplicationProducer() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 5) {
      System.err.println("usage: ReplicationProducer BOOTSTRAP TOPIC PARTITIONS RATE_PER_S DURATION_S");
      System.exit(2);
    }
    String bootstrap = args[0];
    String topic = args[1];
    int partitions = Integer.parseInt(args[2]);
    long ratePerSecond = Long.parseLong(args[3]);
    long durationNanos = Long.parseLong(args[4]) * 1_000_000_000L;

    Properties props = new Properties();
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ProducerConfig.CLIENT_ID_CONFIG, "replication-java");
    props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
    props.put(ProducerConfig.ACKS_CONFIG, "all");
    props.put(ProducerConfig.LINGER_MS_CONFIG, 5);
    props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, DELIVERY_TIMEOUT_MS);
    props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, REQUEST_TIMEOUT_MS);
    props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, DELIVERY_TIMEOUT_MS);
    props.put(ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 500);
    props.put(ProducerConfig.METADATA_MAX_AGE_CONFIG, 5_000);
    props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());

    AtomicLong acked = new AtomicLong();
    AtomicLong failed = new AtomicLong();
    long sent = 0;
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
      long start = System.nanoTime();
      while (System.nanoTime() - start < durationNanos) {
        long due = (System.nanoTime() - start) / 1_000_000L * ratePerSecond / 1000L;
        if (sent >= due) {
          Thread.sleep(2);
          continue;
        }
        int partition = (int) (sent % partitions);
        long seq = sent / partitions;
        String key = partition + ":" + seq;
        String value = String.format("java-p%d-%09d", partition, seq);
        producer.send(new ProducerRecord<>(topic, partition, key, value), (metadata, error) -> {
          // Callbacks run on the client's I/O thread, one at a time; println is
          // synchronized, so lines never interleave.
          if (error != null) {
            failed.incrementAndGet();
            System.out.println("failed " + partition + " " + seq + " " + error);
          } else {
            acked.incrementAndGet();
            System.out.println("acked " + metadata.partition() + " " + metadata.offset() + " " + seq);
          }
        });
        sent++;
      }
      // close waits (bounded) for the records in flight.
      producer.close(CLOSE_TIMEOUT);
    }
    System.out.println("sent=" + sent + " acked=" + acked.get() + " failed=" + failed.get());
  }
}
