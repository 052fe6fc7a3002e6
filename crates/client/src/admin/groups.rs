//! Consumer groups: ListGroups (every broker), DescribeGroups and
//! ConsumerGroupDescribe, DeleteGroups.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    describe_groups_response, ConsumerGroupDescribeRequest, ConsumerProtocolAssignment,
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest,
};
use kafka_protocol::protocol::Decodable;

use super::retry::Outcomes;
use super::{str_bytes, Admin};
use crate::cluster::CoordinatorKind;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::types::TopicPartition;

/// Which protocol a group speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupType {
    /// JoinGroup/SyncGroup (`classic`).
    Classic,
    /// KIP-848's ConsumerGroupHeartbeat (`consumer`).
    Consumer,
    /// Another type, as the broker named it.
    Other(String),
}

impl GroupType {
    fn parse(name: &str) -> GroupType {
        match name.to_ascii_lowercase().as_str() {
            "classic" | "" => GroupType::Classic,
            "consumer" => GroupType::Consumer,
            _ => GroupType::Other(name.to_owned()),
        }
    }

    /// Kafka's name for the type: `classic`, `consumer`, ...
    pub fn name(&self) -> &str {
        match self {
            GroupType::Classic => "classic",
            GroupType::Consumer => "consumer",
            GroupType::Other(name) => name,
        }
    }
}

/// A group as [`Admin::list_groups`] names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type (`consumer` for consumer groups, empty for groups that only
    /// commit offsets).
    pub protocol_type: String,
    /// State (`Stable`, `Empty`, ...), when the broker reports it (ListGroups v4+).
    pub state: Option<String>,
    /// Group type, when the broker reports it (ListGroups v5+).
    pub group_type: Option<GroupType>,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The member's `client.id`.
    pub client_id: String,
    /// The member's host as the coordinator saw it.
    pub client_host: String,
    /// The partitions assigned to the member (decoded for consumer groups).
    pub assignment: Vec<TopicPartition>,
}

/// A group as [`Admin::describe_groups`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State: `Empty`, `Stable`, `PreparingRebalance`, ..., `Dead` for no such group.
    pub state: String,
    /// Classic or consumer (KIP-848).
    pub group_type: GroupType,
    /// Protocol type (`consumer`), for classic groups.
    pub protocol_type: String,
    /// The chosen assignor (`range`, `uniform`, ...).
    pub assignor: String,
    /// Members and their assignments.
    pub members: Vec<GroupMember>,
    /// The coordinator's node id.
    pub coordinator: i32,
}

impl Admin {
    /// Lists groups on every broker (ListGroups), keeping those in one of `states`
    /// and of one of `types` (`classic`, `consumer`); an empty filter keeps all.
    pub async fn list_groups(&self, states: &[&str], types: &[&str]) -> Result<Vec<GroupListing>> {
        let brokers: Vec<i32> = self
            .retrying(|| async {
                self.cluster.refresh_metadata(&[]).await?;
                Ok(self.cluster.metadata().brokers.keys().copied().collect())
            })
            .await?;
        let mut groups = BTreeMap::new();
        for id in brokers {
            let listed = self
                .retrying(|| async {
                    let connection = self.cluster.broker(id).await?;
                    let version = connection.version_for::<ListGroupsRequest>(None)?;
                    let mut request = ListGroupsRequest::default();
                    if version >= 4 {
                        request.states_filter = states.iter().map(|s| str_bytes(s)).collect();
                    }
                    if version >= 5 {
                        request.types_filter = types.iter().map(|s| str_bytes(s)).collect();
                    }
                    let response = connection.send_version(&request, version).await?;
                    Error::check(response.error_code, None, || {
                        format!("ListGroups to node {id}")
                    })?;
                    Ok((version, response.groups))
                })
                .await?;
            let (version, listed) = listed;
            for g in listed {
                let listing = GroupListing {
                    group_id: g.group_id.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    state: (version >= 4).then(|| g.group_state.to_string()),
                    group_type: (version >= 5).then(|| GroupType::parse(&g.group_type)),
                };
                groups.insert(listing.group_id.clone(), listing);
            }
        }
        let keep = |listing: &GroupListing| {
            let state_ok = states.is_empty()
                || listing
                    .state
                    .as_ref()
                    .is_none_or(|s| states.iter().any(|w| w.eq_ignore_ascii_case(s)));
            let type_ok = types.is_empty()
                || listing
                    .group_type
                    .as_ref()
                    .is_none_or(|t| types.iter().any(|w| w.eq_ignore_ascii_case(t.name())));
            state_ok && type_ok
        };
        Ok(groups.into_values().filter(keep).collect())
    }

