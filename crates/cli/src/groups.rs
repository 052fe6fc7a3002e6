//! `runnel groups`: list, describe (with lag), reset offsets, delete.

use std::collections::BTreeMap;

use runnel_client::admin::{Admin, GroupDescription, OffsetSpec};
use runnel_client::TopicPartition;
use serde_json::{json, Value};

use crate::cluster::{admin, all_ok, error_text};
use crate::global::Global;
use crate::output::{print_json, print_rows, Output};

/// `runnel groups` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Lists groups on every broker.
    List {
        /// Only groups in this state (`Empty`, `Stable`, ...); repeat for more.
        #[arg(long = "state")]
        states: Vec<String>,
        /// Only groups of this type (`classic`, `consumer`); repeat for more.
        #[arg(long = "type")]
        types: Vec<String>,
    },
    /// Describes a group: state, type, members, and per partition the committed
    /// offset, the end offset, the lag and the member that owns it.
    Describe {
        /// Group id.
        group: String,
    },
    /// Moves a group's committed offsets. Prints the plan unless `--execute` is
    /// given; the coordinator refuses while the group has members.
    ResetOffsets(ResetArgs),
    /// Deletes empty groups and their committed offsets.
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

/// `runnel groups reset-offsets` arguments.
#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    /// Group id.
    group: String,
    /// `TOPIC` for all of its partitions or `TOPIC:P,P,...`; repeat for more.
    #[arg(long = "topic", required = true, value_name = "TOPIC[:P,...]")]
    topics: Vec<String>,
    #[command(flatten)]
    to: ResetTo,
    /// Commit the new offsets (without it, only the plan is printed).
    #[arg(long)]
    execute: bool,
}

/// Where to move the offsets to; exactly one.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct ResetTo {
    /// The log start offsets.
    #[arg(long = "to-earliest")]
    earliest: bool,
    /// The log end offsets.
    #[arg(long = "to-latest")]
    latest: bool,
    /// This offset (kept within the log's start and end).
    #[arg(long = "to-offset", value_name = "N")]
    offset: Option<i64>,
    /// The first offset at or after this time, ISO 8601
    /// (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00+02:00`; UTC without a zone).
    #[arg(long = "to-datetime", value_name = "ISO8601", value_parser = parse_datetime)]
    datetime: Option<i64>,
    /// The first offset at or after this timestamp, in ms since the epoch.
    #[arg(long = "to-timestamp", value_name = "MS")]
    timestamp: Option<i64>,
    /// The committed offset plus N (N may be negative), kept within the log.
    #[arg(long = "shift-by", value_name = "N", allow_hyphen_values = true)]
    shift_by: Option<i64>,
}

/// Runs one `groups` subcommand.
pub async fn run(global: &Global, command: Command) -> anyhow::Result<()> {
    let admin = admin(global).await?;
    match command {
        Command::List { states, types } => list(global, &admin, &states, &types).await,
        Command::Describe { group } => describe(global, &admin, &group).await,
        Command::ResetOffsets(args) => reset_offsets(global, &admin, args).await,
        Command::Delete { groups } => {
            let ids: Vec<&str> = groups.iter().map(String::as_str).collect();
            let deleted = admin
                .delete_groups(&ids)
                .await
                .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
            let deleted = all_ok("deleting groups", deleted)?;
            let rows = deleted
                .into_keys()
                .map(|g| vec![json!(g), json!("deleted")])
                .collect();
            print_rows(global.output, &["Group", "Status"], rows);
            Ok(())
        }
    }
}

async fn list(
    global: &Global,
    admin: &Admin,
    states: &[String],
    types: &[String],
) -> anyhow::Result<()> {
    let states: Vec<&str> = states.iter().map(String::as_str).collect();
    let types: Vec<&str> = types.iter().map(String::as_str).collect();
    let groups = admin
        .list_groups(&states, &types)
        .await
        .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
    let rows = groups
        .into_iter()
        .map(|g| {
            vec![
                json!(g.group_id),
                json!(g.state),
                json!(g.group_type.as_ref().map(|t| t.name().to_owned())),
                json!(g.protocol_type),
            ]
        })
        .collect();
    print_rows(
        global.output,
        &["Group", "State", "Type", "Protocol type"],
        rows,
    );
    Ok(())
}

