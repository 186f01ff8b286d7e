//! `mttx.toml`: every command's settings in one file, named by `--config FILE` or
//! `MTTX_CONFIG`. Top-level keys are the settings every command takes (`source`, `facts`,
//! `state`, `log_format`, …); a table names a command (`[serve]`, `[etl.run]`,
//! `[report.weekly]`) and holds its settings, each named as its flag without the dashes
//! (`cache_mib` or `cache-mib` for `--cache-mib`); a setting written KEY=VALUE on the
//! command line (`--to Payments=lead@example.com`) may be a table of its own
//! (`[report.send.to]`, `"Payments" = ["lead@example.com"]`). The file gives defaults: a setting's
//! environment variable overrides the file, and its flag overrides both. Each value is
//! checked as its flag's would be, and a key that names no setting is refused with its
//! place in the file.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

/// The environment variable naming the configuration file.
pub const ENV: &str = "MTTX_CONFIG";

/// One setting the file gives: the command it belongs to (subcommand names from the top),
/// the argument's id, and its value(s) as the command line would write them.
#[derive(Debug, Clone)]
pub struct Setting {
    path: Vec<String>,
    id: String,
    values: Vec<String>,
}

#[cfg(test)]
impl Setting {
    fn key(&self) -> String {
        let mut parts = self.path.clone();
        parts.push(self.id.clone());
        parts.join(".")
    }
}

/// A configuration file read and checked against the command line's settings.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub file: Option<PathBuf>,
    settings: Vec<Setting>,
}

/// The file named by `--config` among `args`, else by `MTTX_CONFIG` (None: no file).
fn named(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(a) = args.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(file) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(file));
        }
    }
    std::env::var_os(ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl Config {
    /// Reads the file `args` or the environment name, if any, and checks every key and
    /// value against `command`'s settings.
    pub fn load(command: &Command, args: &[OsString]) -> Result<Self, String> {
        let Some(file) = named(args) else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read the configuration file {}: {e}", file.display()))?;
        let mut config = Self::parse(command, &text)
            .map_err(|e| format!("in the configuration file {}: {e}", file.display()))?;
        config.file = Some(file);
        Ok(config)
    }

    /// `text` (TOML) checked against `command`'s settings.
    pub fn parse(command: &Command, text: &str) -> Result<Self, String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let mut command = command.clone();
        command.build();
        let mut settings = Vec::new();
        walk(&command, &[], &table, &mut settings)?;
        Ok(Self {
            file: None,
            settings,
        })
    }

    /// `command` with the file's settings as its defaults (under the environment's and
    /// the flags').
    pub fn apply(&self, mut command: Command) -> Command {
        for s in &self.settings {
            command = set(command, &s.path, &s.id, &s.values);
        }
        command
    }

    /// Whether the file gives the setting `id` of the command at `path`.
    fn gives(&self, path: &[String], id: &str) -> bool {
        self.settings.iter().any(|s| s.path == path && s.id == id)
    }
}

/// Collects the settings of `table`, the table of the command at `path`.
fn walk(
    command: &Command,
    path: &[String],
    table: &toml::Table,
    out: &mut Vec<Setting>,
) -> Result<(), String> {
    for (key, value) in table {
        let name = key.replace('-', "_");
        let mut here: Vec<String> = path.to_vec();
        if let toml::Value::Table(inner) = value
            && !command
                .get_arguments()
                .any(|a| !a.is_positional() && key_of(a) == name)
        {
            let Some(sub) = command
                .get_subcommands()
                .find(|s| s.get_name().replace('-', "_") == name)
            else {
                here.push(key.clone());
                return Err(format!(
                    "[{}] names no command; commands here: {}",
                    here.join("."),
                    names(command.get_subcommands().map(Command::get_name))
                ));
            };
            here.push(sub.get_name().to_owned());
            walk(sub, &here, inner, out)?;
            continue;
        }
        let place = if path.is_empty() {
            key.clone()
        } else {
            format!("[{}] {key}", path.join("."))
        };
        let settable = |a: &&Arg| {
            !a.is_positional()
                && !matches!(a.get_id().as_str(), "help" | "version" | "config")
                // Settings every command takes belong at the top of the file.
                && (path.is_empty() || !a.is_global_set())
        };
        let Some(arg) = command
            .get_arguments()
            .filter(settable)
            .find(|a| key_of(a) == name)
        else {
            let known: Vec<String> = command
                .get_arguments()
                .filter(settable)
                .map(key_of)
                .collect();
            let global = !path.is_empty()
                && command
                    .get_arguments()
                    .any(|a| a.is_global_set() && key_of(a) == name);
            return Err(if global {
                format!(
                    "{place}: `{name}` is a setting of every command: put it at the top of the file, before any [table]"
                )
            } else if known.is_empty() {
                format!(
                    "{place}: unknown key `{key}`; this command has no settings, only commands: {}",
                    names(command.get_subcommands().map(Command::get_name))
                )
            } else {
                format!(
                    "{place}: unknown key `{key}`; settings here: {}",
                    names(known.iter().map(String::as_str))
                )
            });
        };
        let values = match value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>(),
            // A table of KEY=VALUE settings (`[report.send.to]`): each key with each of its
            // values.
            toml::Value::Table(pairs) => pairs
                .iter()
                .map(|(k, v)| match v {
                    toml::Value::Array(items) => items
                        .iter()
                        .map(|i| scalar(i).map(|i| format!("{k}={i}")))
                        .collect::<Option<Vec<_>>>(),
                    v => scalar(v).map(|v| vec![format!("{k}={v}")]),
                })
                .collect::<Option<Vec<Vec<String>>>>()
                .map(|v| v.concat()),
            v => scalar(v).map(|s| vec![s]),
        }
        .ok_or_else(|| format!("{place}: give a string, number, boolean or a list of them"))?;
        for v in &values {
            check(arg, v).map_err(|why| format!("{place} = {value}: {why}"))?;
        }
        out.push(Setting {
            path: path.to_vec(),
            id: arg.get_id().as_str().to_owned(),
            values,
        });
    }
    Ok(())
}

