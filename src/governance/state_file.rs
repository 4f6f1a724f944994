//! The state file: config, switches and static providers in a TOML file people
//! edit by hand, the registry of a process run without ZooKeeper.
//!
//! ```toml
//! # App-wide config and switches of app "demo".
//! [apps.demo.config]
//! greeting = "hello"
//! limits = '{"max": 10}'          # structured values are JSON inside a string
//! [apps.demo.switches]
//! relay = "on"                    # "on", "off" or JSON
//!
//! # Overrides for cluster "main" of app "demo" (they win over the app's values).
//! [apps.demo.clusters.main.config]
//! greeting = "hello from main"
//!
//! # Static providers of demo/main.
//! [[apps.demo.clusters.main.providers]]
//! host = "127.0.0.1"
//! port = 9090
//! weight = 100                    # optional, default 100
//! ```
//!
//! Values are strings; numbers and booleans are taken as their text.

use std::collections::BTreeMap;
use std::path::Path;

use toml_edit::{DocumentMut, Item, Table};

use super::layout::{Kind, Layout};
use crate::control::{check_name, Provider, Switch};

/// A state file's contents: folder path (as in ZooKeeper) → child → value.
pub type Folders = BTreeMap<String, Vec<(String, Vec<u8>)>>;

/// Reads and checks a state file.
pub fn load(path: &Path, layout: &Layout) -> Result<Folders, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the state file {}: {e}", path.display()))?;
    parse(&text, layout).map_err(|e| format!("state file {}: {e}", path.display()))
}

/// Parses a state file's text.
pub fn parse(text: &str, layout: &Layout) -> Result<Folders, String> {
    let doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        e.to_string()
            .lines()
            .next()
            .unwrap_or("bad TOML")
            .to_string()
    })?;
    let mut out = Folders::new();
    let Some(apps) = doc.get("apps") else {
        return Ok(out);
    };
    let apps = apps.as_table_like().ok_or("`apps` must be a table")?;
    for (app, item) in apps.iter() {
        check_name(app, "app")?;
        let t = item
            .as_table_like()
            .ok_or(format!("apps.{app} must be a table"))?;
        for (key, item) in t.iter() {
            match key {
                "config" | "switches" => {
                    let kind = if key == "config" {
                        Kind::Config
                    } else {
                        Kind::Switches
                    };
                    let values = values(item, &format!("apps.{app}.{key}"), kind)?;
                    out.insert(layout.folder(app, None, kind), values);
                }
                "clusters" => {
                    let clusters = item
                        .as_table_like()
                        .ok_or(format!("apps.{app}.clusters must be a table"))?;
                    for (cluster, item) in clusters.iter() {
                        check_name(cluster, "cluster")?;
                        cluster_folders(&mut out, layout, app, cluster, item)?;
                    }
                }
                other => {
                    return Err(format!(
                        "apps.{app}.{other}: expected config, switches or clusters"
                    ))
                }
            }
        }
    }
    Ok(out)
}

/// The apps given config or switches in `folders` when `app` is given nothing at
/// all: the sign of a file written under another app name than the process's.
pub fn other_apps(folders: &Folders, layout: &Layout, app: &str) -> Vec<String> {
    let apps = format!("{}/", layout.apps());
    let own = format!("{apps}{app}/");
    if folders.keys().any(|p| p.starts_with(&own)) {
        return Vec::new();
    }
    let mut others: Vec<String> = folders
        .iter()
        .filter(|(p, v)| !v.is_empty() && !p.ends_with(Kind::Providers.folder()))
        .filter_map(|(p, _)| Some(p.strip_prefix(&apps)?.split('/').next()?.to_string()))
        .collect();
    others.dedup(); // the paths are in order, each app's together
    others
}

fn cluster_folders(
    out: &mut Folders,
    layout: &Layout,
    app: &str,
    cluster: &str,
    item: &Item,
) -> Result<(), String> {
    let at = format!("apps.{app}.clusters.{cluster}");
    let t = item
        .as_table_like()
        .ok_or(format!("{at} must be a table"))?;
    for (key, item) in t.iter() {
        let kind = match key {
            "config" => Kind::Config,
            "switches" => Kind::Switches,
            "providers" => Kind::Providers,
            other => {
                return Err(format!(
                    "{at}.{other}: expected config, switches or providers"
                ))
            }
        };
        let values = if kind == Kind::Providers {
            providers(item, &format!("{at}.providers"))?
        } else {
            values(item, &format!("{at}.{key}"), kind)?
        };
        out.insert(layout.folder(app, Some(cluster), kind), values);
    }
    Ok(())
}

