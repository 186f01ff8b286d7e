//! `mttx token`: API tokens, each scoped to one account.

use clap::Subcommand;

use super::Places;

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
    },
}

pub async fn run(places: &Places, command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Create {
        account,
        name,
        expires_days,
    } = command;
    anyhow::ensure!(account > 0, "--account must be an account id (1 or more)");
    let ttl = expires_days
        .map(|d| {
            anyhow::ensure!(
                d > 0.0 && d <= 3650.0,
                "--expires-days must be between 0 and 3650"
            );
            Ok((d * 86_400.0) as i64)
        })
        .transpose()?;
    let state = places.open_state().await?;
    let token = state.create_token(account, &name, ttl).await?;
    eprintln!("token `{name}` for account {account}; it is shown only now:");
    println!("{token}");
    Ok(())
}
