//! Job configuration: a TOML file plus nanoGPT-style `--key=value` overrides, validated against
//! the known keys (an unknown key is an error with a did-you-mean).

use crate::util::fsutil;
use crate::{Error, Result};
use serde::{Serialize, de::DeserializeOwned};
use std::path::Path;
use toml::{Table, Value};

/// "a", "a or b", "a, b or c": the accepted values of a choice, for messages.
pub fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Declares an enum for a closed choice written as a string in configs and on the command line:
/// `FromStr`, `Display`, and serde as that string; an unknown value is the error
/// "KEY must be a, b or c, got 'x'". One variant carries `#[default]`.
#[macro_export]
macro_rules! choice {
    ($(#[$m:meta])* $vis:vis enum $name:ident ($key:literal) {
        $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)?
    }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        $vis enum $name { $($(#[$vm])* $var),+ }

        impl $name {
            /// Every accepted value, as written.
            pub const NAMES: &'static [&'static str] = &[$($s),+];

            /// The value as written in configs.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$var => $s),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::Error;
            fn from_str(s: &str) -> $crate::Result<Self> {
                match s {
                    $($s => Ok(Self::$var),)+
                    other => Err($crate::Error::Config(format!(
                        "{} must be {}, got '{other}'",
                        $key,
                        $crate::config::one_of(Self::NAMES)
                    ))),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> std::result::Result<Self, String> {
                s.parse().map_err(|e: $crate::Error| match e {
                    $crate::Error::Config(m) => m,
                    other => other.to_string(),
                })
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Levenshtein distance, for did-you-mean suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest known key, when one is close enough to be a likely typo.
pub fn did_you_mean<'a>(key: &str, known: impl Iterator<Item = &'a String>) -> Option<&'a str> {
    known
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Deserialises a seed key: any u64, also written as a decimal string. TOML integers stop at
/// 2^63 − 1 while the seeds the tools derive (and write into their JSON) do not; an override
/// above that range reaches the config as text (see [`parse_value`]).
pub fn seed<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    struct Seed;
    impl serde::de::Visitor<'_> for Seed {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a seed: an integer from 0 to 18446744073709551615")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(format!("a seed cannot be negative ({v})")))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<u64, E> {
            v.trim().parse().map_err(|_| {
                E::custom(format!(
                    "a seed is an integer from 0 to 18446744073709551615, not {v:?}"
                ))
            })
        }
    }
    d.deserialize_any(Seed)
}

/// A config as TOML text (what `--print-config` prints). An integer above TOML's range (a u64
/// seed) is written as its decimal text, which [`seed`] reads back.
pub fn to_toml<T: Serialize>(cfg: &T) -> Result<String> {
    fn convert(v: serde_json::Value) -> Option<Value> {
        use serde_json::Value as J;
        Some(match v {
            J::Null => return None,
            J::Bool(b) => Value::Boolean(b),
            J::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Value::Integer(i),
                (None, Some(u)) => Value::String(u.to_string()),
                _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::String(s),
            J::Array(a) => Value::Array(a.into_iter().filter_map(convert).collect()),
            J::Object(o) => Value::Table(
                o.into_iter()
                    .filter_map(|(k, v)| convert(v).map(|v| (k, v)))
                    .collect(),
            ),
        })
    }
    let json = serde_json::to_value(cfg).map_err(|e| Error::Config(e.to_string()))?;
    match convert(json) {
        Some(Value::Table(t)) => toml::to_string(&t).map_err(|e| Error::Config(e.to_string())),
        _ => Err(Error::Config("a config must be a table of keys".into())),
    }
}

/// Parses an override value in the type of the key's default. An integer above TOML's range
/// (a u64 seed) is kept as its text for [`seed`] to read.
fn parse_value(key: &str, raw: &str, default: &Value) -> Result<Value> {
    let bad = |what: &str| Error::Config(format!("--{key}={raw}: expected {what}"));
    Ok(match default {
        Value::Integer(_) => match raw.parse::<i64>() {
            Ok(v) => Value::Integer(v),
            Err(_) if raw.parse::<u64>().is_ok() => Value::String(raw.to_string()),
            Err(_) => return Err(bad("an integer")),
        },
        Value::Float(_) => Value::Float(raw.parse().map_err(|_| bad("a number"))?),
        Value::Boolean(_) => Value::Boolean(match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(bad("true or false")),
        }),
        // A list is written comma-separated, its items typed as the default's first item (an
        // empty default: integers when every item is one, which float fields read too; else
        // numbers when every item is one; else strings).
        Value::Array(items) => {
            let parts: Vec<&str> = raw
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            let numeric = parts.iter().all(|p| p.parse::<f64>().is_ok());
            let integral = parts.iter().all(|p| p.parse::<i64>().is_ok());
            let item = match items.first() {
                Some(v) => v.clone(),
                None if integral && !parts.is_empty() => Value::Integer(0),
                None if numeric && !parts.is_empty() => Value::Float(0.0),
                None => Value::String(String::new()),
            };
            Value::Array(
                parts
                    .iter()
                    .map(|p| parse_value(key, p, &item))
                    .collect::<Result<Vec<_>>>()?,
            )
        }
        _ => Value::String(raw.to_string()),
    })
}

/// Parsed `--key=value` overrides: (snake_case key, raw value).
pub type Overrides = Vec<(String, String)>;

/// Splits command-line overrides (`--key=value` or `--key value`, kebab or snake case) into
/// (snake_key, value) pairs.
pub fn parse_overrides(args: &[String]) -> Result<Overrides> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let Some(body) = a.strip_prefix("--") else {
            return Err(Error::Config(format!(
                "unexpected argument '{a}': overrides are written --key=value"
            )));
        };
        let (k, v) = match body.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => {
                let v = args.get(i + 1).ok_or_else(|| {
                    Error::Config(format!("--{body} needs a value: write --{body}=VALUE"))
                })?;
                i += 1;
                (body.to_string(), v.clone())
            }
        };
        out.push((k.replace('-', "_"), v));
        i += 1;
    }
    Ok(out)
}