/// One partition's line in `groups describe`.
struct PartitionLag {
    tp: TopicPartition,
    committed: Option<i64>,
    end: Option<i64>,
    owner: Option<(String, String, String)>,
}

async fn describe(global: &Global, admin: &Admin, group: &str) -> anyhow::Result<()> {
    let described = admin
        .describe_groups(&[group])
        .await
        .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
    let description = all_ok("describing groups", described)?
        .remove(group)
        .ok_or_else(|| anyhow::anyhow!("the broker did not describe group {group}"))?;
    let committed = admin
        .list_group_offsets(group, None)
        .await
        .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
    let mut owners = BTreeMap::new();
    for m in &description.members {
        for tp in &m.assignment {
            let owner = (
                m.member_id.clone(),
                m.client_id.clone(),
                m.client_host.clone(),
            );
            owners.insert(tp.clone(), owner);
        }
    }
    let mut partitions: Vec<TopicPartition> = committed.keys().cloned().collect();
    partitions.extend(owners.keys().cloned());
    partitions.sort();
    partitions.dedup();
    let ends = admin
        .list_offsets(
            &partitions
                .iter()
                .map(|tp| (tp.clone(), OffsetSpec::Latest))
                .collect(),
        )
        .await
        .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
    let lags: Vec<PartitionLag> = partitions
        .into_iter()
        .map(|tp| PartitionLag {
            committed: committed.get(&tp).copied(),
            end: ends
                .get(&tp)
                .and_then(|r| r.as_ref().ok())
                .map(|o| o.offset),
            owner: owners.get(&tp).cloned(),
            tp,
        })
        .collect();
    print_description(global.output, &description, &lags);
    Ok(())
}

fn print_description(output: Output, group: &GroupDescription, lags: &[PartitionLag]) {
    let headers = [
        "Topic",
        "Partition",
        "Committed offset",
        "End offset",
        "Lag",
        "Member id",
        "Client id",
        "Host",
    ];
    let rows: Vec<Vec<Value>> = lags
        .iter()
        .map(|l| {
            let lag = match (l.committed, l.end) {
                (Some(c), Some(e)) => json!((e - c).max(0)),
                (None, Some(e)) => json!(e),
                _ => Value::Null,
            };
            let (member, client, host) = match &l.owner {
                Some((m, c, h)) => (json!(m), json!(c), json!(h)),
                None => (Value::Null, Value::Null, Value::Null),
            };
            vec![
                json!(l.tp.topic),
                json!(l.tp.partition),
                json!(l.committed),
                json!(l.end),
                lag,
                member,
                client,
                host,
            ]
        })
        .collect();
    match output {
        Output::Json => {
            let keys: Vec<String> = headers.iter().map(|h| crate::output::json_key(h)).collect();
            let partitions: Vec<Value> = rows
                .into_iter()
                .map(|row| Value::Object(keys.iter().cloned().zip(row).collect()))
                .collect();
            let members: Vec<Value> = group
                .members
                .iter()
                .map(|m| {
                    json!({
                        "member_id": m.member_id,
                        "group_instance_id": m.group_instance_id,
                        "client_id": m.client_id,
                        "host": m.client_host,
                        "assignment": m.assignment.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    })
                })
                .collect();
            print_json(&json!({
                "group": group.group_id,
                "state": group.state,
                "type": group.group_type.name(),
                "protocol_type": group.protocol_type,
                "assignor": group.assignor,
                "coordinator": group.coordinator,
                "members": members,
                "partitions": partitions,
            }));
        }
        Output::Table => {
            println!(
                "Group: {}  State: {}  Type: {}  Protocol: {}  Assignor: {}  Coordinator: {}  Members: {}",
                group.group_id,
                group.state,
                group.group_type.name(),
                if group.protocol_type.is_empty() { "-" } else { &group.protocol_type },
                if group.assignor.is_empty() { "-" } else { &group.assignor },
                group.coordinator,
                group.members.len(),
            );
            print_rows(Output::Table, &headers, rows);
        }
    }
}

