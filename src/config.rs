//! Typed configuration: `config/default.toml` (built in) → `--config FILE` →
//! `ZDEL__SECTION__KEY` environment variables. Validation happens here, once,
//! so every later stage can trust the values. Secrets are `SecretString` and
//! never reach `Debug`, logs or error messages.
//!
//! Adding a setting: its key, commented, in `config/default.toml` (the
//! built-in defaults, and the list of known keys), a field here, a check in
//! [`Config::validate`] if it has a range, and the section handed to
//! whoever reads it (`ZohoClient::new` takes `[zoho]` and `[limits]`,
//! `WorkerSettings::new` its sections) — never the whole `Config`.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

// Zoho's limit, from the leaf module of its vocabulary (which imports nothing).
use crate::zoho::vocab::MAX_IDS_PER_DELETE;
use serde::Deserialize;

/// The built-in defaults: the same file as `config/default.toml` in the repo.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or does not have the right shape.
    #[error("configuration could not be loaded: {0}")]
    Load(String),
    /// A key holds a value zdel cannot work with.
    #[error("configuration key `{key}` {problem}")]
    Invalid { key: &'static str, problem: String },
    /// A key zdel does not know — usually a typo, which would otherwise
    /// leave the setting it meant at its default (a daily cap silently off).
    #[error(
        "unknown configuration key `{key}`{}; every key is listed in config/default.toml",
        closest.as_ref().map(|c| format!(" (did you mean `{c}`?)")).unwrap_or_default()
    )]
    UnknownKey {
        key: String,
        closest: Option<String>,
    },
    /// An environment variable that looks meant for zdel but is not read:
    /// one underscore after `ZDEL` (`ZDEL_LIMITS__MAX_CONCURRENCY`).
    #[error(
        "environment variable {var} is not read: zdel reads ZDEL__SECTION__KEY, with two underscores after ZDEL (did you mean {meant}?)"
    )]
    StrayVariable { var: String, meant: String },
}

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub database: DatabaseConfig,
    pub zoho: ZohoConfig,
    pub limits: LimitsConfig,
    pub retry: RetryConfig,
    pub worker: WorkerConfig,
    pub mass_delete: MassDeleteConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub select: SelectConfig,
    pub verify: VerifyConfig,
    pub erase: EraseConfig,
}

