//! `fedics user …` and `fedics apikey …`: accounts and machine keys, written straight to
//! the store (the same one a running `demo` or `serve` uses).

use std::io::BufRead;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use fedics_store::{NewApiKey, NewUser, Role, Store};

/// Default store: the demo's.
const DEFAULT_DB: &str = "fedics-data/fedics.db";

#[derive(clap::Args, Debug)]
pub struct DbArg {
    /// Store URL (postgres://…, sqlite://… or a file path). Default: the demo's store.
    #[arg(long, env = "FEDICS_DB", default_value = DEFAULT_DB)]
    pub db: String,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user, or set the password and role of an existing one.
    Add {
        name: String,
        /// viewer (read), analyst (read, alert status, validate predictions), admin.
        #[arg(long, default_value = "viewer")]
        role: Role,
        /// Read the password from the first line of stdin (default: generate and print one).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// List users.
    List {
        #[command(flatten)]
        db: DbArg,
    },
    /// Remove a user.
    Remove {
        name: String,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApiKeyCommand {
    /// Create an API key for a machine (sensor, site); the key is printed once.
    Create {
        /// What the key is for, e.g. `site-berlin`.
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "viewer")]
        role: Role,
        #[command(flatten)]
        db: DbArg,
    },
    /// Revoke a key by id or prefix.
    Revoke {
        key: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        db: DbArg,
    },
}

async fn open(db: &DbArg) -> Result<Store> {
    Store::open(&db.db)
        .await
        .with_context(|| format!("opening the store {}", db.db))
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 128
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        bail!("a name is 1 to 128 characters without spaces or control characters");
    }
    Ok(())
}

pub async fn user(cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Add {
            name,
            role,
            password_stdin,
            db,
        } => {
            check_name(&name)?;
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("reading the password from stdin")?;
                let p = line.trim_end_matches(['\n', '\r']).to_string();
                if p.len() < 8 {
                    bail!("the password must have at least 8 characters");
                }
                (p, false)
            } else {
                (fedics_server::auth::random_hex(12), true)
            };
            let hash = fedics_server::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
            let store = open(&db).await?;
            // An existing user is replaced (new password and role; user ids are not
            // referenced anywhere, the audit log names users).
            store.delete_user(&name).await?;
            store
                .create_user(&NewUser {
                    username: name.clone(),
                    password_hash: hash,
                    role,
                })
                .await?;
            if generated {
                outln!("user {name} ({}) password: {password}", role.as_str());
            } else {
                outln!("user {name} ({})", role.as_str());
            }
            store.close().await;
        }
        UserCommand::List { db } => {
            let store = open(&db).await?;
            for u in store.list_users().await? {
                outln!(
                    "{}\t{}\t{}",
                    u.username,
                    u.role.as_str(),
                    u.created_at.to_rfc3339()
                );
            }
            store.close().await;
        }
        UserCommand::Remove { name, db } => {
            let store = open(&db).await?;
            if !store.delete_user(&name).await? {
                bail!("no user {name:?}");
            }
            outln!("removed {name}");
            store.close().await;
        }
    }
    Ok(())
}

pub async fn apikey(cmd: ApiKeyCommand) -> Result<()> {
    match cmd {
        ApiKeyCommand::Create { name, role, db } => {
            check_name(&name)?;
            let store = open(&db).await?;
            let (key, prefix, secret_hash) = fedics_server::auth::generate_api_key();
            let row = store
                .create_api_key(&NewApiKey {
                    name,
                    prefix,
                    secret_hash,
                    role,
                    created_by: "cli".into(),
                })
                .await?;
            outln!("{key}");
            eprintln!(
                "API key {} ({}, {}) created; the key above is shown once. Send it as `X-API-Key`.",
                row.id,
                row.name,
                row.role.as_str()
            );
            store.close().await;
        }
        ApiKeyCommand::Revoke { key, db } => {
            let store = open(&db).await?;
            if !store.revoke_api_key(&key, chrono::Utc::now()).await? {
                bail!("no active API key with id or prefix {key:?}");
            }
            outln!("revoked {key}");
            store.close().await;
        }
        ApiKeyCommand::List { db } => {
            let store = open(&db).await?;
            for k in store.list_api_keys().await? {
                outln!(
                    "{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.prefix,
                    k.name,
                    k.role.as_str(),
                    match k.revoked_at {
                        Some(t) => format!("revoked {}", t.to_rfc3339()),
                        None => "active".into(),
                    }
                );
            }
            store.close().await;
        }
    }
    Ok(())
}
