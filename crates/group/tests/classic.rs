//! The classic group state machine, driven the way the broker's runtime
//! drives it: requests and the clock in, outputs out.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use runnel_group::classic::{
    ClassicConfig, ClassicGroup, ClassicState, GroupSnapshot, JoinRequest, JoinResponse,
    LeaveMember, MemberSnapshot, Output, SyncRequest, SyncResponse,
};
use runnel_group::{Millis, RequestId};

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn code(error: ResponseError) -> i16 {
    error.code()
}

/// A ConsumerProtocolSubscription v1 with user data after the topics.
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(1);
    b.put_i32(topics.len() as i32);
    for topic in topics {
        b.put_i16(topic.len() as i16);
        b.put_slice(topic.as_bytes());
    }
    // user data (nullable bytes): 3 bytes
    b.put_i32(3);
    b.put_slice(b"usr");
    // owned partitions: empty array
    b.put_i32(0);
    b.freeze()
}

fn range(topics: &[&str]) -> Vec<(String, Bytes)> {
    vec![("range".to_string(), subscription(topics))]
}

fn protocols(names: &[&str]) -> Vec<(String, Bytes)> {
    names
        .iter()
        .map(|name| (name.to_string(), Bytes::from(format!("meta-{name}"))))
        .collect()
}

fn cfg(initial_rebalance_delay_ms: i32) -> ClassicConfig {
    ClassicConfig {
        min_session_timeout_ms: 1_000,
        max_session_timeout_ms: 60_000,
        initial_rebalance_delay_ms,
        max_size: 100,
    }
}

fn joins(out: &[Output]) -> Vec<(RequestId, JoinResponse)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Join(id, r) => Some((*id, r.clone())),
            _ => None,
        })
        .collect()
}

fn join_answer(out: &[Output], request: RequestId) -> JoinResponse {
    let found: Vec<JoinResponse> = joins(out)
        .into_iter()
        .filter(|(id, _)| *id == request)
        .map(|(_, r)| r)
        .collect();
    assert_eq!(found.len(), 1, "join {request} answered once in {out:?}");
    found.into_iter().next().unwrap()
}

