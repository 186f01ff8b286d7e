//! What an account's ids stand for: the names of the account, its teams, services,
//! escalation policies and users as the replica holds them now, the account's time zone,
//! and, for a replica an importer built (`mttx import pagerduty`), the outside system's own
//! ids (`import_ids`). Reports carry ids; whatever a person reads shows these names, read
//! at answer time, so a renamed team shows its new name without a reprocess.

use std::collections::HashMap;

use mttx_migrations::Pool;

use crate::source::{on_source, with_retries};
use crate::{Result, Source, SourceKind};

/// The kinds of named things.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Team,
    Service,
    EscalationPolicy,
    User,
}

impl Kind {
    /// The kind as `import_ids.kind` spells it.
    pub fn import_kind(self) -> &'static str {
        match self {
            Kind::Team => "team",
            Kind::Service => "service",
            Kind::EscalationPolicy => "escalation_policy",
            Kind::User => "user",
        }
    }

    fn from_import(kind: &str) -> Option<Self> {
        Some(match kind {
            "team" => Kind::Team,
            "service" => Kind::Service,
            "escalation_policy" => Kind::EscalationPolicy,
            "user" => Kind::User,
            _ => return None,
        })
    }
}

/// One account's names and outside ids.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub account_id: i64,
    /// None: the replica has no such account (or none was read).
    pub account_name: Option<String>,
    /// The account's IANA time zone as the replica holds it.
    pub time_zone: Option<String>,
    names: HashMap<(Kind, i64), String>,
    /// The outside system's id of each of ours that an importer gave.
    external: HashMap<(Kind, i64), String>,
    /// Ours by the outside id.
    internal: HashMap<(Kind, String), i64>,
    /// The team of each service and escalation policy that has one.
    teams_of: HashMap<(Kind, i64), i64>,
}

impl Directory {
    /// An empty directory: every name unknown, every id our own.
    pub fn empty(account_id: i64) -> Self {
        Self {
            account_id,
            ..Self::default()
        }
    }

    /// Records a name and the outside system's id of one of ours.
    pub(crate) fn add_outside(&mut self, kind: Kind, id: i64, name: String, outside: String) {
        self.names.insert((kind, id), name);
        self.internal.insert((kind, outside.clone()), id);
        self.external.insert((kind, id), outside);
    }

    /// The name of `id`, if the replica knows it.
    pub fn name(&self, kind: Kind, id: i64) -> Option<&str> {
        self.names.get(&(kind, id)).map(String::as_str)
    }

    /// The team a service or escalation policy belongs to, if any.
    pub fn team_of(&self, kind: Kind, id: i64) -> Option<i64> {
        self.teams_of.get(&(kind, id)).copied()
    }

    /// A digest of everything here: answers that show names are cached under it, so a
    /// rename is a new answer.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut all: Vec<_> = self.names.iter().collect();
        all.sort();
        let mut outside: Vec<_> = self.external.iter().collect();
        outside.sort();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&self.account_name, &self.time_zone, all, outside).hash(&mut h);
        h.finish()
    }

    /// The ids of one kind with their names, ordered by name then id.
    pub fn named(&self, kind: Kind) -> Vec<(i64, &str)> {
        let mut all: Vec<(i64, &str)> = self
            .names
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, id), name)| (*id, name.as_str()))
            .collect();
        all.sort_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(&b.0)));
        all
    }

    /// The id to show outside: the importer's outside id where there is one, else ours.
    pub fn outside_id(&self, kind: Kind, id: i64) -> String {
        self.external
            .get(&(kind, id))
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// Our id of an id as shown outside ([`Directory::outside_id`]); None when it names
    /// nothing of this account.
    pub fn inside_id(&self, kind: Kind, outside: &str) -> Option<i64> {
        if let Some(id) = self.internal.get(&(kind, outside.to_owned())) {
            return Some(*id);
        }
        let id: i64 = outside.parse().ok()?;
        // Our own id, as long as the importer did not give it an outside one.
        (self.names.contains_key(&(kind, id)) && !self.external.contains_key(&(kind, id)))
            .then_some(id)
    }
}

const NAMES: [(Kind, &str); 4] = [
    (
        Kind::Team,
        "SELECT id, name, CAST(NULL AS BIGINT) FROM teams WHERE account_id = $1",
    ),
    (
        Kind::Service,
        "SELECT id, name, team_id FROM services WHERE account_id = $1",
    ),
    (
        Kind::EscalationPolicy,
        "SELECT id, name, team_id FROM escalation_policies WHERE account_id = $1",
    ),
    (
        Kind::User,
        "SELECT id, name, CAST(NULL AS BIGINT) FROM users WHERE account_id = $1",
    ),
];

