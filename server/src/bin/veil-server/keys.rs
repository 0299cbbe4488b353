//! `veil-server keys …`: create, list and revoke API keys in the key database.

use std::num::{NonZeroU32, NonZeroU64};
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use rand::TryRngCore as _;
use veil_server::keys::{KeyInfo, KeySelector, KeyStore, Limits};

use crate::DbArg;

#[derive(Subcommand, Debug)]
pub(crate) enum KeysCommand {
    /// Create a key and print it on stdout. It is shown only now: only its SHA-256 is stored.
    Create {
        /// A unique name (1 to 64 characters of A-Z a-z 0-9 . _ -, not all digits).
        #[arg(long)]
        name: String,
        /// Prompt plus completion tokens a minute [default: unlimited]. A request is admitted
        /// while the key's recent usage plus its prompt fits; its completion is charged when it
        /// ends, and usage drains continuously at this rate.
        #[arg(long, value_name = "TOKENS_PER_MIN")]
        rate: Option<NonZeroU64>,
        /// Requests (streamed or not) generating at once [default: unlimited].
        #[arg(long, visible_alias = "max-streams", value_name = "N")]
        max_concurrent: Option<NonZeroU32>,
        #[command(flatten)]
        db: DbArg,
    },
    /// List the keys: id, name, created, limits, revoked (never a key).
    List {
        #[command(flatten)]
        db: DbArg,
    },
    /// Revoke a key; a running server refuses it from its next request on.
    Revoke {
        /// The key's name, or its id (digits).
        #[arg(value_name = "NAME|ID")]
        key: String,
        #[command(flatten)]
        db: DbArg,
    },
}

pub(crate) fn keys(command: KeysCommand) -> anyhow::Result<()> {
    let open = |db: DbArg| -> anyhow::Result<(KeyStore, PathBuf)> {
        let path = db.path()?;
        let store = KeyStore::open(&path)
            .with_context(|| format!("opening the key database {}", path.display()))?;
        Ok((store, path))
    };
    match command {
        KeysCommand::Create {
            name,
            rate,
            max_concurrent,
            db,
        } => {
            let (store, path) = open(db)?;
            let limits = Limits {
                tokens_per_minute: rate,
                max_concurrent,
            };
            let (id, key) = store.create(&name, limits, &mut rand::rngs::OsRng.unwrap_err())?;
            println!("{}", key.expose());
            eprintln!(
                "veil-server: created key {id} ({name}) in {}; this is the only time it is shown",
                path.display()
            );
        }
        KeysCommand::List { db } => {
            let (store, _) = open(db)?;
            println!(
                "{:>4}  {:<24}  {:<20}  {:>10}  {:>10}  REVOKED",
                "ID", "NAME", "CREATED", "TOKENS/MIN", "CONCURRENT"
            );
            for k in store.list()? {
                print_key(&k);
            }
        }
        KeysCommand::Revoke { key, db } => {
            let (store, _) = open(db)?;
            let k = store.revoke(&KeySelector::parse(&key))?;
            eprintln!(
                "veil-server: key {} ({}) revoked at {}",
                k.id,
                k.name,
                k.revoked.map_or_else(|| "-".to_owned(), utc)
            );
        }
    }
    Ok(())
}

fn print_key(k: &KeyInfo) {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    println!(
        "{:>4}  {:<24}  {:<20}  {:>10}  {:>10}  {}",
        k.id,
        k.name,
        utc(k.created),
        or_dash(k.limits.tokens_per_minute.map(|n| n.to_string())),
        or_dash(k.limits.max_concurrent.map(|n| n.to_string())),
        or_dash(k.revoked.map(utc)),
    );
}

/// Unix seconds as RFC 3339 UTC.
fn utc(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}