/// How `reset-offsets` picks each partition's new offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
    ShiftBy(i64),
}

impl ResetTo {
    fn strategy(&self) -> anyhow::Result<Strategy> {
        Ok(if self.earliest {
            Strategy::Earliest
        } else if self.latest {
            Strategy::Latest
        } else if let Some(n) = self.offset {
            Strategy::Offset(n)
        } else if let Some(ms) = self.datetime.or(self.timestamp) {
            Strategy::Timestamp(ms)
        } else if let Some(n) = self.shift_by {
            Strategy::ShiftBy(n)
        } else {
            anyhow::bail!("give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --to-timestamp, --shift-by")
        })
    }
}

async fn reset_offsets(global: &Global, admin: &Admin, args: ResetArgs) -> anyhow::Result<()> {
    let strategy = args.to.strategy()?;
    let partitions = resolve_partitions(admin, &args.topics).await?;
    let current = admin
        .list_group_offsets(&args.group, Some(&partitions))
        .await
        .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
    let lookup = |spec: OffsetSpec| {
        let asked: BTreeMap<TopicPartition, OffsetSpec> =
            partitions.iter().map(|tp| (tp.clone(), spec)).collect();
        async move {
            let answers = admin
                .list_offsets(&asked)
                .await
                .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
            let answers = all_ok("listing offsets", answers)?;
            anyhow::Ok(
                answers
                    .into_iter()
                    .map(|(tp, o)| (tp, o.offset))
                    .collect::<BTreeMap<_, _>>(),
            )
        }
    };
    let earliest = lookup(OffsetSpec::Earliest).await?;
    let latest = lookup(OffsetSpec::Latest).await?;
    let by_time = match strategy {
        Strategy::Timestamp(ms) => Some(lookup(OffsetSpec::Timestamp(ms)).await?),
        _ => None,
    };
    let mut plan = BTreeMap::new();
    for tp in &partitions {
        let (Some(&low), Some(&high)) = (earliest.get(tp), latest.get(tp)) else {
            anyhow::bail!("the broker did not list the offsets of {tp}");
        };
        let target = match strategy {
            Strategy::Earliest => low,
            Strategy::Latest => high,
            Strategy::Offset(n) => n.clamp(low, high),
            Strategy::Timestamp(_) => match by_time.as_ref().and_then(|m| m.get(tp)) {
                Some(&o) if o >= 0 => o,
                _ => high,
            },
            Strategy::ShiftBy(n) => {
                let Some(&at) = current.get(tp) else {
                    anyhow::bail!(
                        "cannot shift {tp}: group {} has no committed offset for it",
                        args.group
                    );
                };
                at.saturating_add(n).clamp(low, high)
            }
        };
        plan.insert(tp.clone(), target);
    }
    if args.execute {
        let results = admin
            .alter_group_offsets(&args.group, &plan)
            .await
            .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
        let what = format!("resetting the offsets of group {}", args.group);
        if let Err(e) = all_ok(&what, results) {
            return Err(explain_refusal(admin, &args.group, e).await);
        }
    } else {
        eprintln!("Dry run: nothing committed. Pass --execute to apply this plan.");
    }
    let rows = plan
        .iter()
        .map(|(tp, new)| {
            vec![
                json!(args.group),
                json!(tp.topic),
                json!(tp.partition),
                json!(current.get(tp)),
                json!(new),
            ]
        })
        .collect();
    print_rows(
        global.output,
        &[
            "Group",
            "Topic",
            "Partition",
            "Current offset",
            "New offset",
        ],
        rows,
    );
    Ok(())
}

/// Adds what the group is doing to a refused reset: the coordinator only accepts
/// an admin's commit while the group has no members.
async fn explain_refusal(admin: &Admin, group: &str, error: anyhow::Error) -> anyhow::Error {
    match admin.describe_groups(&[group]).await {
        Ok(mut described) => match described.remove(group) {
            Some(Ok(g)) if !g.members.is_empty() => error.context(format!(
                "group {group} is {} with {} member(s): stop its consumers before resetting its offsets",
                g.state,
                g.members.len()
            )),
            _ => error,
        },
        Err(_) => error,
    }
}

