//! Server-side assignors of KIP-848 groups: "uniform" (Kafka's default,
//! sticky and balanced) and "range".
