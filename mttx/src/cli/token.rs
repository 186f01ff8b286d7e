//! `mttx token`: API tokens, each scoped to one account: create, list and revoke.

use clap::Subcommand;
use mttx_state::{Scope, TokenInfo};

use super::{Places, usage};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for one account; the token is printed last (and only once).
    Create {
        /// The account the token may read.
        #[arg(long)]
        account: i64,
        /// A name to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Days until the token expires (default: never).
        #[arg(long)]
        expires_days: Option<f64>,
        /// What the token may read: `api` (everything) or `dashboard` (the dashboard's
        /// pages and downloads only, for a shared screen).
        #[arg(long, default_value = "api", value_parser = parse_scope)]
        scope: Scope,
    },
    /// The account's tokens: id, name, scope, created, expires, last used, revoked. Never
    /// the tokens themselves (only their first characters).
    List {
        #[arg(long)]
        account: i64,
    },
    /// Revoke a token by its id (from `mttx token list`). Servers stop taking it within
    /// 10 seconds (they keep a token check that long).
    Revoke {
        #[arg(long)]
        id: i64,
    },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse()
}

pub async fn run(places: &Places, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            account,
            name,
            expires_days,
            scope,
        } => {
            if account < 1 {
                return Err(usage("--account must be an account id (1 or more)"));
            }
            let ttl = match expires_days {
                Some(d) if !(d > 0.0 && d <= 3650.0) => {
                    return Err(usage("--expires-days must be between 0 and 3650"));
                }
                d => d.map(|d| (d * 86_400.0) as i64),
            };
            let state = places.open_state().await?;
            let token = state
                .create_scoped_token(account, &name, ttl, scope)
                .await?;
            eprintln!(
                "token `{name}` for account {account} (scope {}); it is shown only now:",
                scope.as_str()
            );
            println!("{token}");
        }
        TokenCommand::List { account } => {
            let state = places.open_state().await?;
            let tokens = state.list_tokens(account).await?;
            if tokens.is_empty() {
                println!(
                    "account {account} has no tokens; create one with `mttx token create --account {account}`"
                );
            } else {
                print!("{}", table(&tokens));
            }
        }
        TokenCommand::Revoke { id } => {
            let state = places.open_state().await?;
            match state.revoke_token(id).await? {
                None => {
                    return Err(usage(format!(
                        "there is no token {id}; `mttx token list --account <id>` lists them"
                    )));
                }
                Some(t) => println!(
                    "revoked token {id} `{}` of account {} (at {}); servers refuse it within 10 s",
                    t.name,
                    t.account_id,
                    t.revoked_at.map_or("–".into(), |at| time(Some(at)))
                ),
            }
        }
    }
    Ok(())
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or("–".to_owned(), |t| {
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    })
}

/// The tokens as an aligned text table.
fn table(tokens: &[TokenInfo]) -> String {
    let head = [
        "id",
        "name",
        "token",
        "scope",
        "created",
        "expires",
        "last used",
        "revoked",
    ];
    let rows: Vec<[String; 8]> = tokens
        .iter()
        .map(|t| {
            [
                t.id.to_string(),
                t.name.clone(),
                format!("{}…", t.prefix),
                t.scope.clone(),
                time(Some(t.created_at)),
                time(t.expires_at),
                time(t.last_used_at),
                time(t.revoked_at),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(head.to_vec());
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}