fn sync_answer(out: &[Output], request: RequestId) -> SyncResponse {
    let found: Vec<SyncResponse> = out
        .iter()
        .filter_map(|o| match o {
            Output::Sync(id, r) if *id == request => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "sync {request} answered once in {out:?}");
    found.into_iter().next().unwrap()
}

fn not_answered(out: &[Output], request: RequestId) -> bool {
    !out.iter().any(|o| match o {
        Output::Join(id, _) | Output::Sync(id, _) => *id == request,
        Output::Persist => false,
    })
}

fn persists(out: &[Output]) -> usize {
    out.iter().filter(|o| matches!(o, Output::Persist)).count()
}

/// The runtime around one group.
struct Harness {
    group: ClassicGroup,
    cfg: ClassicConfig,
    now: Millis,
    next_request: RequestId,
}

impl Harness {
    fn new(cfg: ClassicConfig) -> Harness {
        Harness {
            group: ClassicGroup::new("g".into(), 1_000),
            cfg,
            now: 1_000,
            next_request: 1,
        }
    }

    fn request(&mut self) -> RequestId {
        self.next_request += 1;
        self.next_request
    }

    fn join_req(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        protocols: Vec<(String, Bytes)>,
    ) -> JoinRequest {
        let request = self.request();
        JoinRequest {
            request,
            version: 9,
            member_id: member_id.to_string(),
            group_instance_id: instance.map(str::to_string),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocol_type: "consumer".into(),
            protocols,
            reason: None,
            fresh_suffix: format!("s{request}"),
        }
    }

    fn join(&mut self, req: JoinRequest) -> Vec<Output> {
        let mut out = Vec::new();
        self.group.join(self.now, &self.cfg, req, &mut out);
        out
    }

    /// Joins a new dynamic member the KIP-394 way; returns its id, the
    /// held request and the outputs of the second join.
    fn join_new(&mut self, protocols: Vec<(String, Bytes)>) -> (String, RequestId, Vec<Output>) {
        let first = self.join_req("", None, protocols.clone());
        let first_id = first.request;
        let out = self.join(first);
        let answer = join_answer(&out, first_id);
        assert_eq!(answer.error, code(ResponseError::MemberIdRequired));
        assert!(answer.member_id.starts_with("client-"));
        let second = self.join_req(&answer.member_id, None, protocols);
        let request = second.request;
        let out = self.join(second);
        (answer.member_id, request, out)
    }

    fn rejoin(&mut self, member_id: &str, instance: Option<&str>) -> (RequestId, Vec<Output>) {
        let req = self.join_req(member_id, instance, range(&["t"]));
        let request = req.request;
        (request, self.join(req))
    }

    fn sync(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> (RequestId, Vec<Output>) {
        let request = self.request();
        let mut out = Vec::new();
        let req = SyncRequest {
            request,
            member_id: member_id.to_string(),
            group_instance_id: instance.map(str::to_string),
            generation_id,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments,
        };
        self.group.sync(self.now, &self.cfg, req, &mut out);
        (request, out)
    }

    fn heartbeat(&mut self, member_id: &str, instance: Option<&str>) -> i16 {
        let generation = self.group.generation();
        self.group
            .heartbeat(self.now, member_id, instance, generation)
    }

    fn leave(&mut self, members: &[(&str, Option<&str>)]) -> (Vec<i16>, Vec<Output>) {
        let members: Vec<LeaveMember> = members
            .iter()
            .map(|(id, instance)| LeaveMember {
                member_id: id.to_string(),
                group_instance_id: instance.map(str::to_string),
                reason: Some("test".into()),
            })
            .collect();
        let mut out = Vec::new();
        let codes = self.group.leave(self.now, &self.cfg, &members, &mut out);
        (codes, out)
    }

    fn advance_to(&mut self, now: Millis) -> Vec<Output> {
        assert!(now >= self.now);
        self.now = now;
        let mut out = Vec::new();
        self.group.tick(self.now, &self.cfg, &mut out);
        if let Some(deadline) = self.group.next_deadline() {
            assert!(deadline > self.now, "tick left a due deadline");
        }
        out
    }

    fn advance(&mut self, ms: Millis) -> Vec<Output> {
        self.advance_to(self.now + ms)
    }

    /// Runs the clock to the end of the join phase.
    fn finish_join_phase(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        while self.group.state() == ClassicState::PreparingRebalance {
            let deadline = self.group.next_deadline().unwrap();
            out.extend(self.advance_to(deadline));
        }
        out
    }

    fn member_ids(&self) -> Vec<String> {
        self.group
            .members()
            .into_iter()
            .map(|m| m.member_id)
            .collect()
    }

    /// Three dynamic members join during the initial delay and sync; the
    /// first is the leader. Returns their ids.
    fn stable_group_of_three(&mut self) -> Vec<String> {
        let mut ids = Vec::new();
        let mut held = Vec::new();
        for _ in 0..3 {
            let (id, request, out) = self.join_new(range(&["t"]));
            assert!(joins(&out).is_empty());
            ids.push(id);
            held.push(request);
        }
        let out = self.finish_join_phase();
        assert_eq!(self.group.state(), ClassicState::CompletingRebalance);
        for request in &held {
            assert_eq!(join_answer(&out, *request).error, 0);
        }
        let generation = self.group.generation();
        for id in &ids[1..] {
            let (_, out) = self.sync(id, None, generation, Vec::new());
            assert!(out.is_empty());
        }
        let assignments = ids
            .iter()
            .map(|id| (id.clone(), Bytes::from(format!("assign-{id}"))))
            .collect();
        let (_, out) = self.sync(&ids[0], None, generation, assignments);
        assert_eq!(persists(&out), 1);
        assert_eq!(self.group.state(), ClassicState::Stable);
        ids
    }
}

#[test]
fn three_members_join_and_sync() {
    let mut h = Harness::new(cfg(3_000));
    let mut ids = Vec::new();
    let mut held = Vec::new();
    for _ in 0..3 {
        let (id, request, out) = h.join_new(range(&["t"]));
        assert!(out.is_empty(), "joins wait for the initial delay");
        ids.push(id);
        held.push(request);
    }
    assert_eq!(h.group.state(), ClassicState::PreparingRebalance);
    // Members joined during the first delay: it is extended once.
    assert_eq!(h.group.next_deadline(), Some(4_000));
    assert!(h.advance_to(4_000).is_empty());
    assert_eq!(h.group.next_deadline(), Some(7_000));
    let out = h.advance_to(7_000);
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
    assert_eq!(h.group.generation(), 1);
    assert_eq!(h.group.protocol_name(), Some("range"));

    let leader = join_answer(&out, held[0]);
    assert_eq!(leader.error, 0);
    assert_eq!(leader.leader, ids[0]);
    assert_eq!(leader.member_id, ids[0]);
    assert_eq!(leader.generation_id, 1);
    assert_eq!(leader.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(leader.protocol_name.as_deref(), Some("range"));
    let listed: Vec<&str> = leader
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(leader
        .members
        .iter()
        .all(|m| m.metadata == subscription(&["t"])));
    for (i, request) in held.iter().enumerate().skip(1) {
        let follower = join_answer(&out, *request);
        assert_eq!(follower.error, 0);
        assert_eq!(follower.leader, ids[0]);
        assert_eq!(follower.member_id, ids[i]);
        assert!(follower.members.is_empty());
    }

    // Followers' syncs wait for the leader.
    let (s1, out) = h.sync(&ids[1], None, 1, Vec::new());
    assert!(out.is_empty());
    let (s2, out) = h.sync(&ids[2], None, 1, Vec::new());
    assert!(out.is_empty());
    // The leader leaves ids[2] out: it gets an empty assignment.
    let assignments = vec![
        (ids[0].clone(), Bytes::from_static(b"a0")),
        (ids[1].clone(), Bytes::from_static(b"a1")),
        ("stranger".to_string(), Bytes::from_static(b"x")),
    ];
    let (s0, out) = h.sync(&ids[0], None, 1, assignments);
    assert_eq!(
        out.first(),
        Some(&Output::Persist),
        "persist before answering"
    );
    assert_eq!(h.group.state(), ClassicState::Stable);
    assert_eq!(sync_answer(&out, s0).assignment, Bytes::from_static(b"a0"));
    assert_eq!(sync_answer(&out, s1).assignment, Bytes::from_static(b"a1"));
    let third = sync_answer(&out, s2);
    assert_eq!(third.error, 0);
    assert!(third.assignment.is_empty());
    assert_eq!(third.protocol_name.as_deref(), Some("range"));
    assert_eq!(third.protocol_type.as_deref(), Some("consumer"));

    // In Stable a sync is answered at once with the current assignment.
    let (s, out) = h.sync(&ids[1], None, 1, Vec::new());
    assert_eq!(sync_answer(&out, s).assignment, Bytes::from_static(b"a1"));
    let snapshot = h.group.snapshot(h.now);
    assert_eq!(snapshot.members.len(), 3);
    assert_eq!(snapshot.leader.as_deref(), Some(ids[0].as_str()));
}

#[test]
fn old_join_versions_are_added_without_member_id_required() {
    let mut h = Harness::new(cfg(0));
    let mut req = h.join_req("", None, range(&["t"]));
    req.version = 3;
    let request = req.request;
    let out = h.join(req);
    let answer = join_answer(&out, request);
    assert_eq!(answer.error, 0);
    assert_eq!(answer.generation_id, 1);
    assert_eq!(answer.leader, answer.member_id);
    assert_eq!(answer.members.len(), 1);
}

#[test]
fn fourth_member_triggers_a_rebalance() {
    let mut h = Harness::new(cfg(3_000));
    let ids = h.stable_group_of_three();
    let (new_id, new_request, out) = h.join_new(range(&["t"]));
    assert!(out.is_empty());
    assert_eq!(h.group.state(), ClassicState::PreparingRebalance);
    // The others learn of the rebalance from their heartbeats.
    for id in &ids {
        assert_eq!(
            h.heartbeat(id, None),
            code(ResponseError::RebalanceInProgress)
        );
    }
    let (r0, out) = h.rejoin(&ids[0], None);
    assert!(out.is_empty());
    let (r1, out) = h.rejoin(&ids[1], None);
    assert!(out.is_empty());
    let (r2, out) = h.rejoin(&ids[2], None);
    // The last one completes the join phase at once.
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
    assert_eq!(h.group.generation(), 2);
    let leader = join_answer(&out, r0);
    assert_eq!(leader.leader, ids[0], "the leader stays the leader");
    assert_eq!(leader.members.len(), 4);
    for request in [r1, r2, new_request] {
        let answer = join_answer(&out, request);
        assert_eq!(answer.generation_id, 2);
        assert!(answer.members.is_empty());
    }
    assert!(h.member_ids().contains(&new_id));
}

#[test]
fn a_pending_member_id_holds_the_join_phase_until_it_expires() {
    let mut h = Harness::new(cfg(3_000));
    let ids = h.stable_group_of_three();
    // A new member gets its id but does not come back.
    let req = h.join_req("", None, range(&["t"]));
    let out = h.join(req);
    assert_eq!(
        joins(&out)[0].1.error,
        code(ResponseError::MemberIdRequired)
    );
    assert_eq!(h.group.state(), ClassicState::Stable);
    // The leader rejoins; then everyone has, but the pending id is awaited.
    let (r0, _) = h.rejoin(&ids[0], None);
    h.rejoin(&ids[1], None);
    let (_, out) = h.rejoin(&ids[2], None);
    assert!(not_answered(&out, r0));
    // The pending id expires after its session timeout and the phase ends.
    let out = h.advance(i64::from(SESSION_MS));
    assert_eq!(join_answer(&out, r0).members.len(), 3);
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
}

#[test]
fn session_expiry_removes_a_member_and_rebalances() {
    let mut h = Harness::new(cfg(3_000));
    let ids = h.stable_group_of_three();
    let start = h.now;
    for step in 1..=2 {
        h.advance_to(start + step * 4_000);
        assert_eq!(h.heartbeat(&ids[0], None), 0);
        assert_eq!(h.heartbeat(&ids[1], None), 0);
    }
    // ids[2] never heartbeat: its session ends at start + 10s.
    assert_eq!(h.group.next_deadline(), Some(start + i64::from(SESSION_MS)));
    h.advance_to(start + 9_999);
    assert_eq!(h.group.state(), ClassicState::Stable);
    h.advance_to(start + 10_000);
    assert_eq!(h.group.state(), ClassicState::PreparingRebalance);
    assert!(!h.member_ids().contains(&ids[2]));
    assert_eq!(
        h.heartbeat(&ids[2], None),
        code(ResponseError::UnknownMemberId)
    );
    h.rejoin(&ids[0], None);
    let (r1, out) = h.rejoin(&ids[1], None);
    assert_eq!(join_answer(&out, r1).generation_id, 2);
    assert_eq!(h.member_ids(), ids[..2].to_vec());
}

#[test]
fn members_that_do_not_rejoin_in_time_are_removed() {
    let mut h = Harness::new(cfg(3_000));
    let ids = h.stable_group_of_three();
    let start = h.now;
    let (r0, _) = h.rejoin(&ids[0], None);
    let (r1, _) = h.rejoin(&ids[1], None);
    // ids[2] keeps heartbeating but never rejoins.
    for step in 1..=7 {
        let out = h.advance_to(start + step * 4_000);
        assert!(joins(&out).is_empty());
        assert_eq!(
            h.heartbeat(&ids[2], None),
            code(ResponseError::RebalanceInProgress)
        );
    }
    assert_eq!(
        h.group.next_deadline(),
        Some(start + i64::from(REBALANCE_MS))
    );
    let out = h.advance_to(start + i64::from(REBALANCE_MS));
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
    assert_eq!(join_answer(&out, r0).members.len(), 2);
    assert_eq!(join_answer(&out, r1).generation_id, 2);
    assert_eq!(h.member_ids(), ids[..2].to_vec());
    assert_eq!(
        h.heartbeat(&ids[2], None),
        code(ResponseError::UnknownMemberId)
    );
}

#[test]
fn static_members_that_do_not_rejoin_stay_until_the_sync_deadline() {
    let mut h = Harness::new(cfg(0));
    let req = h.join_req("", Some("a"), range(&["t"]));
    let ra = req.request;
    let out = h.join(req);
    let a = join_answer(&out, ra).member_id;
    h.sync(&a, Some("a"), 1, vec![(a.clone(), Bytes::new())]);
    let req = h.join_req("", Some("b"), range(&["t"]));
    h.join(req);
    // "a" heartbeats but does not rejoin.
    for _ in 0..7 {
        h.advance(4_000);
        assert_eq!(
            h.heartbeat(&a, Some("a")),
            code(ResponseError::RebalanceInProgress)
        );
    }
    h.advance(2_000);
    // Kafka keeps a static member through the join phase: it is part of
    // the new generation (a restarting static member keeps its place).
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
    assert_eq!(h.group.members().len(), 2);
    // "b" syncs; "a" never does, so the sync deadline removes it.
    let b = h.member_ids().into_iter().find(|m| *m != a).unwrap();
    let generation = h.group.generation();
    h.sync(&b, Some("b"), generation, Vec::new());
    h.advance(30_000);
    assert_eq!(h.group.members().len(), 1);
    assert_eq!(
        h.heartbeat(&a, Some("a")),
        code(ResponseError::UnknownMemberId)
    );
}

/// A stable group whose members use a short rebalance timeout, so that the
/// pending-sync deadline comes before any session ends.
fn completing_group_with_short_rebalance_timeout(h: &mut Harness) -> (Vec<String>, Vec<RequestId>) {
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut req = h.join_req("", None, range(&["t"]));
        req.version = 3;
        req.rebalance_timeout_ms = 5_000;
        let request = req.request;
        let out = h.join(req);
        let _ = request;
        assert!(joins(&out).is_empty() || h.group.generation() == 1);
        ids = h.member_ids();
    }
    let out = h.finish_join_phase();
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
    (ids, joins(&out).into_iter().map(|(r, _)| r).collect())
}

#[test]
fn members_that_never_sync_are_removed() {
    let mut h = Harness::new(cfg(3_000));
    let (ids, _) = completing_group_with_short_rebalance_timeout(&mut h);
    let completed_at = h.now;
    assert_eq!(h.group.next_deadline(), Some(completed_at + 5_000));
    let (_, out) = h.sync(&ids[1], None, 1, Vec::new());
    assert!(out.is_empty());
    let assignments = ids
        .iter()
        .map(|id| (id.clone(), Bytes::from_static(b"x")))
        .collect();
    let (_, out) = h.sync(&ids[0], None, 1, assignments);
    assert_eq!(persists(&out), 1);
    assert_eq!(h.group.state(), ClassicState::Stable);
    // ids[2] heartbeats but never syncs: removed at the sync deadline.
    h.advance(4_000);
    assert_eq!(h.heartbeat(&ids[2], None), 0);
    h.advance(1_000);
    assert_eq!(h.group.state(), ClassicState::PreparingRebalance);
    assert_eq!(h.member_ids(), ids[..2].to_vec());
}

#[test]
fn a_leader_that_never_syncs_sends_the_group_back_to_rebalance() {
    let mut h = Harness::new(cfg(3_000));
    let (ids, _) = completing_group_with_short_rebalance_timeout(&mut h);
    let (s1, _) = h.sync(&ids[1], None, 1, Vec::new());
    let (s2, _) = h.sync(&ids[2], None, 1, Vec::new());
    let out = h.advance(5_000);
    assert_eq!(
        sync_answer(&out, s1).error,
        code(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        sync_answer(&out, s2).error,
        code(ResponseError::RebalanceInProgress)
    );
    assert_eq!(h.group.state(), ClassicState::PreparingRebalance);
    assert_eq!(h.member_ids(), ids[1..].to_vec());
    assert_eq!(h.group.leader(), Some(ids[1].as_str()));
}

/// Two static members, "a" (leader) and "b", in a Stable group.
fn stable_static_group(h: &mut Harness) -> (String, String) {
    let req = h.join_req("", Some("a"), range(&["t"]));
    let ra = req.request;
    h.join(req);
    let req = h.join_req("", Some("b"), range(&["t"]));
    let rb = req.request;
    h.join(req);
    let out = h.finish_join_phase();
    let a = join_answer(&out, ra).member_id;
    let b = join_answer(&out, rb).member_id;
    assert!(a.starts_with("a-") && b.starts_with("b-"));
    h.sync(&b, Some("b"), 1, Vec::new());
    let assignments = vec![
        (a.clone(), Bytes::from_static(b"pa")),
        (b.clone(), Bytes::from_static(b"pb")),
    ];
    h.sync(&a, Some("a"), 1, assignments);
    assert_eq!(h.group.state(), ClassicState::Stable);
    (a, b)
}

#[test]
fn static_member_restart_with_same_protocols_keeps_the_generation() {
    let mut h = Harness::new(cfg(3_000));
    let (a, b) = stable_static_group(&mut h);
    let req = h.join_req("", Some("b"), range(&["t"]));
    let request = req.request;
    let out = h.join(req);
    assert_eq!(
        out.first(),
        Some(&Output::Persist),
        "persist before the answer"
    );
    let answer = join_answer(&out, request);
    assert_eq!(answer.error, 0);
    assert_ne!(answer.member_id, b);
    assert!(answer.member_id.starts_with("b-"));
    assert_eq!(answer.generation_id, 1);
    assert_eq!(answer.leader, a);
    assert!(answer.members.is_empty());
    assert!(!answer.skip_assignment);
    assert_eq!(h.group.state(), ClassicState::Stable);
    assert_eq!(h.group.generation(), 1);
    let new_b = answer.member_id;
    // The old id is fenced; the new one works and keeps the assignment.
    assert_eq!(
        h.heartbeat(&b, Some("b")),
        code(ResponseError::FencedInstanceId)
    );
    let (s, out) = h.sync(&b, Some("b"), 1, Vec::new());
    assert_eq!(
        sync_answer(&out, s).error,
        code(ResponseError::FencedInstanceId)
    );
    assert_eq!(
        h.group.validate_offset_commit(&b, Some("b"), 1),
        Err(code(ResponseError::FencedInstanceId))
    );
    assert_eq!(h.heartbeat(&new_b, Some("b")), 0);
    let (s, out) = h.sync(&new_b, Some("b"), 1, Vec::new());
    assert_eq!(sync_answer(&out, s).assignment, Bytes::from_static(b"pb"));
    let snapshot = h.group.snapshot(h.now);
    assert_eq!(snapshot.members[1].member_id, new_b);
}

#[test]
fn static_leader_restart_skips_assignment_from_v9() {
    let mut h = Harness::new(cfg(3_000));
    let (a, b) = stable_static_group(&mut h);
    let req = h.join_req("", Some("a"), range(&["t"]));
    let request = req.request;
    let out = h.join(req);
    let answer = join_answer(&out, request);
    assert!(answer.skip_assignment);
    assert_eq!(
        answer.leader, answer.member_id,
        "the restarted leader stays leader"
    );
    assert_eq!(answer.members.len(), 2);
    assert!(answer.members.iter().any(|m| m.member_id == b));
    assert!(!answer.members.iter().any(|m| m.member_id == a));
    assert_eq!(h.group.leader(), Some(answer.member_id.as_str()));

    // An older client gets the members but no skip flag.
    let mut req = h.join_req("", Some("a"), range(&["t"]));
    req.version = 8;
    let request = req.request;
    let out = h.join(req);
    let answer = join_answer(&out, request);
    assert!(!answer.skip_assignment);
    assert_eq!(answer.members.len(), 2);
    assert_eq!(h.group.generation(), 1);
}

/// Kafka rebalances a returning static member only when the group's
/// selected protocol would change; new subscription bytes alone do not. The
/// leader learns them from its skip_assignment answer instead.
#[test]
fn static_member_with_changed_subscription_keeps_the_generation() {
    let mut h = Harness::new(cfg(3_000));
    let (a, b) = stable_static_group(&mut h);
    let req = h.join_req("", Some("b"), range(&["t", "u"]));
    let request = req.request;
    let out = h.join(req);
    let answer = join_answer(&out, request);
    assert_eq!(answer.error, 0);
    assert_eq!(answer.generation_id, 1);
    assert_eq!(h.group.state(), ClassicState::Stable);
    let new_b = answer.member_id;
    assert_eq!(
        h.heartbeat(&b, Some("b")),
        code(ResponseError::FencedInstanceId)
    );
    // The leader's own static restart hands it everyone's current metadata.
    let req = h.join_req("", Some("a"), range(&["t"]));
    let ra = req.request;
    let out = h.join(req);
    let leader = join_answer(&out, ra);
    assert!(leader.skip_assignment);
    assert_eq!(leader.generation_id, 1);
    assert_ne!(leader.member_id, a);
    let b_meta = leader
        .members
        .iter()
        .find(|m| m.member_id == new_b)
        .unwrap();
    assert_eq!(b_meta.metadata, subscription(&["t", "u"]));
    assert_eq!(b_meta.group_instance_id.as_deref(), Some("b"));
}

#[test]
fn static_member_changing_the_selected_protocol_rebalances() {
    let mut h = Harness::new(cfg(3_000));
    let req = h.join_req("", Some("a"), protocols(&["range", "roundrobin"]));
    let ra = req.request;
    h.join(req);
    let out = h.finish_join_phase();
    let a = join_answer(&out, ra).member_id;
    h.sync(
        &a,
        Some("a"),
        1,
        vec![(a.clone(), Bytes::from_static(b"pa"))],
    );
    assert_eq!(h.group.state(), ClassicState::Stable);
    assert_eq!(h.group.protocol_name(), Some("range"));

    let req = h.join_req("", Some("a"), protocols(&["roundrobin"]));
    let request = req.request;
    let out = h.join(req);
    // The only member has rejoined, so the new round completes at once.
    let answer = join_answer(&out, request);
    assert_eq!(answer.generation_id, 2);
    assert_eq!(answer.protocol_name.as_deref(), Some("roundrobin"));
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
}

#[test]
fn static_member_restart_while_completing_fences_its_held_sync() {
    let mut h = Harness::new(cfg(3_000));
    let req = h.join_req("", Some("a"), range(&["t"]));
    let ra = req.request;
    h.join(req);
    let req = h.join_req("", Some("b"), range(&["t"]));
    let rb = req.request;
    h.join(req);
    let out = h.finish_join_phase();
    let b = join_answer(&out, rb).member_id;
    let a = join_answer(&out, ra).member_id;
    let (held, _) = h.sync(&b, Some("b"), 1, Vec::new());
    let req = h.join_req("", Some("b"), range(&["t"]));
    let out = h.join(req);
    assert_eq!(
        sync_answer(&out, held).error,
        code(ResponseError::FencedInstanceId)
    );
    assert_eq!(h.group.state(), ClassicState::PreparingRebalance);
    assert_eq!(
        h.heartbeat(&a, Some("a")),
        code(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn batched_leave_with_admin_removal() {
    let mut h = Harness::new(cfg(3_000));
    let ids = h.stable_group_of_three();
    // Make a static member join too.
    let req = h.join_req("", Some("s"), range(&["t"]));
    let rs = req.request;
    h.join(req);
    for id in &ids {
        h.rejoin(id, None);
    }
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
    let out_members = h.member_ids();
    let s = out_members
        .iter()
        .find(|m| m.starts_with("s-"))
        .unwrap()
        .clone();
    let _ = rs;
    let generation = h.group.generation();
    let (held, _) = h.sync(&ids[1], None, generation, Vec::new());

    let (codes, out) = h.leave(&[
        (ids[1].as_str(), None),
        ("", Some("s")),
        ("bogus", None),
        ("", Some("nope")),
        ("wrong", Some("s")),
    ]);
    assert_eq!(
        codes,
        vec![
            0,
            0,
            code(ResponseError::UnknownMemberId),
            code(ResponseError::UnknownMemberId),
            code(ResponseError::FencedInstanceId),
        ]
    );
    assert_eq!(
        sync_answer(&out, held).error,
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(h.group.state(), ClassicState::PreparingRebalance);
    assert_eq!(h.member_ids(), vec![ids[0].clone(), ids[2].clone()]);
    assert!(!h.member_ids().contains(&s));

    // Held joins of leaving members are answered UNKNOWN_MEMBER_ID.
    let (r0, _) = h.rejoin(&ids[0], None);
    let (codes, out) = h.leave(&[(ids[0].as_str(), None)]);
    assert_eq!(codes, vec![0]);
    let answer = join_answer(&out, r0);
    assert_eq!(answer.error, code(ResponseError::UnknownMemberId));

    // The last member leaves: Empty, next generation, persisted.
    let before = h.group.generation();
    let (codes, out) = h.leave(&[(ids[2].as_str(), None)]);
    assert_eq!(codes, vec![0]);
    assert_eq!(h.group.state(), ClassicState::Empty);
    assert_eq!(h.group.generation(), before + 1);
    assert_eq!(persists(&out), 1);
    assert!(h.group.is_empty());
    assert_eq!(h.group.next_deadline(), None);
}

#[test]
fn leaving_the_whole_stable_group_empties_it() {
    let mut h = Harness::new(cfg(3_000));
    let ids = h.stable_group_of_three();
    let leaving: Vec<(&str, Option<&str>)> = ids.iter().map(|id| (id.as_str(), None)).collect();
    let (codes, out) = h.leave(&leaving);
    assert_eq!(codes, vec![0, 0, 0]);
    assert_eq!(h.group.state(), ClassicState::Empty);
    assert_eq!(h.group.generation(), 2);
    assert_eq!(persists(&out), 1);
    let snapshot = h.group.snapshot(h.now);
    assert!(snapshot.members.is_empty());
    assert_eq!(snapshot.protocol, None);
    assert_eq!(snapshot.leader, None);
    assert_eq!(snapshot.protocol_type, "consumer");
    assert_eq!(snapshot.current_state_timestamp, h.now);
}

#[test]
fn a_pending_member_can_leave() {
    let mut h = Harness::new(cfg(3_000));
    let req = h.join_req("", None, range(&["t"]));
    let out = h.join(req);
    let pending = joins(&out)[0].1.member_id.clone();
    assert_eq!(h.group.next_deadline(), Some(h.now + i64::from(SESSION_MS)));
    let (codes, _) = h.leave(&[(pending.as_str(), None)]);
    assert_eq!(codes, vec![0]);
    assert_eq!(h.group.next_deadline(), None);
    // Its id is no longer accepted.
    let req = h.join_req(&pending, None, range(&["t"]));
    let request = req.request;
    let out = h.join(req);
    assert_eq!(
        join_answer(&out, request).error,
        code(ResponseError::UnknownMemberId)
    );
}

#[test]
fn heartbeat_error_codes() {
    let mut h = Harness::new(cfg(3_000));
    assert_eq!(
        h.heartbeat("nobody", None),
        code(ResponseError::UnknownMemberId)
    );
    let ids = h.stable_group_of_three();
    let generation = h.group.generation();
    assert_eq!(h.heartbeat(&ids[0], None), 0);
    assert_eq!(
        h.heartbeat("nobody", None),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        h.group.heartbeat(h.now, &ids[0], None, generation + 1),
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        h.group
            .heartbeat(h.now, &ids[0], Some("unknown-instance"), generation),
        code(ResponseError::UnknownMemberId)
    );
    h.rejoin(&ids[0], None);
    assert_eq!(
        h.heartbeat(&ids[1], None),
        code(ResponseError::RebalanceInProgress)
    );
    h.rejoin(&ids[1], None);
    h.rejoin(&ids[2], None);
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
    assert_eq!(h.heartbeat(&ids[1], None), 0);
    let mut out = Vec::new();
    h.group
        .shut_down(code(ResponseError::NotCoordinator), &mut out);
    assert_eq!(
        h.heartbeat(&ids[1], None),
        code(ResponseError::CoordinatorNotAvailable)
    );
}

#[test]
fn sync_error_codes() {
    let mut h = Harness::new(cfg(3_000));
    let (s, out) = h.sync("nobody", None, 0, Vec::new());
    assert_eq!(
        sync_answer(&out, s).error,
        code(ResponseError::UnknownMemberId)
    );
    let ids = h.stable_group_of_three();
    let generation = h.group.generation();
    let (s, out) = h.sync(&ids[1], None, generation + 1, Vec::new());
    assert_eq!(
        sync_answer(&out, s).error,
        code(ResponseError::IllegalGeneration)
    );
    let (s, out) = h.sync(&ids[1], Some("x"), generation, Vec::new());
    assert_eq!(
        sync_answer(&out, s).error,
        code(ResponseError::UnknownMemberId)
    );

    let mut out = Vec::new();
    let mut req = SyncRequest {
        request: 900,
        member_id: ids[1].clone(),
        group_instance_id: None,
        generation_id: generation,
        protocol_type: Some("connect".into()),
        protocol_name: None,
        assignments: Vec::new(),
    };
    h.group.sync(h.now, &h.cfg, req.clone(), &mut out);
    assert_eq!(
        sync_answer(&out, 900).error,
        code(ResponseError::InconsistentGroupProtocol)
    );
    req.request = 901;
    req.protocol_type = None;
    req.protocol_name = Some("roundrobin".into());
    h.group.sync(h.now, &h.cfg, req.clone(), &mut out);
    assert_eq!(
        sync_answer(&out, 901).error,
        code(ResponseError::InconsistentGroupProtocol)
    );
    req.request = 902;
    req.protocol_name = None;
    h.group.sync(h.now, &h.cfg, req, &mut out);
    assert_eq!(sync_answer(&out, 902).error, 0);

    h.rejoin(&ids[0], None);
    let (s, out) = h.sync(&ids[1], None, generation, Vec::new());
    assert_eq!(
        sync_answer(&out, s).error,
        code(ResponseError::RebalanceInProgress)
    );

    let (r1, _) = h.rejoin(&ids[1], None);
    let mut out = Vec::new();
    h.group
        .shut_down(code(ResponseError::NotCoordinator), &mut out);
    assert_eq!(
        join_answer(&out, r1).error,
        code(ResponseError::NotCoordinator)
    );
    assert_eq!(h.group.state(), ClassicState::Dead);
    let (s, out) = h.sync(&ids[1], None, generation, Vec::new());
    assert_eq!(
        sync_answer(&out, s).error,
        code(ResponseError::CoordinatorNotAvailable)
    );
    let (r, out) = h.rejoin(&ids[1], None);
    assert_eq!(
        join_answer(&out, r).error,
        code(ResponseError::CoordinatorNotAvailable)
    );
    let (codes, _) = h.leave(&[(ids[1].as_str(), None)]);
    assert_eq!(codes, vec![code(ResponseError::CoordinatorNotAvailable)]);
    assert_eq!(h.group.next_deadline(), None);
}

#[test]
fn shut_down_answers_held_syncs() {
    let mut h = Harness::new(cfg(3_000));
    let (ids, _) = completing_group_with_short_rebalance_timeout(&mut h);
    let (s1, _) = h.sync(&ids[1], None, 1, Vec::new());
    let mut out = Vec::new();
    h.group
        .shut_down(code(ResponseError::NotCoordinator), &mut out);
    assert_eq!(
        sync_answer(&out, s1).error,
        code(ResponseError::NotCoordinator)
    );
    assert!(h.group.is_empty());
}

#[test]
fn offset_commit_validation() {
    let mut h = Harness::new(cfg(3_000));
    // An admin or self-assigning consumer commits to an empty group.
    assert_eq!(h.group.validate_offset_commit("", None, -1), Ok(()));
    assert_eq!(h.group.validate_offset_commit("someone", None, -1), Ok(()));
    assert_eq!(
        h.group.validate_offset_commit("", None, 0),
        Err(code(ResponseError::UnknownMemberId))
    );
    let ids = h.stable_group_of_three();
    let generation = h.group.generation();
    assert_eq!(
        h.group.validate_offset_commit("", None, -1),
        Err(code(ResponseError::UnknownMemberId))
    );
    assert_eq!(
        h.group.validate_offset_commit(&ids[0], None, generation),
        Ok(())
    );
    assert_eq!(
        h.group
            .validate_offset_commit(&ids[0], None, generation - 1),
        Err(code(ResponseError::IllegalGeneration))
    );
    assert_eq!(
        h.group.validate_offset_commit("nobody", None, generation),
        Err(code(ResponseError::UnknownMemberId))
    );
    // Eager consumers commit before rejoining: allowed while preparing.
    h.rejoin(&ids[0], None);
    assert_eq!(
        h.group.validate_offset_commit(&ids[1], None, generation),
        Ok(())
    );
    h.rejoin(&ids[1], None);
    h.rejoin(&ids[2], None);
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
    assert_eq!(
        h.group
            .validate_offset_commit(&ids[1], None, generation + 1),
        Err(code(ResponseError::RebalanceInProgress))
    );
    let mut out = Vec::new();
    h.group
        .shut_down(code(ResponseError::NotCoordinator), &mut out);
    assert_eq!(
        h.group.validate_offset_commit("", None, -1),
        Err(code(ResponseError::CoordinatorNotAvailable))
    );
}

#[test]
fn an_offset_commit_keeps_the_session_alive() {
    let mut h = Harness::new(cfg(3_000));
    let ids = h.stable_group_of_three();
    let generation = h.group.generation();
    for _ in 0..5 {
        h.advance(4_000);
        for id in &ids {
            assert_eq!(
                h.group.accept_offset_commit(h.now, id, None, generation),
                Ok(())
            );
        }
    }
    assert_eq!(h.group.state(), ClassicState::Stable);
    assert_eq!(
        h.group
            .accept_offset_commit(h.now, &ids[0], None, generation + 1),
        Err(code(ResponseError::IllegalGeneration))
    );
}

#[test]
fn join_error_codes() {
    let mut h = Harness::new(ClassicConfig {
        max_size: 3,
        ..cfg(3_000)
    });
    let check = |h: &mut Harness, req: JoinRequest, error: ResponseError| {
        let request = req.request;
        let out = h.join(req);
        let answer = join_answer(&out, request);
        assert_eq!(answer.error, code(error), "{answer:?}");
        assert_eq!(answer.generation_id, -1);
    };
    let mut req = h.join_req("", None, range(&["t"]));
    req.protocol_type = String::new();
    check(&mut h, req, ResponseError::InconsistentGroupProtocol);
    let req = h.join_req("", None, Vec::new());
    check(&mut h, req, ResponseError::InconsistentGroupProtocol);
    let mut req = h.join_req("", None, range(&["t"]));
    req.session_timeout_ms = 999;
    check(&mut h, req, ResponseError::InvalidSessionTimeout);
    let mut req = h.join_req("", None, range(&["t"]));
    req.session_timeout_ms = 60_001;
    check(&mut h, req, ResponseError::InvalidSessionTimeout);
    let req = h.join_req("unknown", None, range(&["t"]));
    check(&mut h, req, ResponseError::UnknownMemberId);
    assert_eq!(h.group.state(), ClassicState::Empty);

    let ids = h.stable_group_of_three();
    let mut req = h.join_req("", None, range(&["t"]));
    req.protocol_type = "connect".into();
    check(&mut h, req, ResponseError::InconsistentGroupProtocol);
    let req = h.join_req("", None, protocols(&["roundrobin"]));
    check(&mut h, req, ResponseError::InconsistentGroupProtocol);
    let req = h.join_req("", None, range(&["t"]));
    check(&mut h, req, ResponseError::GroupMaxSizeReached);
    let req = h.join_req("", Some("new-static"), range(&["t"]));
    check(&mut h, req, ResponseError::GroupMaxSizeReached);
    let req = h.join_req(&ids[0], Some("not-mine"), range(&["t"]));
    check(&mut h, req, ResponseError::UnknownMemberId);
    // Nothing of that disturbed the group.
    assert_eq!(h.group.state(), ClassicState::Stable);
    assert_eq!(h.group.generation(), 1);
}

#[test]
fn a_full_group_turns_away_the_last_member_to_rejoin() {
    let mut h = Harness::new(cfg(3_000));
    let ids = h.stable_group_of_three();
    h.cfg.max_size = 2;
    let (r0, _) = h.rejoin(&ids[0], None);
    h.rejoin(&ids[1], None);
    let (r2, out) = h.rejoin(&ids[2], None);
    assert_eq!(
        join_answer(&out, r2).error,
        code(ResponseError::GroupMaxSizeReached)
    );
    // With ids[2] gone everyone left has rejoined.
    assert_eq!(join_answer(&out, r0).members.len(), 2);
    assert_eq!(h.member_ids(), ids[..2].to_vec());
}

#[test]
fn followers_rejoining_unchanged_get_the_current_generation() {
    let mut h = Harness::new(cfg(3_000));
    let ids = h.stable_group_of_three();
    let (r, out) = h.rejoin(&ids[1], None);
    let answer = join_answer(&out, r);
    assert_eq!(answer.error, 0);
    assert_eq!(answer.generation_id, 1);
    assert!(answer.members.is_empty());
    assert_eq!(h.group.state(), ClassicState::Stable);
    // A follower with new metadata (a cooperative consumer that revoked
    // partitions) starts the next round.
    let req = h.join_req(&ids[1], None, range(&["t", "u"]));
    let out = h.join(req);
    assert!(joins(&out).is_empty());
    assert_eq!(h.group.state(), ClassicState::PreparingRebalance);
}

#[test]
fn a_lost_join_answer_is_repeated_while_completing() {
    let mut h = Harness::new(cfg(3_000));
    let (ids, _) = completing_group_with_short_rebalance_timeout(&mut h);
    let req = h.join_req(&ids[0], None, range(&["t"]));
    let request = req.request;
    let out = h.join(req);
    let answer = join_answer(&out, request);
    assert_eq!(answer.generation_id, 1);
    assert_eq!(answer.members.len(), 3, "the leader gets the members again");
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
    let (held, _) = h.sync(&ids[1], None, 1, Vec::new());
    // Changed metadata during CompletingRebalance: rebalance, held syncs
    // are told so.
    let req = h.join_req(&ids[2], None, range(&["u"]));
    let out = h.join(req);
    assert_eq!(
        sync_answer(&out, held).error,
        code(ResponseError::RebalanceInProgress)
    );
    assert_eq!(h.group.state(), ClassicState::PreparingRebalance);
}

#[test]
fn initial_rebalance_delay_extends_while_members_arrive() {
    let mut h = Harness::new(cfg(3_000));
    let start = h.now;
    let mut req = h.join_req("", None, range(&["t"]));
    req.version = 3;
    req.rebalance_timeout_ms = 10_000;
    let first = req.request;
    h.join(req);
    assert_eq!(h.group.next_deadline(), Some(start + 3_000));
    assert!(h.advance_to(start + 2_999).is_empty());
    // A member every 2.5s (at 3.999s, 6.499s, 8.999s) keeps extending the
    // delay by 3s, up to the rebalance timeout: deadlines 4s, 7s, 10s,
    // then the limit of 11s (start + rebalance timeout), where it ends
    // because nobody joined since the 10s deadline.
    let mut arrivals = 0;
    let out = loop {
        let mut req = h.join_req("", None, range(&["t"]));
        req.version = 3;
        req.rebalance_timeout_ms = 10_000;
        let out = h.join(req);
        assert!(joins(&out).is_empty(), "never completes early");
        arrivals += 1;
        let out = h.advance(2_500);
        if !out.is_empty() {
            break out;
        }
    };
    assert_eq!(arrivals, 3);
    assert_eq!(h.now, start + 2_999 + 3 * 2_500);
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
    assert_eq!(join_answer(&out, first).members.len(), arrivals + 1);
}

#[test]
fn initial_rebalance_delay_without_newcomers_ends_after_one_delay() {
    let mut h = Harness::new(cfg(3_000));
    let req = h.join_req("", Some("a"), range(&["t"]));
    let request = req.request;
    h.join(req);
    let out = h.advance(3_000);
    assert_eq!(join_answer(&out, request).generation_id, 1);
}

#[test]
fn no_initial_delay_completes_the_first_join_at_once() {
    let mut h = Harness::new(cfg(0));
    let (id, request, out) = h.join_new(range(&["t"]));
    let answer = join_answer(&out, request);
    assert_eq!(answer.error, 0);
    assert_eq!(answer.member_id, id);
    assert_eq!(answer.leader, id);
    assert_eq!(answer.generation_id, 1);
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
}

#[test]
fn protocol_selection_follows_the_votes() {
    let mut h = Harness::new(cfg(3_000));
    for names in [
        &["range", "roundrobin"][..],
        &["roundrobin", "range", "sticky"][..],
        &["roundrobin", "range"][..],
    ] {
        h.join_new(protocols(names));
    }
    let out = h.advance(6_000);
    assert_eq!(h.group.protocol_name(), Some("roundrobin"));
    let leader = joins(&out)
        .into_iter()
        .find(|(_, r)| !r.members.is_empty())
        .unwrap()
        .1;
    assert!(leader
        .members
        .iter()
        .all(|m| m.metadata == "meta-roundrobin"));
}

#[test]
fn protocol_selection_only_among_common_protocols_and_ties_go_to_the_first_member() {
    let mut h = Harness::new(cfg(3_000));
    h.join_new(protocols(&["sticky", "range"]));
    h.join_new(protocols(&["range"]));
    h.advance(6_000);
    assert_eq!(h.group.protocol_name(), Some("range"));

    let mut h = Harness::new(cfg(3_000));
    h.join_new(protocols(&["a", "b"]));
    h.join_new(protocols(&["b", "a"]));
    h.advance(6_000);
    assert_eq!(h.group.protocol_name(), Some("a"));
}

#[test]
fn snapshot_restore_round_trip() {
    let mut h = Harness::new(cfg(3_000));
    let (a, b) = stable_static_group(&mut h);
    let (c, _, _) = h.join_new(range(&["v"]));
    h.rejoin(&a, Some("a"));
    h.rejoin(&b, Some("b"));
    let generation = h.group.generation();
    let assignments = vec![(a.clone(), Bytes::from_static(b"x"))];
    h.sync(&a, Some("a"), generation, assignments);
    assert_eq!(h.group.state(), ClassicState::Stable);
    let snapshot = h.group.snapshot(h.now);
    assert_eq!(snapshot.members.len(), 3);

    let later = h.now + 50_000;
    let restored = ClassicGroup::restore("g".into(), snapshot.clone(), later);
    assert_eq!(restored.snapshot(later + 1), snapshot);
    assert_eq!(restored.state(), ClassicState::Stable);
    assert_eq!(restored.generation(), generation);
    assert_eq!(restored.leader(), Some(a.as_str()));
    assert_eq!(
        restored.next_deadline(),
        Some(later + i64::from(SESSION_MS))
    );
    assert_eq!(restored.subscribed_topics().unwrap().len(), 2);
    let description = restored.members();
    let c_description = description.iter().find(|m| m.member_id == c).unwrap();
    assert_eq!(c_description.metadata, subscription(&["v"]));

    // The restored group carries on: members heartbeat and rejoin.
    let mut h2 = Harness {
        group: restored,
        cfg: cfg(3_000),
        now: later,
        next_request: 10_000,
    };
    assert_eq!(h2.heartbeat(&b, Some("b")), 0);
    let (r, out) = h2.rejoin(&c, None);
    assert!(not_answered(&out, r));
    assert_eq!(h2.group.state(), ClassicState::PreparingRebalance);

    let empty = GroupSnapshot {
        protocol_type: "consumer".into(),
        generation: 7,
        current_state_timestamp: 123,
        ..GroupSnapshot::default()
    };
    let restored = ClassicGroup::restore("g".into(), empty.clone(), later);
    assert_eq!(restored.state(), ClassicState::Empty);
    assert_eq!(restored.snapshot(later), empty);
    assert_eq!(restored.next_deadline(), None);
}

#[test]
fn restore_repairs_an_inconsistent_snapshot() {
    let member = |id: &str, instance: Option<&str>| MemberSnapshot {
        member_id: id.into(),
        group_instance_id: instance.map(str::to_string),
        session_timeout_ms: -5,
        ..MemberSnapshot::default()
    };
    let snapshot = GroupSnapshot {
        protocol_type: String::new(),
        generation: 3,
        protocol: None,
        leader: Some("ghost".into()),
        current_state_timestamp: 0,
        members: vec![
            member("m1", Some("i")),
            member("m1", None),
            member("m2", Some("i")),
            member("m3", None),
        ],
    };
    let group = ClassicGroup::restore("g".into(), snapshot, 5);
    let ids: Vec<String> = group.members().into_iter().map(|m| m.member_id).collect();
    assert_eq!(ids, vec!["m1".to_string(), "m3".to_string()]);
    assert_eq!(group.leader(), Some("m1"));
    assert_eq!(group.protocol_type(), None);
    assert_eq!(group.subscribed_topics(), None);
}

#[test]
fn subscribed_topics_decodes_consumer_metadata() {
    let mut h = Harness::new(cfg(3_000));
    assert_eq!(h.group.subscribed_topics(), None);
    h.join_new(range(&["orders", "payments"]));
    h.join_new(range(&["orders", "refunds"]));
    // Garbage of every kind contributes nothing.
    let garbage: Vec<Bytes> = vec![
        Bytes::new(),
        Bytes::from_static(b"\x00"),
        Bytes::from_static(b"\xff\xff\x00\x00\x00\x01\x00\x01a"),
        Bytes::from_static(b"\x00\x00\xff\xff\xff\xff"),
        Bytes::from_static(b"\x00\x00\x7f\xff\xff\xff\x00\x01a"),
        Bytes::from_static(b"\x00\x00\x00\x00\x00\x01\x00\x05ab"),
        Bytes::from_static(b"\x00\x00\x00\x00\x00\x01\xff\xff"),
        Bytes::from_static(b"\x00\x00\x00\x00\x00\x01\x00\x02\xff\xfe"),
    ];
    // A bare v0 subscription, nothing after the topics.
    h.join_new(vec![(
        "range".to_string(),
        Bytes::from_static(b"\x00\x00\x00\x00\x00\x01\x00\x01z"),
    )]);
    for metadata in garbage {
        h.join_new(vec![("range".to_string(), metadata)]);
    }
    h.advance(6_000);
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
    let topics: Vec<String> = h.group.subscribed_topics().unwrap().into_iter().collect();
    assert_eq!(topics, vec!["orders", "payments", "refunds", "z"]);
}

#[test]
fn subscribed_topics_is_none_for_other_protocol_types() {
    let mut h = Harness::new(cfg(0));
    let mut req = h.join_req("", None, range(&["t"]));
    req.protocol_type = "connect".into();
    req.version = 3;
    h.join(req);
    assert_eq!(h.group.protocol_type(), Some("connect"));
    assert_eq!(h.group.subscribed_topics(), None);
}

#[test]
fn a_repeated_join_supersedes_the_held_one() {
    let mut h = Harness::new(cfg(3_000));
    let ids = h.stable_group_of_three();
    let (first, _) = h.rejoin(&ids[0], None);
    let (second, out) = h.rejoin(&ids[0], None);
    assert_eq!(
        join_answer(&out, first).error,
        code(ResponseError::RebalanceInProgress)
    );
    h.rejoin(&ids[1], None);
    let (_, out) = h.rejoin(&ids[2], None);
    assert_eq!(join_answer(&out, second).error, 0);
    assert!(not_answered(&out, first));
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    enum Op {
        Join {
            client: usize,
            fresh: bool,
            version: i16,
            protocols: u8,
            rebalance_timeout_ms: i32,
        },
        Sync {
            client: usize,
            stale_generation: bool,
        },
        Heartbeat {
            client: usize,
        },
        Commit {
            client: usize,
        },
        Leave {
            clients: Vec<usize>,
            by_instance: bool,
        },
        Advance {
            ms: i64,
        },
        /// Every client syncs, the leaders last: drives groups to Stable.
        SyncAll,
        SnapshotRoundTrip,
    }

    const CLIENTS: usize = 5;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..CLIENTS, any::<bool>(), 0i16..=9, 0u8..4, prop_oneof![Just(0), Just(2_000), Just(30_000)])
                .prop_map(|(client, fresh, version, protocols, rebalance_timeout_ms)| Op::Join {
                    client, fresh, version, protocols, rebalance_timeout_ms
                }),
            3 => (0..CLIENTS, prop::bool::weighted(0.1))
                .prop_map(|(client, stale_generation)| Op::Sync { client, stale_generation }),
            2 => (0..CLIENTS).prop_map(|client| Op::Heartbeat { client }),
            1 => (0..CLIENTS).prop_map(|client| Op::Commit { client }),
            1 => (prop::collection::vec(0..CLIENTS, 0..3), any::<bool>())
                .prop_map(|(clients, by_instance)| Op::Leave { clients, by_instance }),
            3 => prop_oneof![Just(0i64), 1i64..3_000, 3_000i64..40_000]
                .prop_map(|ms| Op::Advance { ms }),
            2 => Just(Op::SyncAll),
            1 => Just(Op::SnapshotRoundTrip),
        ]
    }

    fn protocol_choice(choice: u8) -> Vec<(String, Bytes)> {
        match choice {
            0 => range(&["t"]),
            1 => range(&["t", "u"]),
            2 => protocols(&["roundrobin", "range"]),
            _ => vec![("range".to_string(), Bytes::from_static(b"\x01garbage"))],
        }
    }

    /// What each simulated client believes.
    #[derive(Clone, Debug, Default)]
    struct Client {
        member_id: String,
        generation: i32,
        is_leader: bool,
    }

    fn instance(client: usize) -> Option<String> {
        client
            .is_multiple_of(2)
            .then(|| format!("instance-{client}"))
    }

    fn sync_request(
        h: &Harness,
        clients: &[Client],
        client: usize,
        request: RequestId,
        stale_generation: bool,
    ) -> SyncRequest {
        let c = &clients[client];
        let assignments = if c.is_leader {
            h.member_ids()
                .into_iter()
                .map(|id| (id, Bytes::from_static(b"a")))
                .collect()
        } else {
            Vec::new()
        };
        SyncRequest {
            request,
            member_id: c.member_id.clone(),
            group_instance_id: instance(client),
            generation_id: c.generation - i32::from(stale_generation),
            protocol_type: None,
            protocol_name: None,
            assignments,
        }
    }

    fn run(ops: Vec<Op>, delay_ms: i32, max_size: i32) {
        let cfg = ClassicConfig {
            min_session_timeout_ms: 1_000,
            max_session_timeout_ms: 60_000,
            initial_rebalance_delay_ms: delay_ms,
            max_size,
        };
        let mut h = Harness::new(cfg);
        let mut clients = vec![Client::default(); CLIENTS];
        // Request id -> answered count; request ids are unique.
        let mut outstanding: BTreeMap<RequestId, usize> = BTreeMap::new();
        let mut last_generation = h.group.generation();

        let observe = |out: &[Output],
                       outstanding: &mut BTreeMap<RequestId, usize>,
                       clients: &mut Vec<Client>,
                       owners: &BTreeMap<RequestId, usize>| {
            for o in out {
                if let Output::Join(id, _) | Output::Sync(id, _) = o {
                    let count = outstanding.entry(*id).or_insert(0);
                    *count += 1;
                    assert_eq!(*count, 1, "request {id} answered twice");
                }
                if let Output::Join(id, r) = o {
                    if let Some(&client) = owners.get(id) {
                        let c = &mut clients[client];
                        if r.error == 0 || r.error == code(ResponseError::MemberIdRequired) {
                            c.member_id = r.member_id.clone();
                        }
                        if r.error == 0 {
                            c.generation = r.generation_id;
                            c.is_leader = r.leader == r.member_id;
                        }
                    }
                }
            }
        };
        let mut owners: BTreeMap<RequestId, usize> = BTreeMap::new();

        for op in ops {
            let mut out = Vec::new();
            match op {
                Op::Join {
                    client,
                    fresh,
                    version,
                    protocols,
                    rebalance_timeout_ms,
                } => {
                    let member_id = if fresh {
                        String::new()
                    } else {
                        clients[client].member_id.clone()
                    };
                    let mut req = h.join_req(
                        &member_id,
                        instance(client).as_deref(),
                        protocol_choice(protocols),
                    );
                    req.version = version;
                    req.rebalance_timeout_ms = rebalance_timeout_ms;
                    req.client_id = format!("c{client}");
                    owners.insert(req.request, client);
                    outstanding.insert(req.request, 0);
                    h.group.join(h.now, &h.cfg, req, &mut out);
                }
                Op::Sync {
                    client,
                    stale_generation,
                } => {
                    let request = h.request();
                    outstanding.insert(request, 0);
                    let req = sync_request(&h, &clients, client, request, stale_generation);
                    h.group.sync(h.now, &h.cfg, req, &mut out);
                }
                Op::SyncAll => {
                    let mut order: Vec<usize> = (0..CLIENTS).collect();
                    order.sort_by_key(|&c| clients[c].is_leader);
                    for client in order {
                        let request = h.request();
                        outstanding.insert(request, 0);
                        let req = sync_request(&h, &clients, client, request, false);
                        h.group.sync(h.now, &h.cfg, req, &mut out);
                    }
                }
                Op::Heartbeat { client } => {
                    let c = &clients[client];
                    h.group.heartbeat(
                        h.now,
                        &c.member_id,
                        instance(client).as_deref(),
                        c.generation,
                    );
                }
                Op::Commit { client } => {
                    let c = &clients[client];
                    let _ = h.group.accept_offset_commit(
                        h.now,
                        &c.member_id,
                        instance(client).as_deref(),
                        c.generation,
                    );
                }
                Op::Leave {
                    clients: leaving,
                    by_instance,
                } => {
                    let members: Vec<LeaveMember> = leaving
                        .iter()
                        .map(|&client| LeaveMember {
                            member_id: if by_instance {
                                String::new()
                            } else {
                                clients[client].member_id.clone()
                            },
                            group_instance_id: if by_instance { instance(client) } else { None },
                            reason: None,
                        })
                        .collect();
                    let codes = h.group.leave(h.now, &h.cfg, &members, &mut out);
                    assert_eq!(codes.len(), members.len());
                }
                Op::Advance { ms } => {
                    out = h.advance(ms);
                }
                Op::SnapshotRoundTrip => {
                    let snapshot = h.group.snapshot(h.now);
                    let restored = ClassicGroup::restore("g".into(), snapshot.clone(), h.now);
                    assert_eq!(restored.snapshot(h.now), snapshot);
                }
            }
            observe(&out, &mut outstanding, &mut clients, &owners);

            // Invariants visible from outside (the group checks its own
            // internal ones with debug assertions on every call).
            let generation = h.group.generation();
            assert!(generation >= last_generation, "generation went back");
            last_generation = generation;
            let state = h.group.state();
            assert_eq!(h.group.is_empty(), state == ClassicState::Empty);
            let persisted = out.iter().any(|o| matches!(o, Output::Persist));
            if persisted {
                let snapshot = h.group.snapshot(h.now);
                assert_eq!(snapshot.generation, generation);
            }
            if state == ClassicState::Stable || state == ClassicState::CompletingRebalance {
                assert!(h.group.protocol_name().is_some());
                let leader = h.group.leader().map(str::to_string);
                assert!(leader.is_some_and(|l| h.member_ids().contains(&l)));
            }
            let _ = h.group.subscribed_topics();
        }
        // Every held request is answered, exactly once, by the end.
        let mut out = Vec::new();
        h.group
            .shut_down(code(ResponseError::NotCoordinator), &mut out);
        observe(&out, &mut outstanding, &mut clients, &owners);
        for (request, count) in outstanding {
            assert_eq!(count, 1, "request {request} answered {count} times");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn random_operations_keep_the_invariants(
            ops in prop::collection::vec(op(), 0..80),
            delay_ms in prop_oneof![Just(0), Just(3_000)],
            max_size in prop_oneof![Just(2), Just(100)],
        ) {
            run(ops, delay_ms, max_size);
        }

        #[test]
        fn restore_never_panics(
            generation in any::<i32>(),
            protocol in proptest::option::of("[a-c]{0,2}"),
            leader in proptest::option::of("m[0-3]"),
            members in prop::collection::vec(
                ("m[0-3]", proptest::option::of("i[0-2]"), any::<i32>(), any::<i32>(), prop::collection::vec(any::<u8>(), 0..24)),
                0..6,
            ),
        ) {
            let snapshot = GroupSnapshot {
                protocol_type: "consumer".into(),
                generation,
                protocol,
                leader,
                current_state_timestamp: 0,
                members: members
                    .into_iter()
                    .map(|(member_id, group_instance_id, rebalance_timeout_ms, session_timeout_ms, bytes)| MemberSnapshot {
                        member_id,
                        group_instance_id,
                        client_id: "c".into(),
                        client_host: "h".into(),
                        rebalance_timeout_ms,
                        session_timeout_ms,
                        subscription: Bytes::from(bytes.clone()),
                        assignment: Bytes::from(bytes),
                    })
                    .collect(),
            };
            let mut group = ClassicGroup::restore("g".into(), snapshot, 0);
            let _ = group.subscribed_topics();
            let _ = group.members();
            let mut out = Vec::new();
            let deadline = group.next_deadline().unwrap_or(0);
            group.tick(deadline.saturating_add(1), &cfg(0), &mut out);
            let _ = group.snapshot(0);
        }
    }
}
