//! The import: the organisation (users, teams, escalation policies, services, priorities),
//! then incidents and log entries window by window from `--since` (or from where the last
//! import stopped, less an overlap that catches entries PagerDuty lists late). Each window
//! commits its rows together with its progress, so a kill -9 loses nothing and a restart
//! repeats nothing: log entries are deduplicated by PagerDuty's id and get ids above every
//! id in the replica, so `mttx etl run` follows them as usual. With `follow`, it polls.

use std::collections::{BTreeSet, HashMap};
use std::io::IsTerminal;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::SecretString;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, rfc3339};
use crate::map::{self, Problem, Reference};
use crate::store::{Param, Store, Tx};
use crate::{Error, Result};

/// The one account an import fills.
const ACCOUNT: i64 = 1;

/// How an import runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// PagerDuty's API (`https://api.pagerduty.com`), or a local server in tests.
    pub api_url: String,
    pub token: SecretString,
    /// Where the first import starts (later ones go on from their progress).
    pub since: DateTime<Utc>,
    /// Keep polling for new entries after catching up.
    pub follow: bool,
    /// Pause between polls when following.
    pub poll: Duration,
    /// The longest window asked for at once.
    pub window: chrono::Duration,
    /// How far back each import (and each poll) looks again for entries listed late.
    pub overlap: chrono::Duration,
    /// The account's name in the replica.
    pub account_name: String,
    /// Cancelled to stop after the current window.
    pub shutdown: CancellationToken,
}

impl Options {
    /// The defaults for `token`, from `since`: 30-day windows, a 15-minute overlap, polls
    /// every 30 s.
    pub fn new(api_url: &str, token: SecretString, since: DateTime<Utc>) -> Self {
        Self {
            api_url: api_url.to_owned(),
            token,
            since,
            follow: false,
            poll: Duration::from_secs(30),
            window: chrono::Duration::days(30),
            overlap: chrono::Duration::minutes(15),
            account_name: "PagerDuty".into(),
            shutdown: CancellationToken::new(),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub users: u64,
    pub teams: u64,
    pub escalation_policies: u64,
    pub services: u64,
    /// Incidents written (new or updated).
    pub incidents: u64,
    /// Log entries new to the replica.
    pub entries: u64,
    /// Log entries listed again that the replica already had.
    pub entries_known: u64,
    /// Objects quarantined (`import_quarantine`).
    pub quarantined: u64,
    /// Requests sent, and how many were rate limited.
    pub calls: u64,
    pub throttled: u64,
    /// Up to when the log is imported.
    pub until: Option<DateTime<Utc>>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "organisation: {} users, {} teams, {} escalation policies, {} services",
            self.users, self.teams, self.escalation_policies, self.services
        )?;
        writeln!(
            f,
            "{} incidents written, {} new log entries ({} already imported), {} quarantined",
            self.incidents, self.entries, self.entries_known, self.quarantined
        )?;
        write!(
            f,
            "{} API requests ({} rate limited); log imported up to {}",
            self.calls,
            self.throttled,
            self.until.map_or("-".into(), rfc3339)
        )
    }
}

fn raw(v: &Value) -> Option<String> {
    Some(v.to_string())
}

/// Writes `problem` about `v` to the quarantine.
async fn quarantine(tx: &mut Tx, kind: &str, v: &Value, problem: &Problem) -> Result<()> {
    let external = map::id(v).unwrap_or_else(|_| format!("(no id) {}", short(v)));
    tx.quarantine(kind, &external, problem.reason, &problem.detail, raw(v))
        .await
}

fn short(v: &Value) -> String {
    v.to_string().chars().take(80).collect()
}

/// The contract id of the policy `r`, made from the reference if it is not imported (a
/// policy deleted since, say).
async fn policy_id(tx: &mut Tx, r: &Reference) -> Result<i64> {
    let (id, new) = tx
        .id_for("escalation_policy", "escalation_policies", &r.id)
        .await?;
    if new {
        tx.exec(
            "INSERT INTO escalation_policies (id, account_id, team_id, name) VALUES ($1, $2, NULL, $3)",
            &[id.into(), ACCOUNT.into(), r.summary.clone().unwrap_or_else(|| r.id.clone()).into()],
        )
        .await?;
    }
    Ok(id)
}

/// The contract id of the service `r` (made from the reference, on `policy`, if unknown).
async fn service_id(tx: &mut Tx, r: &Reference, policy: i64) -> Result<i64> {
    let (id, new) = tx.id_for("service", "services", &r.id).await?;
    if new {
        tx.exec(
            "INSERT INTO services (id, account_id, team_id, escalation_policy_id, name) VALUES ($1, $2, NULL, $3, $4)",
            &[
                id.into(),
                ACCOUNT.into(),
                policy.into(),
                r.summary.clone().unwrap_or_else(|| r.id.clone()).into(),
            ],
        )
        .await?;
    }
    Ok(id)
}