/// The values of a config or switches table; a switch must read as one.
fn values(item: &Item, at: &str, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, String> {
    let t = item
        .as_table_like()
        .ok_or(format!("{at} must be a table"))?;
    t.iter()
        .map(|(k, v)| {
            check_name(k, "key")?;
            let v = v.as_value().ok_or(format!("{at}.{k} must be a value"))?;
            let text = match v {
                toml_edit::Value::String(s) => s.value().clone(),
                toml_edit::Value::Integer(_)
                | toml_edit::Value::Float(_)
                | toml_edit::Value::Boolean(_) => v.to_string().trim().to_string(),
                _ => {
                    return Err(format!(
                        "{at}.{k}: use a string (JSON inside a string for structured values)"
                    ))
                }
            };
            if kind == Kind::Switches {
                Switch::parse(&text).map_err(|e| format!("{at}.{k}: {e}"))?;
            }
            Ok((k.to_string(), text.into_bytes()))
        })
        .collect()
}

fn providers(item: &Item, at: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let list = item
        .as_array_of_tables()
        .ok_or(format!("{at} must be a list of tables ([[{at}]])"))?;
    list.iter()
        .map(|t: &Table| {
            let host = t
                .get("host")
                .and_then(Item::as_str)
                .ok_or(format!("{at}: each provider needs host = \"…\""))?;
            let port = t
                .get("port")
                .and_then(Item::as_integer)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or(format!("{at}: each provider needs port = 1..65535"))?;
            let weight = match t.get("weight") {
                None => crate::client::node::DEFAULT_WEIGHT,
                Some(w) => w
                    .as_integer()
                    .and_then(|w| u32::try_from(w).ok())
                    .ok_or(format!("{at}: weight must be a non-negative integer"))?,
            };
            let p = Provider {
                host: host.into(),
                port,
                cores: 0,
                weight,
                version: String::new(),
                pid: 0,
                started_at_ms: 0,
                addr: None,
            };
            let json = serde_json::to_vec(&p).expect("a provider serialises");
            Ok((super::layout::provider_node(host, port), json))
        })
        .collect()
}

/// Sets (`Some`) or removes (`None`) one config value or switch in the file at
/// `path` (created when missing), keeping its comments and layout; written
/// atomically.
pub fn edit(
    path: &Path,
    app: &str,
    cluster: Option<&str>,
    kind: Kind,
    key: &str,
    value: Option<&str>,
) -> Result<(), String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(format!(
                "cannot read the state file {}: {e}",
                path.display()
            ))
        }
    };
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        format!(
            "state file {}: {}",
            path.display(),
            e.to_string().lines().next().unwrap_or("bad TOML")
        )
    })?;
    let mut keys = vec!["apps", app];
    if let Some(c) = cluster {
        keys.extend(["clusters", c]);
    }
    keys.push(kind.folder());
    let mut table = doc.as_table_mut();
    for k in &keys {
        let entry = table.entry(k).or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        });
        table = entry.as_table_mut().ok_or(format!(
            "state file {}: {} is not a table",
            path.display(),
            keys.join(".")
        ))?;
    }
    table.set_implicit(false);
    match value {
        Some(v) => {
            table.insert(key, toml_edit::value(v));
        }
        None => {
            if table.remove(key).is_none() {
                return Err(format!("{} has no {key}", keys.join(".")));
            }
        }
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, doc.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write the state file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("state_file.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let layout = Layout::new("/ringsoa").unwrap();
        let f = parse(&doc, &layout).unwrap();
        assert_eq!(
            f["/ringsoa/apps/demo/config"],
            vec![
                ("greeting".to_string(), b"hello".to_vec()),
                ("limits".to_string(), br#"{"max": 10}"#.to_vec())
            ]
        );
        let p = &f["/ringsoa/apps/demo/clusters/main/providers"];
        assert_eq!(p[0].0, "127.0.0.1:9090");
        assert!(String::from_utf8_lossy(&p[0].1).contains("\"weight\":100"));
    }

    #[test]
    fn a_file_for_another_app_name_is_told() {
        let l = Layout::new("/ringsoa").unwrap();
        let f = parse(
            "[apps.demo.config]\nk = 1\n[apps.demo.clusters.c.switches]\ns = 'on'\n\
             [[apps.users.clusters.main.providers]]\nhost = 'h'\nport = 1\n",
            &l,
        )
        .unwrap();
        assert_eq!(other_apps(&f, &l, "ringsoa-demo"), ["demo"]);
        assert!(other_apps(&f, &l, "demo").is_empty());
        // Only providers of other services: a consumer's file, nothing amiss.
        let f = parse(
            "[[apps.users.clusters.main.providers]]\nhost = 'h'\nport = 1\n",
            &l,
        );
        assert!(other_apps(&f.unwrap(), &l, "front").is_empty());
        // An empty table of its own is the app's (all defaults), not a mistake.
        let f = parse("[apps.front.config]\n[apps.demo.config]\nk = 1\n", &l);
        assert!(other_apps(&f.unwrap(), &l, "front").is_empty());
    }

    #[test]
    fn mistakes_are_named() {
        let layout = Layout::new("/r").unwrap();
        for (text, says) in [
            ("apps = 3", "`apps` must be a table"),
            (
                "[apps.demo.confg]\nk = \"v\"",
                "expected config, switches or clusters",
            ),
            ("[apps.demo.config]\nk = [1]", "use a string"),
            ("[[apps.d.clusters.c.providers]]\nport = 1", "needs host"),
            ("[apps.\"a b\".config]", "bad app name"),
            ("[apps.demo", "TOML parse error"),
            (
                "[apps.demo.clusters.main.switches]\nrelay = \"maybe\"",
                "apps.demo.clusters.main.switches.relay: a switch is on, off or JSON",
            ),
        ] {
            let e = parse(text, &layout).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn edits_keep_comments() {
        let path = std::env::temp_dir().join(format!("ringsoa-state-{}.toml", std::process::id()));
        std::fs::write(&path, "# mine\n[apps.demo.config]\nk = \"v\" # keep\n").unwrap();
        edit(&path, "demo", Some("main"), Kind::Switches, "s", Some("on")).unwrap();
        edit(&path, "demo", None, Kind::Config, "n", Some("1")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# mine") && text.contains("# keep"), "{text}");
        let f = parse(&text, &Layout::new("/r").unwrap()).unwrap();
        assert_eq!(
            f["/r/apps/demo/clusters/main/switches"],
            vec![("s".to_string(), b"on".to_vec())]
        );
        assert_eq!(f["/r/apps/demo/config"].len(), 2);
        edit(&path, "demo", None, Kind::Config, "k", None).unwrap();
        assert!(edit(&path, "demo", None, Kind::Config, "k", None)
            .unwrap_err()
            .contains("has no k"));
        let _ = std::fs::remove_file(&path);
    }
}
