//! Where a sharded job reads its shard when a scheduler starts it: a Slurm array task
//! (`SLURM_ARRAY_TASK_ID`, offset by `SLURM_ARRAY_TASK_MIN`, out of `SLURM_ARRAY_TASK_COUNT`) or a
//! Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`; the count comes from `--num_shards`, which
//! Kubernetes does not export). Flags given on the command line win over the environment.

use crate::{Error, Result};

/// A job's shard and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
    /// `None` for flags or the default (one shard); else the variables read.
    pub source: Option<String>,
}

fn var(env: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Option<usize>> {
    match env(name) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            Error::Config(format!(
                "{name}={v} is not a shard number; unset it or pass --shard_index/--num_shards"
            ))
        }),
    }
}

/// The shard from the flags, else from the scheduler's environment (`env` looks a variable up).
pub fn shard(
    index: Option<usize>,
    count: Option<usize>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Shard> {
    let from_flags = |index: Option<usize>, count: Option<usize>| Shard {
        index: index.unwrap_or(0),
        count: count.unwrap_or(1),
        source: None,
    };
    if index.is_some() {
        return Ok(from_flags(index, count));
    }
    if let Some(id) = var(&env, "SLURM_ARRAY_TASK_ID")? {
        let min = var(&env, "SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let n = match count {
            Some(n) => n,
            None => var(&env, "SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                Error::Config(
                    "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; pass --num_shards".into(),
                )
            })?,
        };
        let index = id.checked_sub(min).ok_or_else(|| {
            Error::Config(format!(
                "SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}; pass --shard_index"
            ))
        })?;
        return Ok(Shard {
            index,
            count: n,
            source: Some(format!(
                "SLURM_ARRAY_TASK_ID={id} - SLURM_ARRAY_TASK_MIN={min} of SLURM_ARRAY_TASK_COUNT={n}"
            )),
        });
    }
    if let Some(i) = var(&env, "JOB_COMPLETION_INDEX")? {
        let n = count.ok_or_else(|| {
            Error::Config(
                "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job): pass --num_shards = the Job's completions".into(),
            )
        })?;
        return Ok(Shard {
            index: i,
            count: n,
            source: Some(format!("JOB_COMPLETION_INDEX={i} of --num_shards {n}")),
        });
    }
    Ok(from_flags(None, count))
}

/// [`shard`] reading the process environment.
pub fn shard_from_env(index: Option<usize>, count: Option<usize>) -> Result<Shard> {
    shard(index, count, |k| std::env::var(k).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn flags_win_then_slurm_then_kubernetes_then_one_shard() {
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("JOB_COMPLETION_INDEX", "1"),
        ]);
        let s = shard(Some(1), Some(2), &slurm).unwrap();
        assert_eq!((s.index, s.count, s.source), (1, 2, None));
        let s = shard(None, None, &slurm).unwrap();
        assert_eq!((s.index, s.count), (2, 4));
        assert!(s.source.unwrap().contains("SLURM_ARRAY_TASK_ID=5"));
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3")]);
        let s = shard(None, Some(8), &k8s).unwrap();
        assert_eq!((s.index, s.count), (3, 8));
        let s = shard(None, None, env(&[])).unwrap();
        assert_eq!((s.index, s.count, s.source), (0, 1, None));
    }

    #[test]
    fn unusable_environments_are_clear_errors() {
        let e = shard(None, None, env(&[("JOB_COMPLETION_INDEX", "0")])).unwrap_err();
        assert!(e.to_string().contains("pass --num_shards"), "{e}");
        let e = shard(None, None, env(&[("SLURM_ARRAY_TASK_ID", "x")])).unwrap_err();
        assert!(e.to_string().contains("is not a shard number"), "{e}");
        let e = shard(
            None,
            None,
            env(&[
                ("SLURM_ARRAY_TASK_ID", "1"),
                ("SLURM_ARRAY_TASK_MIN", "2"),
                ("SLURM_ARRAY_TASK_COUNT", "2"),
            ]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("below"), "{e}");
        let e = shard(None, None, env(&[("SLURM_ARRAY_TASK_ID", "1")])).unwrap_err();
        assert!(e.to_string().contains("SLURM_ARRAY_TASK_COUNT"), "{e}");
    }
}