/// The contract id of the user `r` (made from the reference, in UTC, if unknown: a user
/// deleted since still has a name in the log). A person named in a summary is the user of
/// that name.
async fn user_id(tx: &mut Tx, r: &Reference) -> Result<i64> {
    if let Some(name) = r.id.strip_prefix(Reference::BY_NAME)
        && let Some(id) = tx
            .int(
                "SELECT MIN(id) FROM users WHERE account_id = $1 AND name = $2",
                &[ACCOUNT.into(), name.into()],
            )
            .await?
    {
        return Ok(id);
    }
    let (id, new) = tx.id_for("user", "users", &r.id).await?;
    if new {
        tx.exec(
            "INSERT INTO users (id, account_id, name, email, time_zone) VALUES ($1, $2, $3, '', 'UTC')",
            &[id.into(), ACCOUNT.into(), r.summary.clone().unwrap_or_else(|| r.id.clone()).into()],
        )
        .await?;
    }
    Ok(id)
}

async fn team_id(tx: &mut Tx, external: &str) -> Result<Option<i64>> {
    tx.id_of("team", external).await
}

/// The organisation, in one transaction: account, teams, users and their teams, policies,
/// services. Returns each priority's name by id.
async fn organisation(
    client: &Client,
    store: &Store,
    opts: &Options,
    s: &mut Summary,
) -> Result<()> {
    let teams = client.list("teams", "teams", &[]).await?;
    let users = client.list("users", "users", &[]).await?;
    let policies = client
        .list("escalation_policies", "escalation_policies", &[])
        .await?;
    let services = client.list("services", "services", &[]).await?;
    // Accounts without priorities answer 404 (or 403 where the plan has none).
    let priorities = match client.list("priorities", "priorities", &[]).await {
        Ok(p) => p,
        Err(Error::NotFound(_) | Error::Unauthorized { status: 403 }) => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut tx = store.begin().await?;
    // Their names by id, for incidents whose priority reference carries none.
    for p in &priorities {
        if let (Ok(id), Some(name)) = (map::id(p), p.get("name").and_then(Value::as_str)) {
            tx.set_progress(&format!("priority:{id}"), name).await?;
        }
    }
    // The account's time zone: its people's most common one.
    let mut zones: HashMap<String, usize> = HashMap::new();
    for u in users.iter().filter_map(|u| map::user(u).ok()) {
        *zones.entry(u.time_zone).or_default() += 1;
    }
    let tz = zones
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map_or_else(|| "UTC".to_owned(), |(tz, _)| tz);
    tx.exec(
        "INSERT INTO accounts (id, name, time_zone) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, time_zone = excluded.time_zone",
        &[ACCOUNT.into(), opts.account_name.as_str().into(), tz.into()],
    )
    .await?;
    for v in &teams {
        match map::team(v) {
            Ok(t) => {
                let (id, _) = tx.id_for("team", "teams", &t.id).await?;
                tx.exec(
                    "INSERT INTO teams (id, account_id, name) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name",
                    &[id.into(), ACCOUNT.into(), t.name.into()],
                )
                .await?;
                s.teams += 1;
            }
            Err(p) => {
                quarantine(&mut tx, "team", v, &p).await?;
                s.quarantined += 1;
            }
        }
    }
    for v in &users {
        match map::user(v) {
            Ok(u) => {
                let (id, _) = tx.id_for("user", "users", &u.id).await?;
                tx.exec(
                    "INSERT INTO users (id, account_id, name, email, time_zone) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email, \
                     time_zone = excluded.time_zone",
                    &[id.into(), ACCOUNT.into(), u.name.into(), u.email.into(), u.time_zone.into()],
                )
                .await?;
                for t in &u.teams {
                    if let Some(team) = team_id(&mut tx, t).await? {
                        tx.exec(
                            "INSERT INTO team_members (account_id, team_id, user_id) VALUES ($1, $2, $3) \
                             ON CONFLICT (team_id, user_id) DO NOTHING",
                            &[ACCOUNT.into(), team.into(), id.into()],
                        )
                        .await?;
                    }
                }
                s.users += 1;
            }
            Err(p) => {
                quarantine(&mut tx, "user", v, &p).await?;
                s.quarantined += 1;
            }
        }
    }
    for v in &policies {
        match map::policy(v) {
            Ok(p) => {
                let (id, _) = tx
                    .id_for("escalation_policy", "escalation_policies", &p.id)
                    .await?;
                let team = match &p.team {
                    Some(t) => team_id(&mut tx, t).await?,
                    None => None,
                };
                tx.exec(
                    "INSERT INTO escalation_policies (id, account_id, team_id, name) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET team_id = excluded.team_id, name = excluded.name",
                    &[id.into(), ACCOUNT.into(), team.into(), p.name.into()],
                )
                .await?;
                s.escalation_policies += 1;
            }
            Err(p) => {
                quarantine(&mut tx, "escalation_policy", v, &p).await?;
                s.quarantined += 1;
            }
        }
    }
    for v in &services {
        match map::service(v) {
            Ok(svc) => {
                let policy = policy_id(&mut tx, &svc.policy).await?;
                let (id, _) = tx.id_for("service", "services", &svc.id).await?;
                let team = match &svc.team {
                    Some(t) => team_id(&mut tx, t).await?,
                    None => None,
                };
                tx.exec(
                    "INSERT INTO services (id, account_id, team_id, escalation_policy_id, name) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET team_id = excluded.team_id, \
                     escalation_policy_id = excluded.escalation_policy_id, name = excluded.name",
                    &[id.into(), ACCOUNT.into(), team.into(), policy.into(), svc.name.into()],
                )
                .await?;
                s.services += 1;
            }
            Err(p) => {
                quarantine(&mut tx, "service", v, &p).await?;
                s.quarantined += 1;
            }
        }
    }
    tx.commit().await
}

/// Writes one incident (new, or its current state over the old); false if quarantined.
async fn write_incident(tx: &mut Tx, v: &Value, s: &mut Summary) -> Result<bool> {
    // A priority reference without its name: the name /priorities gave.
    let named;
    let v = match v["priority"]["id"].as_str() {
        Some(pid)
            if v["priority"].get("summary").is_none() && v["priority"].get("name").is_none() =>
        {
            match tx.progress(&format!("priority:{pid}")).await? {
                Some(name) => {
                    let mut with = v.clone();
                    with["priority"]["summary"] = Value::String(name);
                    named = with;
                    &named
                }
                None => v,
            }
        }
        _ => v,
    };
    let i = match map::incident(v) {
        Ok(i) => i,
        Err(p) => {
            quarantine(tx, "incident", v, &p).await?;
            s.quarantined += 1;
            return Ok(false);
        }
    };
    if let Some(other) = &i.other_priority {
        tx.quarantine(
            "incident",
            &i.id,
            "priority_not_in_contract",
            &format!("priority `{other}` is not P1–P5: imported without a priority"),
            raw(v),
        )
        .await?;
        s.quarantined += 1;
    }
    let policy = policy_id(tx, &i.policy).await?;
    let service = service_id(tx, &i.service, policy).await?;
    let (id, _) = tx.id_for("incident", "incidents", &i.id).await?;
    tx.exec(
        "INSERT INTO incidents (id, account_id, incident_number, service_id, escalation_policy_id, \
           title, urgency, priority, status, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, {ts $10}) \
         ON CONFLICT (id) DO UPDATE SET service_id = excluded.service_id, \
           escalation_policy_id = excluded.escalation_policy_id, title = excluded.title, \
           urgency = excluded.urgency, priority = excluded.priority, status = excluded.status",
        &[
            id.into(),
            ACCOUNT.into(),
            i.number.into(),
            service.into(),
            policy.into(),
            i.title.into(),
            i.urgency.into(),
            i.priority.into(),
            i.status.into(),
            replica_ts(i.created_at).into(),
        ],
    )
    .await?;
    s.incidents += 1;
    Ok(true)
}

/// A time as the replica keeps it (SQLite compares the text: six fractional digits).
fn replica_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Entry types whose arrival may change an incident's current state.
const STATE_CHANGES: [&str; 8] = [
    "acknowledge",
    "unacknowledge",
    "resolve",
    "escalate",
    "delegate",
    "urgency_change",
    "priority_change",
    "reassign",
];

/// One window of log entries: the incidents they need first (fetched where the replica
/// does not have them), then the new entries in time order, with the progress. Returns the
/// incidents whose state may have changed since they were written: those with a
/// state-changing entry made after `written_before` (when the rows were read).
async fn entries_window(
    client: &Client,
    store: &Store,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    written_before: DateTime<Utc>,
    s: &mut Summary,
) -> Result<BTreeSet<String>> {
    let query = [
        ("include[]", "channels".to_owned()),
        ("is_overview", "false".to_owned()),
        ("time_zone", "UTC".to_owned()),
    ];
    let listed = client
        .list_window("log_entries", "log_entries", &query, from, to)
        .await?;
    // Read first, outside the write: which incidents the replica lacks.
    let mut read = store.begin().await?;
    let mut missing = BTreeSet::new();
    for v in &listed {
        if let Some(incident) = v.get("incident").and_then(map::reference)
            && read.id_of("incident", &incident.id).await?.is_none()
        {
            missing.insert(incident.id);
        }
    }
    read.commit().await?;
    let mut fetched = Vec::new();
    for id in &missing {
        match client.get(&format!("incidents/{id}"), &[]).await {
            Ok(body) => fetched.push((id.clone(), Some(body["incident"].clone()))),
            Err(Error::NotFound(_)) => fetched.push((id.clone(), None)),
            Err(e) => return Err(e),
        }
    }
    let mut entries: Vec<(map::Entry, &Value)> = Vec::new();
    let mut tx = store.begin().await?;
    let mut gone = BTreeSet::new();
    for (id, incident) in &fetched {
        let written = match incident {
            Some(v) if v.is_object() => write_incident(&mut tx, v, s).await?,
            _ => false,
        };
        if !written {
            gone.insert(id.clone());
        }
    }
    for v in &listed {
        match map::entry(v) {
            Ok(e) => entries.push((e, v)),
            Err(p) => {
                quarantine(&mut tx, "log_entry", v, &p).await?;
                s.quarantined += 1;
            }
        }
    }
    entries.sort_by(|a, b| (a.0.created_at, &a.0.id).cmp(&(b.0.created_at, &b.0.id)));
    let mut touched = BTreeSet::new();
    for (e, v) in entries {
        if tx.id_of("log_entry", &e.id).await?.is_some() {
            s.entries_known += 1;
            continue;
        }
        let Some(incident) = tx.id_of("incident", &e.incident).await? else {
            let problem = Problem {
                reason: "unknown_incident",
                detail: format!(
                    "incident {} cannot be read from PagerDuty{}",
                    e.incident,
                    if gone.contains(&e.incident) {
                        " (or is not importable)"
                    } else {
                        ""
                    }
                ),
            };
            quarantine(&mut tx, "log_entry", v, &problem).await?;
            s.quarantined += 1;
            continue;
        };
        if STATE_CHANGES.contains(&e.entry_type.as_str()) && e.created_at >= written_before {
            touched.insert(e.incident.clone());
        }
        write_entry(&mut tx, &e, incident).await?;
        s.entries += 1;
    }
    tx.set_progress("log_entries_until", &rfc3339(to)).await?;
    tx.commit().await?;
    Ok(touched)
}

async fn write_entry(tx: &mut Tx, e: &map::Entry, incident: i64) -> Result<()> {
    let (agent_type, agent_id) = match &e.agent {
        Some(a) => {
            let kind = a.kind.clone();
            let id = match (a.kind.as_deref(), &a.id) {
                (Some("user"), Some(id)) => Some(
                    user_id(
                        tx,
                        &Reference {
                            id: id.clone(),
                            summary: a.summary.clone(),
                        },
                    )
                    .await?,
                ),
                (Some("service"), Some(id)) => tx.id_of("service", id).await?,
                (None, Some(id)) => tx.id_of("user", id).await?,
                _ => None,
            };
            (kind, id)
        }
        None => (None, None),
    };
    let user = match &e.user {
        Some(u) => Some(user_id(tx, u).await?),
        None => None,
    };
    let assignees = match &e.assignees {
        Some(list) => {
            let mut ids = Vec::with_capacity(list.len());
            for r in list {
                ids.push(user_id(tx, r).await?);
            }
            Some(ids)
        }
        None => None,
    };
    let policy = match &e.policy {
        Some(p) => Some(policy_id(tx, p).await?),
        // The policy at trigger, where the trigger does not name it: the incident's.
        None if e.entry_type == "trigger" => {
            tx.int(
                "SELECT escalation_policy_id FROM incidents WHERE id = $1",
                &[incident.into()],
            )
            .await?
        }
        None => None,
    };
    let (id, _) = tx
        .id_for("log_entry", "incident_log_entries", &e.id)
        .await?;
    let postgres = tx.postgres();
    let array = assignees.map(|ids| {
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        if postgres {
            format!("{{{}}}", list.join(","))
        } else {
            format!("[{}]", list.join(","))
        }
    });
    tx.exec(
        "INSERT INTO incident_log_entries (id, account_id, incident_id, type, created_at, agent_type, \
           agent_id, channel, user_id, assignee_ids, escalation_policy_id, details) \
         VALUES ($1, $2, $3, $4, {ts $5}, $6, $7, $8, $9, {arr $10}, $11, {json $12})",
        &[
            id.into(),
            ACCOUNT.into(),
            incident.into(),
            e.entry_type.as_str().into(),
            replica_ts(e.created_at).into(),
            agent_type.into(),
            agent_id.into(),
            e.channel.clone().into(),
            user.into(),
            Param::Text(array),
            policy.into(),
            e.details.clone().into(),
        ],
    )
    .await
    .map(drop)
}

/// One window of incidents (created in it), with the progress.
async fn incidents_window(
    client: &Client,
    store: &Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    s: &mut Summary,
) -> Result<()> {
    let query = [("time_zone", "UTC".to_owned())];
    let listed = client
        .list_window("incidents", "incidents", &query, from, to)
        .await?;
    let mut tx = store.begin().await?;
    for v in &listed {
        write_incident(&mut tx, v, s).await?;
    }
    tx.set_progress("incidents_until", &rfc3339(to)).await?;
    tx.commit().await
}

/// Incidents whose state may have changed since they were written: read again.
async fn refresh(
    client: &Client,
    store: &Store,
    ids: &BTreeSet<String>,
    s: &mut Summary,
) -> Result<()> {
    let mut fresh = Vec::new();
    for id in ids {
        match client.get(&format!("incidents/{id}"), &[]).await {
            Ok(body) => fresh.push(body["incident"].clone()),
            Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let mut tx = store.begin().await?;
    for v in &fresh {
        write_incident(&mut tx, v, s).await?;
    }
    tx.commit().await
}

async fn since_of(store: &Store, name: &str, opts: &Options) -> Result<DateTime<Utc>> {
    match store.progress(name).await? {
        Some(t) => DateTime::parse_from_rfc3339(&t)
            .map(|t| t.with_timezone(&Utc) - opts.overlap)
            .map_err(|_| Error::Progress(t)),
        None => Ok(opts.since),
    }
}

fn bar(from: DateTime<Utc>, to: DateTime<Utc>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new((to - from).num_hours().max(1) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bar:40} {pos}/{len} hours of history [{elapsed_precise}, ETA {eta}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// Imports the account into the replica at `replica` (see the module doc); `on_round`
/// hears after each catch-up (once, or every poll with `follow`).
#[tracing::instrument(skip_all, fields(%replica, follow = opts.follow), err)]
pub async fn import(
    opts: &Options,
    replica: &mttx_migrations::Location,
    mut on_round: impl FnMut(&Summary),
) -> Result<Summary> {
    let client = Client::new(&opts.api_url, opts.token.clone())?;
    let store = Store::open(replica).await?;
    let mut s = Summary::default();
    let mut rounds = 0u64;
    loop {
        // The organisation changes seldom: at the start and every 100 polls.
        if rounds.is_multiple_of(100) {
            organisation(&client, &store, opts, &mut s).await?;
        }
        let now = Utc::now();
        // Incident rows written before this round show their state as of then: entries
        // made since may have changed it.
        let written_before = match store.progress("log_entries_until").await? {
            Some(t) => DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&Utc) - opts.overlap)
                .map_err(|_| Error::Progress(t))?,
            None => now - opts.overlap,
        };
        let start = since_of(&store, "log_entries_until", opts)
            .await?
            .min(since_of(&store, "incidents_until", opts).await?);
        let bar = if rounds == 0 { bar(start, now) } else { None };
        let mut touched = BTreeSet::new();
        let mut from = start;
        while from < now {
            if opts.shutdown.is_cancelled() {
                break;
            }
            let to = (from + opts.window).min(now);
            incidents_window(&client, &store, from, to, &mut s).await?;
            touched
                .extend(entries_window(&client, &store, (from, to), written_before, &mut s).await?);
            s.until = Some(to);
            if let Some(bar) = &bar {
                bar.set_position((to - start).num_hours().max(0) as u64);
            } else if rounds == 0 {
                tracing::info!(until = %rfc3339(to), entries = s.entries, incidents = s.incidents, "import progress");
            }
            from = to;
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        refresh(&client, &store, &touched, &mut s).await?;
        (s.calls, s.throttled) = client.calls();
        on_round(&s);
        rounds += 1;
        if !opts.follow || opts.shutdown.is_cancelled() {
            return Ok(s);
        }
        tokio::select! {
            _ = tokio::time::sleep(opts.poll) => {}
            _ = opts.shutdown.cancelled() => return Ok(s),
        }
    }
}
