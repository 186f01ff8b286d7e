//! The import: the organisation (users, teams, escalation policies, services, priorities),
//! then incidents and log entries window by window from `--since` (or from where the last
//! import stopped, less an overlap that catches entries PagerDuty lists late). Each window
//! commits its rows together with its progress, so a kill -9 loses nothing and a restart
//! repeats nothing: log entries are deduplicated by PagerDuty's id and get ids above every
//! id in the replica, so `mttx etl run` follows them as usual. With `follow`, it polls.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::SecretString;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, rfc3339};
use crate::entries::entries_window;
use crate::map::{self, Problem};
use crate::org::{organisation, policy_id, service_id};
use crate::store::{Store, Tx};
use crate::{Error, Result};

/// The one account an import fills.
pub(crate) const ACCOUNT: i64 = 1;

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
    /// Cancelled to stop after the current window, or at once while a request waits to be
    /// tried again (that window is imported again next time).
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
    /// Stopped on request before catching up: the next import goes on from `until`.
    pub stopped: bool,
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
        )?;
        if self.stopped {
            write!(
                f,
                "\nstopped on request before catching up: the next import goes on from there"
            )?;
        }
        Ok(())
    }
}

pub(crate) fn raw(v: &Value) -> Option<String> {
    Some(v.to_string())
}

/// Writes `problem` about `v` to the quarantine.
pub(crate) async fn quarantine(
    tx: &mut Tx,
    kind: &str,
    v: &Value,
    problem: &Problem,
) -> Result<()> {
    let external = map::id(v).unwrap_or_else(|_| format!("(no id) {}", short(v)));
    tx.quarantine(kind, &external, problem.reason, &problem.detail, raw(v))
        .await
}

fn short(v: &Value) -> String {
    v.to_string().chars().take(80).collect()
}

/// Writes one incident (new, or its current state over the old); false if quarantined.
pub(crate) async fn write_incident(tx: &mut Tx, v: &Value, s: &mut Summary) -> Result<bool> {
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
pub(crate) fn replica_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
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

/// Up to when `name` (incidents or log entries) is imported, if it has been.
async fn imported_until(store: &Store, name: &str) -> Result<Option<DateTime<Utc>>> {
    store
        .progress(name)
        .await?
        .map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| Error::Progress(t))
        })
        .transpose()
}

fn bar(from: DateTime<Utc>, to: DateTime<Utc>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    // Cleared when dropped too: a stop while a request waits returns at once.
    let bar = ProgressBar::new((to - from).num_hours().max(1) as u64)
        .with_finish(indicatif::ProgressFinish::AndClear);
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
    let client = Client::new(&opts.api_url, opts.token.clone())?.stopping_on(opts.shutdown.clone());
    let store = Store::open(replica).await?;
    let mut s = Summary::default();
    match rounds(opts, &client, &store, &mut s, &mut on_round).await {
        Ok(()) => {}
        Err(Error::Stopped { path }) => {
            tracing::info!("stopped while waiting to ask {path} again");
            s.stopped = true;
        }
        Err(e) => return Err(e),
    }
    (s.calls, s.throttled) = client.calls();
    Ok(s)
}

/// The rounds of [`import`]: one, or one per poll with `follow`, until a stop.
async fn rounds(
    opts: &Options,
    client: &Client,
    store: &Store,
    s: &mut Summary,
    on_round: &mut impl FnMut(&Summary),
) -> Result<()> {
    let mut rounds = 0u64;
    loop {
        // The organisation changes seldom: at the start and every 100 polls.
        if rounds.is_multiple_of(100) {
            organisation(client, store, opts, s).await?;
        }
        let now = Utc::now();
        // Incident rows written before this round show their state as of then: entries
        // made since may have changed it.
        let logged = imported_until(store, "log_entries_until").await?;
        let listed = imported_until(store, "incidents_until").await?;
        let written_before = logged.unwrap_or(now) - opts.overlap;
        // From where the last round stopped, less the overlap (or from `since`).
        let resume = |until: Option<DateTime<Utc>>| until.map_or(opts.since, |t| t - opts.overlap);
        let start = resume(logged).min(resume(listed));
        let bar = if rounds == 0 { bar(start, now) } else { None };
        let mut touched = BTreeSet::new();
        let mut from = start;
        while from < now {
            if opts.shutdown.is_cancelled() {
                s.stopped = true;
                break;
            }
            let to = (from + opts.window).min(now);
            incidents_window(client, store, from, to, s).await?;
            touched.extend(entries_window(client, store, (from, to), written_before, s).await?);
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
        refresh(client, store, &touched, s).await?;
        (s.calls, s.throttled) = client.calls();
        on_round(s);
        rounds += 1;
        if !opts.follow || opts.shutdown.is_cancelled() {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(opts.poll) => {}
            _ = opts.shutdown.cancelled() => return Ok(()),
        }
    }
}
