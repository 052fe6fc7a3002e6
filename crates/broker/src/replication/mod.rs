//! Replication (DESIGN §5): how the replicas this node hosts follow the
//! metadata image — leading (tracking followers, the ISR and the high
//! watermark in [`leader_state`]) or following (fetching from the leader in
//! [`fetcher`]) — and the ISR changes a leader asks the controller for.

pub(crate) mod checkpoint;
pub(crate) mod fetcher;
pub(crate) mod leader_state;

use std::sync::Arc;
use std::time::Duration;

use runnel_metadata::PartitionState;
use runnel_model::BrokerId;
use runnel_quorum::{ControllerRequest, ControllerResponse};
use tokio::sync::watch;

use crate::broker::Broker;
use crate::groups::now_ms;
use crate::partition::Partition;
use leader_state::IsrChange;

/// How long an AlterPartition may wait for the controller.
const ALTER_PARTITION_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes a hosted replica do what the image says: lead, follow its leader,
/// or rest when the partition has no leader (or this broker fenced itself).
pub(crate) fn apply_partition_state(
    broker: &Arc<Broker>,
    partition: &Arc<Partition>,
    state: &PartitionState,
    self_fenced: bool,
) {
    let me = BrokerId(broker.node_id);
    match state.leader {
        Some(leader) if leader == me && !self_fenced => {
            broker.fetchers.remove(partition);
            let lag = broker.config.read().replica_lag_time_max_ms();
            let new = partition.become_leader(
                me,
                state.leader_epoch,
                state.replicas.clone(),
                state.isr.clone(),
                state.partition_epoch,
                lag,
                now_ms(),
            );
            if new {
                tracing::info!(partition = %partition.tp, epoch = state.leader_epoch.0, isr = ?state.isr, "leading");
            }
        }
        Some(leader) if leader != me => {
            let changed = partition.become_follower(leader, state.leader_epoch);
            if changed {
                tracing::info!(partition = %partition.tp, %leader, epoch = state.leader_epoch.0, "following");
            }
            broker.fetchers.assign(
                broker,
                leader,
                partition.clone(),
                state.leader_epoch,
                changed,
            );
        }
        _ => {
            broker.fetchers.remove(partition);
            partition.set_idle(state.leader_epoch);
        }
    }
}

/// Asks the controller for an ISR change of a partition this node leads,
/// in the background. A refusal or no answer frees the partition to ask
/// again; a success arrives with the metadata image.
pub(crate) fn request_isr_change(
    broker: &Arc<Broker>,
    partition: &Arc<Partition>,
    change: IsrChange,
) {
    let Some(broker_epoch) = broker.broker_epoch() else {
        partition.abandon_isr_change();
        return;
    };
    let request = ControllerRequest::AlterPartition(runnel_metadata::AlterPartitionRequest {
        broker_id: BrokerId(broker.node_id),
        broker_epoch,
        topic_id: partition.topic_id,
        partition: partition.tp.partition,
        leader_epoch: runnel_model::LeaderEpoch(partition.leader_epoch()),
        partition_epoch: change.partition_epoch,
        new_isr: change.new_isr.clone(),
    });
    tracing::info!(partition = %partition.tp, isr = ?change.new_isr, "asking the controller for an ISR change");
    let broker = broker.clone();
    let partition = partition.clone();
    tokio::spawn(async move {
        match broker.quorum.submit(request, ALTER_PARTITION_TIMEOUT).await {
            Ok((ControllerResponse::AlterPartition(Ok(_)), index)) => {
                // The image applies it; until then the change stays pending.
                broker.wait_reconciled(index, ALTER_PARTITION_TIMEOUT).await;
            }
            Ok((ControllerResponse::AlterPartition(Err(e)), _)) => {
                tracing::info!(partition = %partition.tp, error = ?e, "the controller refused an ISR change");
                partition.abandon_isr_change();
            }
            Ok((other, _)) => {
                tracing::error!(?other, "unexpected answer to AlterPartition");
                partition.abandon_isr_change();
            }
            Err(e) => {
                tracing::info!(partition = %partition.tp, error = %e, "ISR change not committed");
                partition.abandon_isr_change();
            }
        }
    });
}

/// Checks every led partition for followers out of sync for longer than
/// `replica.lag.time.max.ms`, every half of it (as Kafka does), until
/// `stop` changes.
pub(crate) async fn run_isr_checks(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    loop {
        let lag = broker.config.read().replica_lag_time_max_ms().max(2);
        let period = Duration::from_millis(u64::try_from(lag / 2).unwrap_or(1000).max(1));
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        let now = now_ms();
        for topic in broker.topics.all() {
            for (_, partition) in topic.hosted() {
                if let Some(change) = partition.check_lagging(now) {
                    request_isr_change(&broker, partition, change);
                }
            }
        }
    }
}