/// `[select]`: `zdel select`.
#[derive(Debug, Clone, Deserialize)]
pub struct SelectConfig {
    /// A selection of more IDs than this asks before it is released (off
    /// a terminal: needs `--yes`).
    pub confirm_above: u64,
    /// How often a Bulk Read job's state is asked.
    pub bulk_poll_interval_ms: u64,
    /// How long a Bulk Read job may take before `select` stops (exit 130,
    /// the job's id kept: the same command goes on polling it).
    pub bulk_max_wait_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EraseConfig {
    /// The modules `zdel erase` searches.
    pub modules: Vec<String>,
    /// The fields an `--email` must equal (any of them).
    pub email_fields: Vec<String>,
    /// The fields a `--phone` must equal (any of them).
    pub phone_fields: Vec<String>,
    /// How long erase waits for a running daemon to delete what it queued.
    pub wait_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VerifyConfig {
    /// `drain` checks what it deleted against the recycle bin before it
    /// exits (`zdel verify --since` the run's start).
    pub after_run: bool,
    /// An `INVALID_DATA` after an unanswered attempt is settled by the
    /// recycle bin before the row's outcome is written.
    pub ambiguous: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    pub listen: String,
    pub queue_depth_interval_ms: u64,
    /// Needed by `/` and `/api/*` (Bearer, or `?token=`) when `listen` is
    /// not a loopback address; start-up refuses without it then.
    pub console_token: secrecy::SecretString,
}

impl HttpConfig {
    /// A console on a non-loopback address needs `http.console_token`.
    pub fn check_console(&self, listen: &str) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        let loopback = listen
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip().is_loopback())
            .unwrap_or_else(|_| listen.starts_with("localhost:"));
        if !loopback && self.console_token.expose_secret().trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "http.console_token",
                problem: format!(
                    "is not set, and http.listen {listen} is not a loopback address: set a token (ZDEL__HTTP__CONSOLE_TOKEN) so that only whoever holds it sees the console, or listen on 127.0.0.1"
                ),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct MassDeleteConfig {
    pub poll_interval_ms: u64,
    pub max_poll_interval_ms: u64,
    pub max_unknown_polls: u32,
}

/// `zoho.delete_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteStrategy {
    Delete,
    MassDelete,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseConfig {
    pub url: String,
    pub busy_timeout_ms: u64,
}

#[derive(Clone, Deserialize)]
pub struct ZohoConfig {
    pub accounts_url: String,
    pub api_domain: String,
    pub api_version: String,
    pub delete_strategy: DeleteStrategy,
    pub client_id: String,
    pub client_secret: SecretString,
    pub refresh_token: SecretString,
    pub request_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub token_refresh_margin_ms: u64,
    pub token_retry_ms: u64,
}

/// Hand-written so that a `{:?}` of the config can never print a secret.
impl std::fmt::Debug for ZohoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZohoConfig")
            .field("accounts_url", &self.accounts_url)
            .field("api_domain", &self.api_domain)
            .field("api_version", &self.api_version)
            .field("delete_strategy", &self.delete_strategy)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("refresh_token", &"[REDACTED]")
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("token_refresh_margin_ms", &self.token_refresh_margin_ms)
            .field("token_retry_ms", &self.token_retry_ms)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct LimitsConfig {
    pub requests_per_second: u32,
    pub burst: u32,
    pub max_concurrency: u32,
    pub max_deletions_per_day: u64,
    pub max_throttle_backoff_ms: u64,
    pub max_credits_per_day: u64,
    pub min_credits_remaining: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RetryConfig {
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerConfig {
    pub poll_interval_ms: u64,
    pub batch_size: u32,
    pub lease_ms: u64,
    pub daemon_lease_ms: u64,
    pub shutdown_grace_ms: u64,
    pub auth_probe_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
    /// How often `drain` logs a progress line off a terminal (0: never).
    pub progress_interval_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Every key zdel reads (`section.key`), from the built-in defaults.
pub fn known_keys() -> Vec<String> {
    let Ok(table) = config::Config::builder()
        .add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ))
        .build()
        .and_then(|c| c.cache.into_table())
    else {
        return Vec::new();
    };
    let mut keys: Vec<String> = table
        .into_iter()
        .flat_map(|(section, value)| match value.into_table() {
            Ok(inner) => inner
                .into_keys()
                .map(|key| format!("{section}.{key}"))
                .collect::<Vec<_>>(),
            Err(_) => vec![section],
        })
        .collect();
    keys.sort();
    keys
}

/// The known key nearest to `key`, if one is near enough to be what was
/// meant: one whose words start with every word of `key` (an abbreviation,
/// `worker.poll_ms` → `worker.poll_interval_ms`; a dropped letter,
/// `max_deletion_per_day`), else the one fewest edits away.
fn closest_known_key(key: &str) -> Option<String> {
    let key = key.to_ascii_lowercase();
    let words = |k: &str| -> Vec<String> {
        k.split(['.', '_'])
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    let typed = words(&key);
    known_keys()
        .into_iter()
        .map(|known| {
            let theirs = words(&known);
            let abbreviates = typed
                .iter()
                .all(|w| theirs.iter().any(|t| t.starts_with(w.as_str())));
            let distance = strsim::damerau_levenshtein(&key, &known);
            (!abbreviates, distance, known)
        })
        .filter(|(not_abbreviation, distance, known)| {
            !not_abbreviation || *distance <= (known.len() / 4).max(2)
        })
        .min()
        .map(|(_, _, known)| known)
}

impl Config {
    /// Load defaults, then `file` (if any), then `ZDEL__*` variables from the
    /// process environment, and validate the result.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment given explicitly (tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist or is not a file",
                    path.display()
                )));
            }
            builder = builder.add_source(
                config::File::from(path.to_path_buf()).format(config::FileFormat::Toml),
            );
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        if let Some((var, _)) = env
            .iter()
            .find(|(k, _)| k.starts_with("ZDEL_") && !k.starts_with("ZDEL__") && k != "ZDEL_CONFIG")
        {
            return Err(ConfigError::StrayVariable {
                var: var.clone(),
                meant: format!("ZDEL__{}", var.trim_start_matches("ZDEL_")),
            });
        }
        let env: std::collections::HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("ZDEL__"))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("ZDEL")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        let loaded = builder
            .build()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        let mut unknown_keys = Vec::new();
        let config: Config = serde_ignored::deserialize(loaded, |path| {
            unknown_keys.push(path.to_string());
        })
        .map_err(|e| ConfigError::Load(e.to_string()))?;
        unknown_keys.sort();
        if let Some(key) = unknown_keys.into_iter().next() {
            let closest = closest_known_key(&key);
            return Err(ConfigError::UnknownKey { key, closest });
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks that need no network: ranges, URL shapes. Secrets are checked by
    /// [`Config::require_credentials`], only where they are needed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                key,
                problem: problem.into(),
            }
        }
        if self.database.url.trim().is_empty() {
            return Err(invalid("database.url", "is empty: name a SQLite file"));
        }
        check_http_url("zoho.accounts_url", &self.zoho.accounts_url)?;
        if !self.zoho.api_domain.is_empty() {
            check_http_url("zoho.api_domain", &self.zoho.api_domain)?;
        }
        let version = &self.zoho.api_version;
        if version.is_empty() || !version.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid(
                "zoho.api_version",
                format!("is {version:?}: expected a version such as \"v8\""),
            ));
        }
        if self.zoho.request_timeout_ms == 0 {
            return Err(invalid("zoho.request_timeout_ms", "must be above 0"));
        }
        if self.zoho.connect_timeout_ms == 0 {
            return Err(invalid("zoho.connect_timeout_ms", "must be above 0"));
        }
        if self.limits.requests_per_second == 0 {
            return Err(invalid(
                "limits.requests_per_second",
                "must be at least 1 (0 would never send a call)",
            ));
        }
        if self.limits.max_concurrency == 0 {
            return Err(invalid(
                "limits.max_concurrency",
                "must be at least 1 (0 would never send a call)",
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(invalid("retry.max_attempts", "must be at least 1"));
        }
        if self.retry.base_delay_ms > self.retry.max_delay_ms {
            return Err(invalid(
                "retry.base_delay_ms",
                "must not exceed retry.max_delay_ms",
            ));
        }
        if self.worker.batch_size == 0 || self.worker.batch_size > MAX_IDS_PER_DELETE {
            return Err(invalid(
                "worker.batch_size",
                format!("must be between 1 and {MAX_IDS_PER_DELETE} (Zoho's limit per call)"),
            ));
        }
        if self.mass_delete.poll_interval_ms == 0 {
            return Err(invalid("mass_delete.poll_interval_ms", "must be above 0"));
        }
        if self.mass_delete.max_poll_interval_ms < self.mass_delete.poll_interval_ms {
            return Err(invalid(
                "mass_delete.max_poll_interval_ms",
                "must not be below mass_delete.poll_interval_ms",
            ));
        }
        if !self.http.listen.is_empty() && self.http.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(invalid(
                "http.listen",
                format!(
                    "is {:?}: expected an address and port such as 127.0.0.1:9187 (or \"\" for none)",
                    self.http.listen
                ),
            ));
        }
        if self.http.queue_depth_interval_ms == 0 {
            return Err(invalid("http.queue_depth_interval_ms", "must be above 0"));
        }
        if self.limits.burst == 0 {
            return Err(invalid("limits.burst", "must be at least 1"));
        }
        if self.worker.poll_interval_ms == 0 {
            return Err(invalid("worker.poll_interval_ms", "must be above 0"));
        }
        if self.worker.lease_ms <= self.zoho.request_timeout_ms {
            return Err(invalid(
                "worker.lease_ms",
                "must exceed zoho.request_timeout_ms, or a slow call would lose its lease",
            ));
        }
        if !matches!(
            self.log.level.to_ascii_lowercase().as_str(),
            "error" | "warn" | "info" | "debug" | "trace"
        ) {
            return Err(invalid(
                "log.level",
                format!(
                    "is {:?}: expected error, warn, info, debug or trace",
                    self.log.level
                ),
            ));
        }
        Ok(())
    }

    /// The OAuth client and refresh token must be set before zdel talks to Zoho.
    pub fn require_credentials(&self) -> Result<(), ConfigError> {
        self.zoho.require_credentials()
    }
}