    /// Describes groups at their coordinators: DescribeGroups, then
    /// ConsumerGroupDescribe for a group DescribeGroups does not know as a classic
    /// group (a KIP-848 group). A group that exists nowhere is described as `Dead`
    /// (older brokers) or answered with `GROUP_ID_NOT_FOUND`.
    pub async fn describe_groups(
        &self,
        ids: &[&str],
    ) -> Result<BTreeMap<String, Result<GroupDescription>>> {
        let ids = ids.iter().map(|g| (*g).to_owned()).collect();
        self.per_item(ids, |ids: Vec<String>| async move {
            let mut outcomes = Vec::new();
            for id in ids {
                let result = self
                    .at_coordinator(&id, |c, node| self.describe_group(c, node, &id))
                    .await;
                outcomes.push((id, result));
            }
            Ok(outcomes)
        })
        .await
    }

    /// Deletes empty groups and their committed offsets (DeleteGroups). A group with
    /// members is answered with `NON_EMPTY_GROUP`.
    pub async fn delete_groups(&self, ids: &[&str]) -> Result<BTreeMap<String, Result<()>>> {
        let ids = ids.iter().map(|g| (*g).to_owned()).collect();
        self.per_item(ids, |ids: Vec<String>| async move {
            let mut outcomes: Outcomes<String, ()> = Vec::new();
            for id in ids {
                let group = id.as_str();
                let result = self
                    .at_coordinator(group, |c, _| async move {
                        let request = DeleteGroupsRequest::default()
                            .with_groups_names(vec![GroupId(str_bytes(group))]);
                        let response = c.send(&request).await?;
                        let result = response
                            .results
                            .iter()
                            .find(|r| r.group_id.as_str() == group)
                            .ok_or_else(|| {
                                Error::Protocol(format!("DeleteGroups did not answer for {group}"))
                            })?;
                        Error::check(result.error_code, None, || format!("DeleteGroups {group}"))
                    })
                    .await;
                outcomes.push((id, result));
            }
            Ok(outcomes)
        })
        .await
    }

    /// Runs one attempt of `call` at `group`'s coordinator, forgetting the
    /// coordinator when the answer says it moved (the caller retries).
    pub(super) async fn at_coordinator<'a, T, F, Fut>(&self, group: &str, call: F) -> Result<T>
    where
        F: FnOnce(Arc<Connection>, i32) -> Fut + 'a,
        Fut: Future<Output = Result<T>> + 'a,
    {
        let result = match self
            .cluster
            .coordinator(CoordinatorKind::Group, group)
            .await
        {
            Ok((node, connection)) => call(connection, node).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            if coordinator_moved(e) {
                self.cluster
                    .forget_coordinator(CoordinatorKind::Group, group);
            }
        }
        result
    }

