import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The Java client's producer for the crash test (compat/python/test_crash.py).
 *
 * <pre>
 * CrashProducer BOOTSTRAP TOPIC NAME ACKED_FILE RATE_PER_S
 * </pre>
 *
 * <p>Default producer settings (idempotence on, acks=all) besides a delivery timeout
 * long enough to ride out every broker restart. Produces keyed records whose values
 * are NAME-&lt;9-digit sequence&gt; at about RATE_PER_S records a second for as long
 * as stdin stays open, while the broker is killed and restarted under it. Every
 * acknowledged record is appended to ACKED_FILE as partition TAB offset TAB value,
 * one unbuffered write per line, from the send callback. At end of stdin it stops
 * sending, flushes what is in flight and prints NAME sent=S acked=A failed=F.
 */
public final class CrashProducer {
  private static final int DELIVERY_TIMEOUT_MS = 300_000;
  private static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(60);
  private static final long FAILURES_PRINTED = 20;

  private CrashProducer() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 5) {
      System.err.println("usage: CrashProducer BOOTSTRAP TOPIC NAME ACKED_FILE RATE_PER_S");
      System.exit(2);
    }
    String bootstrap = args[0];
    String topic = args[1];
    String name = args[2];
    long ratePerSecond = Long.parseLong(args[4]);

    AtomicBoolean stop = new AtomicBoolean(false);
    Thread stdinWatcher = new Thread(() -> {
      byte[] sink = new byte[256];
      InputStream in = System.in;
      try {
        while (in.read(sink) > 0) {
          // Only the end of stdin matters.
        }
      } catch (IOException e) {
        // A broken stdin means the test is gone: stop as at end of file.
      }
      stop.set(true);
    });
    stdinWatcher.setDaemon(true);
    stdinWatcher.start();

    Properties props = new Properties();
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ProducerConfig.CLIENT_ID_CONFIG, name);
    props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, DELIVERY_TIMEOUT_MS);
    props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, DELIVERY_TIMEOUT_MS);
    props.put(ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 500);
    props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());

    AtomicLong acked = new AtomicLong();
    AtomicLong failed = new AtomicLong();
    long sent = 0;
    try (OutputStream out = new FileOutputStream(args[3]);
        KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
      long start = System.nanoTime();
      while (!stop.get()) {
        long due = (System.nanoTime() - start) / 1_000_000L * ratePerSecond / 1000L;
        if (sent >= due) {
          Thread.sleep(2);
          continue;
        }
        String value = String.format("%s-%09d", name, sent);
        String key = "key-" + (sent % 1000);
        producer.send(new ProducerRecord<>(topic, key, value), (metadata, error) -> {
          if (error != null) {
            if (failed.incrementAndGet() <= FAILURES_PRINTED) {
              System.err.println("delivery failed for " + value + ": " + error);
            }
            return;
          }
          String line = metadata.partition() + "\t" + metadata.offset() + "\t" + value + "\n";
          // Callbacks run on the client's I/O thread, one at a time; unbuffered so a
          // line on disk always means the broker acknowledged the record.
          synchronized (out) {
            try {
              out.write(line.getBytes(StandardCharsets.UTF_8));
            } catch (IOException e) {
              System.err.println("cannot record acknowledged " + value + ": " + e);
              Runtime.getRuntime().halt(3);
            }
          }
          acked.incrementAndGet();
        });
        sent++;
      }
      // close waits (bounded) for the records in flight, as flush would, unbounded.
      producer.close(CLOSE_TIMEOUT);
    }
    System.out.println(name + " sent=" + sent + " acked=" + acked.get() + " failed=" + failed.get());
  }
}