impl ZohoConfig {
    /// The OAuth client and refresh token are set (not checked with Zoho).
    pub fn require_credentials(&self) -> Result<(), ConfigError> {
        let missing = |key: &'static str, env: &str| ConfigError::Invalid {
            key,
            problem: format!(
                "is not set: zdel needs it to talk to Zoho (set it in the config file or as {env})"
            ),
        };
        if self.client_id.trim().is_empty() {
            return Err(missing("zoho.client_id", "ZDEL__ZOHO__CLIENT_ID"));
        }
        if self.client_secret.expose_secret().trim().is_empty() {
            return Err(missing("zoho.client_secret", "ZDEL__ZOHO__CLIENT_SECRET"));
        }
        if self.refresh_token.expose_secret().trim().is_empty() {
            return Err(missing("zoho.refresh_token", "ZDEL__ZOHO__REFRESH_TOKEN"));
        }
        Ok(())
    }
}

fn check_http_url(key: &'static str, value: &str) -> Result<(), ConfigError> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err(ConfigError::Invalid {
            key,
            problem: format!(
                "is {value:?}: expected an http(s) URL such as https://accounts.zoho.com"
            ),
        }),
        Err(e) => Err(ConfigError::Invalid {
            key,
            problem: format!("is {value:?}, not a URL ({e})"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_and_validate() {
        let c = Config::load_with_env(None, env(&[])).unwrap();
        assert_eq!(c.zoho.api_version, "v8");
        assert_eq!(c.worker.batch_size, 100);
        assert_eq!(c.log.format, LogFormat::Text);
    }

    #[test]
    fn double_underscore_env_overrides_and_a_single_one_is_refused() {
        let c = Config::load_with_env(
            None,
            env(&[
                ("ZDEL__ZOHO__CLIENT_ID", "1000.ABC"),
                ("ZDEL__LIMITS__MAX_CONCURRENCY", "12"),
                ("ZDEL_CONFIG", "ignored here: clap reads it"),
            ]),
        )
        .unwrap();
        assert_eq!(c.zoho.client_id, "1000.ABC");
        assert_eq!(c.limits.max_concurrency, 12);
        let err = Config::load_with_env(None, env(&[("ZDEL_LIMITS__BURST", "99")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable ZDEL_LIMITS__BURST is not read: zdel reads ZDEL__SECTION__KEY, with two underscores after ZDEL (did you mean ZDEL__LIMITS__BURST?)"
        );
    }

    #[test]
    fn numeric_looking_secret_stays_a_string() {
        let c = Config::load_with_env(None, env(&[("ZDEL__ZOHO__CLIENT_ID", "123456")])).unwrap();
        assert_eq!(c.zoho.client_id, "123456");
    }

    #[test]
    fn invalid_values_name_their_key() {
        for (key, value, named) in [
            (
                "ZDEL__LIMITS__REQUESTS_PER_SECOND",
                "0",
                "limits.requests_per_second",
            ),
            (
                "ZDEL__LIMITS__MAX_CONCURRENCY",
                "0",
                "limits.max_concurrency",
            ),
            ("ZDEL__ZOHO__ACCOUNTS_URL", "not a url", "zoho.accounts_url"),
            ("ZDEL__WORKER__BATCH_SIZE", "101", "worker.batch_size"),
            ("ZDEL__LOG__LEVEL", "loud", "log.level"),
        ] {
            let err = Config::load_with_env(None, env(&[(key, value)])).unwrap_err();
            assert!(err.to_string().contains(named), "{key}: {err}");
        }
        let err = Config::load_with_env(None, env(&[("ZDEL__LIMITS__BURST", "many")])).unwrap_err();
        assert!(err.to_string().contains("burst"), "{err}");
    }

    #[test]
    fn missing_credentials_name_the_key_and_debug_redacts() {
        let c = Config::load_with_env(
            None,
            env(&[
                ("ZDEL__ZOHO__CLIENT_ID", "id"),
                ("ZDEL__ZOHO__CLIENT_SECRET", "s3cr3t-value"),
            ]),
        )
        .unwrap();
        let err = c.require_credentials().unwrap_err().to_string();
        assert!(err.contains("zoho.refresh_token"), "{err}");
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it_and_the_closest_known_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zdel.toml");
        std::fs::write(&path, "[limits]\nmax_deletion_per_day = 3\n").unwrap();
        let err = Config::load_with_env(Some(&path), env(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown configuration key `limits.max_deletion_per_day` (did you mean `limits.max_deletions_per_day`?); every key is listed in config/default.toml"
        );
        let err = Config::load_with_env(None, env(&[("ZDEL__WORKER__POLL_MS", "5")])).unwrap_err();
        assert!(
            err.to_string()
                .contains("`worker.poll_ms` (did you mean `worker.poll_interval_ms`?)"),
            "{err}"
        );
        let err =
            Config::load_with_env(None, env(&[("ZDEL__NOTHING__LIKE_THIS", "5")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown configuration key `nothing`; every key is listed in config/default.toml"
        );
        assert!(known_keys().contains(&"limits.max_deletions_per_day".to_string()));
    }
}