    async fn describe_group(
        &self,
        connection: Arc<Connection>,
        coordinator: i32,
        id: &str,
    ) -> Result<GroupDescription> {
        let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(id))]);
        let response = connection.send(&request).await?;
        let described = response
            .groups
            .into_iter()
            .find(|g| g.group_id.as_str() == id)
            .ok_or_else(|| Error::Protocol(format!("DescribeGroups did not answer for {id}")))?;
        let not_classic = described.error_code == ResponseError::GroupIdNotFound.code()
            || (described.error_code == 0 && described.group_state.as_str() == "Dead");
        if not_classic
            && connection
                .broker_versions(kafka_protocol::messages::ApiKey::ConsumerGroupDescribe)
                .is_some()
        {
            if let Some(group) = self
                .describe_consumer_group(&connection, coordinator, id)
                .await?
            {
                return Ok(group);
            }
        }
        Error::check(
            described.error_code,
            described.error_message.as_deref(),
            || format!("DescribeGroups {id}"),
        )?;
        Ok(classic_description(described, coordinator))
    }

    /// ConsumerGroupDescribe; `None` when the broker knows no such consumer group.
    async fn describe_consumer_group(
        &self,
        connection: &Connection,
        coordinator: i32,
        id: &str,
    ) -> Result<Option<GroupDescription>> {
        let request =
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(str_bytes(id))]);
        let response = connection.send(&request).await?;
        let Some(group) = response
            .groups
            .into_iter()
            .find(|g| g.group_id.as_str() == id)
        else {
            return Ok(None);
        };
        if group.error_code == ResponseError::GroupIdNotFound.code() {
            return Ok(None);
        }
        Error::check(group.error_code, group.error_message.as_deref(), || {
            format!("ConsumerGroupDescribe {id}")
        })?;
        let members = group
            .members
            .into_iter()
            .map(|m| GroupMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.instance_id.map(|s| s.to_string()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: m
                    .assignment
                    .topic_partitions
                    .iter()
                    .flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(|p| TopicPartition::new(t.topic_name.0.to_string(), *p))
                    })
                    .collect(),
            })
            .collect();
        Ok(Some(GroupDescription {
            group_id: id.to_owned(),
            state: group.group_state.to_string(),
            group_type: GroupType::Consumer,
            protocol_type: "consumer".to_owned(),
            assignor: group.assignor_name.to_string(),
            members,
            coordinator,
        }))
    }
}

/// Whether an error means the group's coordinator is elsewhere (or unreachable).
fn coordinator_moved(error: &Error) -> bool {
    matches!(
        error.code(),
        Some(ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable)
    ) || matches!(error, Error::Connection { .. })
}

fn classic_description(
    described: describe_groups_response::DescribedGroup,
    coordinator: i32,
) -> GroupDescription {
    let consumer = described.protocol_type.as_str() == "consumer";
    GroupDescription {
        group_id: described.group_id.to_string(),
        state: described.group_state.to_string(),
        group_type: GroupType::Classic,
        protocol_type: described.protocol_type.to_string(),
        assignor: described.protocol_data.to_string(),
        members: described
            .members
            .into_iter()
            .map(|m| GroupMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|s| s.to_string()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: if consumer {
                    decode_assignment(m.member_assignment)
                } else {
                    Vec::new()
                },
            })
            .collect(),
        coordinator,
    }
}

/// Decodes a classic consumer's assignment (ConsumerProtocolAssignment); bytes that
/// do not decode give no partitions rather than an error, as the assignment is
/// opaque to the coordinator and only informative here.
fn decode_assignment(mut bytes: Bytes) -> Vec<TopicPartition> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let version = bytes.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut bytes, version) {
        Ok(assignment) => assignment
            .assigned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| TopicPartition::new(t.topic.0.to_string(), *p))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::consumer_protocol_assignment;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn a_consumer_assignment_decodes_to_partitions() {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            consumer_protocol_assignment::TopicPartition::default()
                .with_topic(super::super::topic_name("orders"))
                .with_partitions(vec![0, 2]),
        ]);
        let mut buf = bytes::BytesMut::new();
        buf.put_i16(1);
        assignment.encode(&mut buf, 1).unwrap();
        assert_eq!(
            decode_assignment(buf.freeze()),
            vec![
                TopicPartition::new("orders", 0),
                TopicPartition::new("orders", 2)
            ]
        );
        assert!(decode_assignment(Bytes::from_static(&[0, 1, 255])).is_empty());
    }
}