/// The known key `key` of `defaults` (or its alias target; `None` = accepted and ignored).
fn resolve(
    defaults: &Table,
    key: &str,
    prefix: &str,
    origin: &str,
    aliases: &[(&str, Option<&str>)],
) -> Result<Option<String>> {
    if defaults.contains_key(key) {
        return Ok(Some(key.to_string()));
    }
    if let Some((_, target)) = aliases.iter().find(|(a, _)| *a == key) {
        return Ok(target.map(str::to_string));
    }
    let hint = did_you_mean(key, defaults.keys())
        .map(|k| format!(" (did you mean '{prefix}{k}'?)"))
        .unwrap_or_default();
    Err(Error::Config(format!(
        "unknown key '{prefix}{key}' in {origin}{hint}"
    )))
}

/// Merges `incoming` into `table`, checking every key (recursively in sub-tables such as
/// `[grpo]`) against `defaults`.
fn merge(
    table: &mut Table,
    defaults: &Table,
    incoming: Table,
    prefix: &str,
    origin: &str,
    aliases: &[(&str, Option<&str>)],
) -> Result<()> {
    for (k, v) in incoming {
        let Some(key) = resolve(defaults, &k, prefix, origin, aliases)? else {
            continue;
        };
        match (defaults.get(&key), v, table.get_mut(&key)) {
            (Some(Value::Table(d)), Value::Table(inc), Some(Value::Table(sub))) => {
                merge(sub, d, inc, &format!("{prefix}{key}."), origin, &[])?;
            }
            (_, v, _) => {
                table.insert(key, v);
            }
        }
    }
    Ok(())
}