/// Whether `value` is one `arg` takes: parsed by the flag's own parser, or for a switch,
/// `true` or `false`.
fn check(arg: &Arg, value: &str) -> Result<(), String> {
    if !arg.get_action().takes_values() {
        return match value {
            "true" | "false" => Ok(()),
            _ => Err("give true or false".to_owned()),
        };
    }
    let probe = Command::new("mttx").no_binary_name(true).arg(
        Arg::new("value")
            .long("value")
            .action(ArgAction::Set)
            .allow_hyphen_values(true)
            .value_parser(arg.get_value_parser().clone()),
    );
    probe
        .try_get_matches_from(["--value", value])
        .map(|_| ())
        .map_err(|e| {
            let e = e.to_string();
            e.lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .replace(" for '--value <value>'", "")
        })
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

/// The file's key of `arg`: its flag without the dashes, in snake case (`--team` is `team`
/// even where the argument's id is `teams`).
fn key_of(arg: &Arg) -> String {
    arg.get_long()
        .unwrap_or_else(|| arg.get_id().as_str())
        .replace('-', "_")
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.filter(|n| *n != "help").collect();
    names.sort_unstable();
    names.join(", ")
}

/// `command` with `values` as the default of `id` in its subcommand at `path`.
fn set(command: Command, path: &[String], id: &str, values: &[String]) -> Command {
    match path.split_first() {
        Some((first, rest)) => command.mut_subcommand(first, |sub| set(sub, rest, id, values)),
        None => {
            let id = id.to_owned();
            command.mut_arg(id, |a| {
                a.required(false)
                    .default_values(values.iter().map(|v| clap::builder::OsStr::from(v.clone())))
            })
        }
    }
}

/// The settings `matches` (of the command at `path`, and the ones above it) resolved to,
/// with where each came from: a flag, the environment, the file or mttx's default. One
/// line each: `key = value  # from`.
pub fn describe(command: &Command, matches: &ArgMatches, config: &Config) -> String {
    let mut out = String::new();
    if let Some(file) = &config.file {
        out.push_str(&format!("# configuration file: {}\n", file.display()));
    }
    let mut command = command.clone();
    command.build();
    let mut path: Vec<String> = Vec::new();
    let (mut cmd, mut m) = (&command, matches);
    loop {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_positional()
                || matches!(id, "help" | "version")
                || (!path.is_empty() && arg.is_global_set())
            {
                continue;
            }
            let Some(values) = m.get_raw(id) else {
                continue;
            };
            let values: Vec<String> = values.map(|v| v.to_string_lossy().into_owned()).collect();
            let from = match m.value_source(id) {
                Some(ValueSource::CommandLine) => "flag".to_owned(),
                Some(ValueSource::EnvVariable) => format!(
                    "environment {}",
                    arg.get_env()
                        .map(OsStr::to_string_lossy)
                        .unwrap_or_default()
                ),
                Some(ValueSource::DefaultValue) if config.gives(&path, id) => "file".to_owned(),
                _ => "default".to_owned(),
            };
            let key = if path.is_empty() {
                key_of(arg)
            } else {
                format!("{}.{}", path.join("."), key_of(arg))
            };
            let value = match values.as_slice() {
                [one] => toml::Value::String(one.clone()).to_string(),
                many => toml::Value::Array(
                    many.iter()
                        .map(|v| toml::Value::String(v.clone()))
                        .collect(),
                )
                .to_string(),
            };
            out.push_str(&format!("{key} = {value}  # {from}\n"));
        }
        let Some((name, sub)) = m.subcommand() else {
            break;
        };
        let Some(next) = cmd.find_subcommand(name) else {
            break;
        };
        path.push(name.to_owned());
        cmd = next;
        m = sub;
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::cli::Cli;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(&Cli::command(), text)
    }

    #[test]
    fn the_shipped_example_parses() {
        let config = parse(include_str!("../../../mttx.example.toml")).unwrap();
        let keys: Vec<String> = config.settings.iter().map(Setting::key).collect();
        for key in [
            "source",
            "facts",
            "etl.run.workers",
            "serve.cache_mib",
            "report.weekly.format",
            "report.send.to",
            "report.send.every",
        ] {
            assert!(keys.contains(&key.to_owned()), "{key} not in {keys:?}");
        }
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_name_and_place() {
        let e = parse("[serve]\ncache_mb = 64\n").unwrap_err();
        assert!(
            e.contains("[serve] cache_mb") && e.contains("cache_mib"),
            "{e}"
        );
        let e = parse("sorce = \"x\"\n").unwrap_err();
        assert!(e.contains("unknown key `sorce`"), "{e}");
        let e = parse("[serv]\nlisten = \"x\"\n").unwrap_err();
        assert!(e.contains("[serv] names no command"), "{e}");
    }

    #[test]
    fn a_table_gives_key_value_settings() {
        let config = parse(
            "[report.send.to]\n\"7\" = [\"a@example.com\", \"b@example.com\"]\n\"*\" = \"ops@example.com\"\n",
        )
        .unwrap();
        let to = &config.settings[0];
        assert_eq!(to.key(), "report.send.to");
        assert_eq!(
            to.values,
            ["*=ops@example.com", "7=a@example.com", "7=b@example.com"]
        );
        let e = parse("[report.send.to]\n\"7\" = \"not an address\"\n").unwrap_err();
        assert!(
            e.contains("[report.send] to") && e.contains("not a mail address"),
            "{e}"
        );
    }

    #[test]
    fn a_value_is_checked_as_its_flag_would_be() {
        let e = parse("[serve]\ncache_mib = \"lots\"\n").unwrap_err();
        assert!(e.contains("[serve] cache_mib"), "{e}");
        let e = parse("log_format = \"xml\"\n").unwrap_err();
        assert!(e.contains("log_format"), "{e}");
        let e = parse("[serve]\nsource = \"x\"\n").unwrap_err();
        assert!(e.contains("top of the file"), "{e}");
        assert!(parse("[serve]\ncache-mib = 64\n").is_ok());
    }

    #[test]
    fn a_key_is_its_flag_even_where_the_argument_is_named_otherwise() {
        // `report send --team` keeps its values in `teams`: the file says `team`, as the flag.
        let config = parse("[report.send]\nteam = [\"Payments\", \"7\"]\n").unwrap();
        let command = config.apply(Cli::command());
        let m = command.get_matches_from(["mttx", "report", "send", "--account", "1"]);
        let send = m
            .subcommand_matches("report")
            .and_then(|r| r.subcommand_matches("send"))
            .unwrap();
        let teams: Vec<&String> = send.get_many::<String>("teams").unwrap().collect();
        assert_eq!(teams, ["Payments", "7"]);
        let e = parse("[report.send]\nteams = [\"Payments\"]\n").unwrap_err();
        assert!(
            e.contains("unknown key `teams`") && e.contains("team,"),
            "{e}"
        );
    }

    #[test]
    fn the_file_gives_defaults_under_the_flags() {
        let config = parse("[serve]\ncache_mib = 64\n").unwrap();
        let command = config.apply(Cli::command());
        let from_file = command.clone().get_matches_from(["mttx", "serve"]);
        let serve = from_file.subcommand_matches("serve").unwrap();
        assert_eq!(serve.get_one::<u64>("cache_mib"), Some(&64));
        let flagged = command.get_matches_from(["mttx", "serve", "--cache-mib", "8"]);
        let serve = flagged.subcommand_matches("serve").unwrap();
        assert_eq!(serve.get_one::<u64>("cache_mib"), Some(&8));
    }
}