impl Source {
    /// Every account of the replica, by id, with its name: a GoAlert instance is one.
    #[tracing::instrument(skip_all, err)]
    pub async fn accounts(&self) -> Result<Vec<(i64, String)>> {
        if let SourceKind::GoAlert(options) = &self.kind {
            return Ok(vec![(
                crate::goalert::ACCOUNT,
                options.account_name.clone(),
            )]);
        }
        Ok(on_source!(&self.pool, p => {
            with_retries("reading the accounts", || {
                sqlx::query_as("SELECT id, name FROM accounts ORDER BY id").fetch_all(p)
            })
            .await?
        }))
    }

    /// The names and outside ids of one account, as the replica holds them now.
    #[tracing::instrument(skip_all, fields(account), err)]
    pub async fn directory(&self, account: i64) -> Result<Directory> {
        let mut d = Directory::empty(account);
        if let SourceKind::GoAlert(options) = &self.kind {
            if account == crate::goalert::ACCOUNT {
                crate::goalert::names(self.pg()?, options, &mut d).await?;
            }
            return Ok(d);
        }
        on_source!(&self.pool, p => {
            let row: Option<(String, String)> = with_retries("reading the account", || {
                sqlx::query_as("SELECT name, time_zone FROM accounts WHERE id = $1")
                    .bind(account)
                    .fetch_optional(p)
            })
            .await?;
            if let Some((name, zone)) = row {
                d.account_name = Some(name);
                d.time_zone = Some(zone);
            }
            for (kind, sql) in NAMES {
                let rows: Vec<(i64, String, Option<i64>)> = with_retries("reading names", || {
                    sqlx::query_as(sql).bind(account).fetch_all(p)
                })
                .await?;
                for (id, name, team) in rows {
                    d.names.insert((kind, id), name);
                    if let Some(team) = team {
                        d.teams_of.insert((kind, id), team);
                    }
                }
            }
        });
        if self.has_import_ids().await? {
            let rows: Vec<(String, i64, String)> = on_source!(&self.pool, p => {
                with_retries("reading imported ids", || {
                    sqlx::query_as(
                        "SELECT kind, id, external_id FROM import_ids \
                         WHERE kind IN ('team', 'service', 'escalation_policy', 'user')",
                    )
                    .fetch_all(p)
                })
                .await?
            });
            for (kind, id, external) in rows {
                // Only this account's: the ids of every kind are unique across accounts.
                if let Some(kind) = Kind::from_import(&kind)
                    && d.names.contains_key(&(kind, id))
                {
                    d.internal.insert((kind, external.clone()), id);
                    d.external.insert((kind, id), external);
                }
            }
        }
        Ok(d)
    }

    /// The outside ids an importer gave these incidents (those that have one).
    #[tracing::instrument(skip_all, fields(incidents = ids.len()), err)]
    pub async fn outside_incident_ids(&self, ids: &[i64]) -> Result<HashMap<i64, String>> {
        if ids.is_empty() || self.is_goalert() || !self.has_import_ids().await? {
            return Ok(HashMap::new());
        }
        let rows: Vec<(i64, String)> = match &self.pool {
            Pool::Postgres(pg) => {
                with_retries("reading imported incident ids", || {
                    sqlx::query_as(
                        "SELECT id, external_id FROM import_ids WHERE kind = 'incident' AND id = ANY($1)",
                    )
                    .bind(ids)
                    .fetch_all(pg)
                })
                .await?
            }
            Pool::Sqlite(lite) => {
                let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
                with_retries("reading imported incident ids", || {
                    sqlx::query_as(
                        "SELECT id, external_id FROM import_ids WHERE kind = 'incident' \
                         AND id IN (SELECT value FROM json_each(?))",
                    )
                    .bind(&list)
                    .fetch_all(lite)
                })
                .await?
            }
        };
        Ok(rows.into_iter().collect())
    }

    /// Our id of an incident by the outside id an importer gave it.
    #[tracing::instrument(skip_all, err)]
    pub async fn inside_incident_id(&self, outside: &str) -> Result<Option<i64>> {
        if self.is_goalert() || !self.has_import_ids().await? {
            return Ok(None);
        }
        const SQL: &str = "SELECT id FROM import_ids WHERE kind = 'incident' AND external_id = $1";
        let id: Option<(i64,)> = on_source!(&self.pool, p => {
            with_retries("reading an imported incident id", || {
                sqlx::query_as(SQL).bind(outside).fetch_optional(p)
            })
            .await?
        });
        Ok(id.map(|(id,)| id))
    }

    /// Whether an importer made this replica (it has `import_ids`).
    async fn has_import_ids(&self) -> Result<bool> {
        let (n,): (i64,) = match &self.pool {
            Pool::Postgres(pg) => {
                with_retries("looking for imported ids", || {
                    sqlx::query_as(
                        "SELECT count(*) FROM pg_catalog.pg_tables \
                         WHERE tablename = 'import_ids' AND schemaname = ANY(current_schemas(false))",
                    )
                    .fetch_one(pg)
                })
                .await?
            }
            Pool::Sqlite(lite) => {
                with_retries("looking for imported ids", || {
                    sqlx::query_as(
                        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'import_ids'",
                    )
                    .fetch_one(lite)
                })
                .await?
            }
        };
        Ok(n > 0)
    }
}