/// Applies one `--key=value` override; `a.b` reaches key `b` of the sub-table `[a]`.
fn apply_override(
    table: &mut Table,
    defaults: &Table,
    path: &str,
    raw: &str,
    aliases: &[(&str, Option<&str>)],
) -> Result<()> {
    let (mut table, mut defaults, mut prefix) = (table, defaults, String::new());
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap_or(path);
    for p in parts {
        let key = resolve(defaults, p, &prefix, "the command line", &[])?;
        let (Some(Value::Table(d)), Some(Value::Table(t))) = (
            key.as_ref().and_then(|k| defaults.get(k)),
            key.as_ref().and_then(|k| table.get_mut(k)),
        ) else {
            return Err(Error::Config(format!(
                "--{path}: '{prefix}{p}' is not a section"
            )));
        };
        (table, defaults) = (t, d);
        prefix = format!("{prefix}{p}.");
    }
    let aliases = if prefix.is_empty() { aliases } else { &[] };
    if let Some(key) = resolve(defaults, last, &prefix, "the command line", aliases)? {
        let v = parse_value(&format!("{prefix}{key}"), raw, &defaults[&key])?;
        table.insert(key, v);
    }
    Ok(())
}

/// Builds a `T` from its defaults, then the TOML `file`, then `overrides` (in that order).
/// `aliases` maps extra accepted keys (e.g. nanoGPT keys we ignore) to `None`, or to the real key.
/// Sections (`[grpo]` in a file, `--grpo.max_steps=5` on the command line) are checked too.
pub fn load<T: Serialize + DeserializeOwned + Default>(
    file: Option<&Path>,
    overrides: &[(String, String)],
    aliases: &[(&str, Option<&str>)],
) -> Result<T> {
    let text = file.map(fsutil::read_text).transpose()?;
    let source = file.zip(text.as_deref());
    load_text(source, overrides, aliases)
}