/// `TOPIC` (every partition, from the metadata) or `TOPIC:P,P,...`.
async fn resolve_partitions(
    admin: &Admin,
    specs: &[String],
) -> anyhow::Result<Vec<TopicPartition>> {
    let mut partitions = Vec::new();
    for spec in specs {
        match spec.split_once(':') {
            Some((topic, list)) => {
                for p in list.split(',').filter(|p| !p.trim().is_empty()) {
                    let p: i32 = p
                        .trim()
                        .parse()
                        .map_err(|_| anyhow::anyhow!("bad partition {p:?} in --topic {spec}"))?;
                    partitions.push(TopicPartition::new(topic, p));
                }
            }
            None => {
                let described = admin
                    .describe_topics(&[spec.as_str()])
                    .await
                    .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
                for (_, topic) in all_ok("describing topics", described)? {
                    partitions.extend(
                        topic
                            .partitions
                            .iter()
                            .map(|p| TopicPartition::new(&topic.name, p.partition)),
                    );
                }
            }
        }
    }
    partitions.sort();
    partitions.dedup();
    Ok(partitions)
}

/// ISO 8601 date-time to ms since the epoch: `YYYY-MM-DDTHH:MM[:SS[.fff]]` with `Z`,
/// `±HH:MM` or `±HHMM`, or no zone for UTC.
fn parse_datetime(s: &str) -> Result<i64, String> {
    let bad = || format!("expected an ISO 8601 date-time like 2024-05-01T12:00:00Z, got {s:?}");
    let (date, time) = s.split_once(['T', ' ']).ok_or_else(bad)?;
    let mut ymd = date.splitn(3, '-').map(|n| n.parse::<i64>().ok());
    let (Some(Some(year)), Some(Some(month)), Some(Some(day))) =
        (ymd.next(), ymd.next(), ymd.next())
    else {
        return Err(bad());
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let (clock, offset_minutes) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (clock, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 {
            return Err(bad());
        }
        let hours: i64 = digits[..2].parse().map_err(|_| bad())?;
        let minutes: i64 = digits[2..].parse().map_err(|_| bad())?;
        (clock, sign * (hours * 60 + minutes))
    } else {
        (time, 0)
    };
    let mut parts = clock.split(':');
    let hour: i64 = parts.next().and_then(|h| h.parse().ok()).ok_or_else(bad)?;
    let minute: i64 = parts.next().and_then(|m| m.parse().ok()).ok_or_else(bad)?;
    let (second, millis) = match parts.next() {
        None => (0, 0),
        Some(sec) => {
            let (whole, fraction) = sec.split_once('.').unwrap_or((sec, ""));
            let whole: i64 = whole.parse().map_err(|_| bad())?;
            let fraction: String = fraction.chars().chain("000".chars()).take(3).collect();
            (whole, fraction.parse::<i64>().map_err(|_| bad())?)
        }
    };
    if parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1_000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_datetimes_parse_to_epoch_millis() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_datetime("2024-05-01T12:00:00Z"),
            Ok(1_714_564_800_000)
        );
        assert_eq!(
            parse_datetime("2024-05-01T14:00:00+02:00"),
            Ok(1_714_564_800_000)
        );
        assert_eq!(
            parse_datetime("2024-05-01T07:30:00.250-0430"),
            Ok(1_714_564_800_250)
        );
        assert_eq!(parse_datetime("2024-05-01T12:00"), Ok(1_714_564_800_000));
        assert_eq!(parse_datetime("2000-03-01T00:00:00Z"), Ok(951_868_800_000));
        assert!(parse_datetime("yesterday").is_err());
        assert!(parse_datetime("2024-13-01T00:00:00Z").is_err());
        assert!(parse_datetime("2024-05-01T25:00:00Z").is_err());
    }
}
