//! Access control by caller: allow and deny lists of caller app ids (the tracking
//! handshake's identity), for the whole service and per method, from config
//! (changed live), and a policy for native callers (no handshake, no identity).
//!
//! Config keys (a list is a JSON array of strings or comma-separated names):
//! `acl.allow`, `acl.deny`, `acl.<method>.allow`, `acl.<method>.deny`, and
//! `acl.native` = `allow` (default) or `deny`. A method's allow list replaces the
//! service's; deny lists add up; deny wins over allow.

use std::collections::HashMap;

use super::bad_value::{self, BadValues};
use super::Knows;
use crate::control::Snapshot;
use crate::rpc::refusal;

/// One allow list (absent: everyone) and one deny list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Lists {
    allow: Option<Vec<String>>,
    deny: Vec<String>,
}

/// The access rules (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    service: Lists,
    methods: HashMap<String, Lists>,
    deny_native: bool,
}

/// A list's names: a JSON array of strings, or comma-separated names; a value
/// that opens a JSON array but is not one is an error, not a name `[a`.
fn list(v: &str) -> Result<Vec<String>, String> {
    if v.trim_start().starts_with('[') {
        return serde_json::from_str(v).map_err(|e| format!("not a JSON list of app ids ({e})"));
    }
    Ok(v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

impl Acl {
    /// The rules in `snap`'s config (none: everyone may call everything). A key
    /// that is none of the module docs' keys, names a method the service does not
    /// have (by `knows`, when given), or has a value that is not what its key
    /// takes, is left out and noted in `bad`.
    pub fn from_config(snap: Option<&Snapshot>, knows: Knows<'_>, bad: &mut BadValues) -> Acl {
        let mut acl = Acl::default();
        let Some(snap) = snap else { return acl };
        for (key, value) in snap.config.range("acl.".to_string()..) {
            let Some(rest) = key.strip_prefix("acl.") else {
                break;
            };
            let (lists, which) = match rest.rsplit_once('.') {
                None if rest == "native" => {
                    match value.trim() {
                        "allow" => acl.deny_native = false,
                        "deny" => acl.deny_native = true,
                        _ => bad.note(
                            key,
                            value,
                            "neither allow nor deny",
                            "native callers are allowed",
                        ),
                    }
                    continue;
                }
                None => (&mut acl.service, rest),
                Some((method, _)) if bad_value::unknown(knows, method) => {
                    let why = format!("{method} is no method of this service");
                    bad.note(key, value, why, "the key is not in force");
                    continue;
                }
                Some((method, which)) if !method.is_empty() => {
                    (acl.methods.entry(method.into()).or_default(), which)
                }
                Some(_) => (&mut acl.service, ""),
            };
            let names = list(value);
            match (which, names) {
                ("allow", Ok(names)) => lists.allow = Some(names),
                ("deny", Ok(names)) => lists.deny = names,
                ("allow" | "deny", Err(why)) => {
                    bad.note(key, value, why, "the key is not in force");
                }
                _ => bad.note(
                    key,
                    value,
                    "not acl.allow, acl.deny, acl.native, acl.<method>.allow or acl.<method>.deny",
                    "the key is not in force",
                ),
            }
        }
        acl.methods.retain(|_, l| *l != Lists::default());
        acl
    }

    /// Whether there are no rules at all (every call passes).
    pub fn is_open(&self) -> bool {
        // Field by field: comparing with a default value built (and dropped) one on
        // every call.
        let s = &self.service;
        s.allow.is_none() && s.deny.is_empty() && self.methods.is_empty() && !self.deny_native
    }

    /// Whether `caller` (empty for a native caller) may call `method`; the refusal's
    /// message otherwise.
    pub fn check(&self, caller: &str, app: &str, method: &str) -> Result<(), String> {
        if caller.is_empty() {
            return if self.deny_native {
                Err(refusal::denied(
                    format_args!("native callers (no tracking handshake, so no app id)"),
                    format_args!("{app}.{method}"),
                    "acl.native = deny",
                ))
            } else {
                Ok(())
            };
        }
        let m = self.methods.get(method);
        let denied = self
            .service
            .deny
            .iter()
            .chain(m.map_or(&[][..], |m| &m.deny[..]))
            .any(|d| d == caller);
        let allow = m
            .and_then(|m| m.allow.as_ref())
            .or(self.service.allow.as_ref());
        if denied || allow.is_some_and(|a| !a.iter().any(|x| x == caller)) {
            let method = format_args!("{app}.{method}");
            return Err(refusal::denied(
                format_args!("caller {caller}"),
                method,
                "acl",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The rules of config `pairs`, and the keys they left out.
    fn parsed(pairs: &[(&str, &str)]) -> (Acl, Vec<String>) {
        let mut s = Snapshot::empty("a", "c");
        for (k, v) in pairs {
            Arc::make_mut(&mut s.config).insert(k.to_string(), v.to_string());
        }
        let mut bad = BadValues::default();
        let knows = |m: &[u8]| m != b"nope";
        let acl = Acl::from_config(Some(&s), Some(&knows), &mut bad);
        (acl, bad.iter().map(|b| b.key.clone()).collect())
    }

    fn acl(pairs: &[(&str, &str)]) -> Acl {
        let (acl, bad) = parsed(pairs);
        assert!(bad.is_empty(), "{bad:?}");
        acl
    }

    #[test]
    fn lists_and_the_native_policy() {
        assert!(acl(&[("other", "x")]).is_open());
        let a = acl(&[
            ("acl.allow", "web, api"),
            ("acl.deny", "[\"bad\"]"),
            ("acl.secret.allow", "admin"),
            ("acl.echo.deny", "api"),
        ]);
        assert!(a.check("web", "svc", "ping").is_ok());
        assert!(a
            .check("bad", "svc", "ping")
            .unwrap_err()
            .contains("caller bad may not call svc.ping"));
        assert!(
            a.check("other", "svc", "ping").is_err(),
            "not on the allow list"
        );
        assert!(
            a.check("admin", "svc", "secret").is_ok(),
            "the method's list replaces the service's"
        );
        assert!(a.check("web", "svc", "secret").is_err());
        assert!(a.check("api", "svc", "echo").is_err(), "deny lists add up");
        assert!(
            a.check("", "svc", "ping").is_ok(),
            "native callers allowed by default"
        );
        let n = acl(&[("acl.native", "deny")]);
        assert!(n
            .check("", "svc", "ping")
            .unwrap_err()
            .contains("native callers"));
        assert!(n.check("anyone", "svc", "ping").is_ok());
    }

    #[test]
    fn a_value_its_key_does_not_take_is_left_out_and_noted() {
        let (a, bad) = parsed(&[
            ("acl.allow", "[\"web\", \"api\""),
            ("acl.deny", "evil"),
            ("acl.native", "Deny"),
            ("acl.echo.alow", "web"),
            ("acl.echo", "web"),
            ("acl..deny", "web"),
            ("acl.nope.deny", "evil"),
        ]);
        assert_eq!(
            bad,
            [
                "acl..deny",
                "acl.allow",
                "acl.echo",
                "acl.echo.alow",
                "acl.native",
                "acl.nope.deny"
            ]
        );
        // A broken JSON list is no list of the names "[\"web\"" and "\"api\"",
        // which would have refused every caller.
        assert!(a.check("web", "svc", "ping").is_ok());
        assert!(a.check("evil", "svc", "ping").is_err(), "the rest holds");
        assert!(a.check("", "svc", "ping").is_ok(), "native: the default");
        assert_eq!(a, acl(&[("acl.deny", "evil")]), "no method rules made");
    }
}