/// [`load`] from a config's text (`source` = where it came from, for messages, and the text).
pub fn load_text<T: Serialize + DeserializeOwned + Default>(
    source: Option<(&Path, &str)>,
    overrides: &[(String, String)],
    aliases: &[(&str, Option<&str>)],
) -> Result<T> {
    let defaults = Table::try_from(T::default())
        .map_err(|e| Error::Config(format!("internal: cannot tabulate defaults: {e}")))?;
    let mut table = defaults.clone();
    if let Some((path, text)) = source {
        let parsed: Table = text.parse().map_err(|e: toml::de::Error| {
            let at = e.span().map_or(String::new(), |s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" at line {line}, column {col}")
            });
            Error::format(
                path,
                format!(
                    "invalid TOML{at}: {}",
                    e.message().trim().replace('\n', "; ")
                ),
            )
        })?;
        let origin = path.display().to_string();
        merge(&mut table, &defaults, parsed, "", &origin, aliases)?;
    }
    for (k, raw) in overrides {
        apply_override(&mut table, &defaults, k, raw, aliases)?;
    }
    // toml writes the key on a line of its own ("…\nin `loss`\n"): one line for the user.
    T::deserialize(table).map_err(|e| {
        let text = e.to_string();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        Error::Config(lines.join(" "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Default)]
    #[serde(default)]
    struct Seeded {
        #[serde(deserialize_with = "seed")]
        seed: u64,
        steps: u64,
    }

    #[test]
    fn seeds_take_the_whole_u64_range() {
        let load = |raw: &str| {
            load_text::<Seeded>(None, &[("seed".into(), raw.into())], &[]).map(|c| c.seed)
        };
        // A seed the cycle derives for its judge (above i64::MAX), and the range's ends.
        assert_eq!(load("13421438150813542917").unwrap(), 13421438150813542917);
        assert_eq!(load(&u64::MAX.to_string()).unwrap(), u64::MAX);
        assert_eq!(load("7").unwrap(), 7);
        for bad in ["-1", "18446744073709551616", "1e3", "x"] {
            assert!(load(bad).is_err(), "{bad}");
        }
        // A file may write a large seed as text; other integer keys keep TOML's range.
        let text = "seed = \"13421438150813542917\"";
        let c: Seeded = load_text(Some((Path::new("c.toml"), text)), &[], &[]).unwrap();
        assert_eq!(c.seed, 13421438150813542917);
        let big = [("steps".to_string(), "13421438150813542917".to_string())];
        assert!(load_text::<Seeded>(None, &big, &[]).is_err());
        // Printed (--print-config) and read back, every seed keeps its value.
        for seed in [0, 7, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
            let text = to_toml(&Seeded { seed, steps: 3 }).unwrap();
            let c: Seeded = load_text(Some((Path::new("c.toml"), &text)), &[], &[]).unwrap();
            assert_eq!((c.seed, c.steps), (seed, 3), "{text}");
        }
    }

    #[test]
    fn list_overrides_take_their_items_type() {
        let floats = Value::Array(vec![Value::Float(1.0)]);
        assert_eq!(
            parse_value("t", "0.6, 1.2", &floats).unwrap(),
            Value::Array(vec![Value::Float(0.6), Value::Float(1.2)])
        );
        let empty = Value::Array(vec![]);
        assert_eq!(
            parse_value("g", "a/ckpt,b/ckpt", &empty).unwrap(),
            Value::Array(vec![
                Value::String("a/ckpt".into()),
                Value::String("b/ckpt".into())
            ])
        );
        assert!(parse_value("t", "0.6,x", &floats).is_err());
        // An empty default: integers when every item is one, and they load as floats too.
        assert_eq!(
            parse_value("s", "3000, 1500", &empty).unwrap(),
            Value::Array(vec![Value::Integer(3000), Value::Integer(1500)])
        );
        #[derive(Serialize, Deserialize, Default)]
        #[serde(default)]
        struct Lists {
            steps: Vec<usize>,
            temps: Vec<f64>,
        }
        let ov = parse_overrides(&["--steps=3,4".into(), "--temps=1,0.5".into()]).unwrap();
        let c = load::<Lists>(None, &ov, &[]).unwrap();
        assert_eq!((c.steps, c.temps), (vec![3, 4], vec![1.0, 0.5]));
        let ov = parse_overrides(&["--temps=1,2".into()]).unwrap();
        assert_eq!(load::<Lists>(None, &ov, &[]).unwrap().temps, vec![1.0, 2.0]);
    }
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct C {
        max_iters: usize,
        learning_rate: f64,
        out_dir: String,
        bias: bool,
    }

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "max_iters = 10\nout_dir = 'a'\nlearning_rate = 1e-3\n").unwrap();
        let ov = parse_overrides(&[
            "--max-iters=20".into(),
            "--bias".into(),
            "true".into(),
            "--compile=False".into(),
        ])
        .unwrap();
        let c: C = load(Some(&p), &ov, &[("compile", None)]).unwrap();
        assert_eq!(
            c,
            C {
                max_iters: 20,
                learning_rate: 1e-3,
                out_dir: "a".into(),
                bias: true
            }
        );
    }

    #[test]
    fn unknown_key_suggests() {
        let ov = parse_overrides(&["--max_iter=3".into()]).unwrap();
        let e = load::<C>(None, &ov, &[]).unwrap_err().to_string();
        assert!(e.contains("did you mean 'max_iters'"), "{e}");
        let ov = parse_overrides(&["--max_iters=abc".into()]).unwrap();
        assert!(
            load::<C>(None, &ov, &[])
                .unwrap_err()
                .to_string()
                .contains("integer")
        );
    }

    #[test]
    fn invalid_toml_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "max_iters = = 3").unwrap();
        assert!(
            load::<C>(Some(&p), &[], &[])
                .unwrap_err()
                .to_string()
                .contains("invalid TOML")
        );
    }

    #[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Outer {
        rounds: usize,
        inner: C,
    }

    #[test]
    fn sections_merge_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "rounds = 2\n[inner]\nmax_iters = 7\n").unwrap();
        let ov = parse_overrides(&["--inner.learning-rate=0.5".into()]).unwrap();
        let c: Outer = load(Some(&p), &ov, &[]).unwrap();
        assert_eq!((c.rounds, c.inner.max_iters), (2, 7));
        assert_eq!(c.inner.learning_rate, 0.5);
        std::fs::write(&p, "[inner]\nmax_iter = 7\n").unwrap();
        let e = load::<Outer>(Some(&p), &[], &[]).unwrap_err().to_string();
        assert!(e.contains("unknown key 'inner.max_iter'"), "{e}");
        assert!(e.contains("did you mean 'inner.max_iters'"), "{e}");
        let ov = parse_overrides(&["--rounds.x=1".into()]).unwrap();
        let e = load::<Outer>(None, &ov, &[]).unwrap_err().to_string();
        assert!(e.contains("not a section"), "{e}");
    }
}
