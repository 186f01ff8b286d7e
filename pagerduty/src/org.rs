//! The organisation: account, teams, users and their teams, escalation policies, services
//! and priority names, in one transaction; and the contract ids of the people, policies and
//! services a log or an incident names (made from the reference where PagerDuty no longer
//! lists them, so nothing named is lost).

use std::collections::HashMap;

use serde_json::Value;

use crate::client::Client;
use crate::import::{ACCOUNT, Options, Summary, quarantine};
use crate::map::{self, Reference};
use crate::store::{Store, Tx};
use crate::{Error, Result};

/// The contract id of the policy `r`, made from the reference if it is not imported (a
/// policy deleted since, say).
pub(crate) async fn policy_id(tx: &mut Tx, r: &Reference) -> Result<i64> {
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
pub(crate) async fn service_id(tx: &mut Tx, r: &Reference, policy: i64) -> Result<i64> {
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
pub(crate) async fn user_id(tx: &mut Tx, r: &Reference) -> Result<i64> {
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
pub(crate) async fn organisation(
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
