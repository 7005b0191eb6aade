//! The commands: argument structs and the calls into the library; what they print about their
//! outcomes is in [`report`].

pub mod base;
pub mod demo;
pub mod grpo;
pub mod interop;
pub mod judge;
pub mod report;
pub mod reward;

use anyhow::{Result, bail};
use clap::Args;
use nanoreward::config;
use serde::{Serialize, de::DeserializeOwned};
use std::path::PathBuf;

/// `[CONFIG] --key=value ...` with --print-config: the arguments of train, train-reward, grpo
/// and cycle.
#[derive(Args)]
pub struct ConfigArgs {
    /// TOML config file (see configs/).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Show the effective configuration and exit.
    #[arg(long = "print-config", alias = "print_config")]
    pub print_config: bool,
    /// A config file as first word, then overrides such as --max_iters=100 (or --max-iters 100;
    /// --grpo.beta=0 for a section of the cycle config).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CONFIG | --key=value"
    )]
    pub rest: Vec<String>,
}

fn is_print_config(a: &str) -> bool {
    a == "--print-config" || a == "--print_config"
}

impl ConfigArgs {
    /// Whether the effective configuration is to be shown instead of run.
    pub fn print_only(&self) -> bool {
        self.print_config || self.rest.iter().any(|a| is_print_config(a))
    }

    /// The config file and the overrides (`--print-config` among them is left out).
    fn split(&self) -> Result<(Option<PathBuf>, config::Overrides)> {
        let mut rest = self.rest.as_slice();
        let mut file = self.config.clone();
        if let Some(first) = rest.first()
            && !first.starts_with("--")
        {
            if file.is_some() {
                bail!("two config files given: --config and '{first}'");
            }
            file = Some(PathBuf::from(first));
            rest = &rest[1..];
        }
        let rest: Vec<String> = rest
            .iter()
            .filter(|a| !is_print_config(a))
            .cloned()
            .collect();
        Ok((file, config::parse_overrides(&rest)?))
    }

    /// The job's configuration: its defaults, the file, then the overrides (`aliases` are keys
    /// accepted and ignored or renamed).
    pub fn load<T: Serialize + DeserializeOwned + Default>(
        &self,
        aliases: &[(&str, Option<&str>)],
    ) -> Result<T> {
        let (file, overrides) = self.split()?;
        Ok(config::load(file.as_deref(), &overrides, aliases)?)
    }
}

/// Prints `cfg` as TOML when `--print-config` was given; returns whether it did.
pub fn printed<T: Serialize>(a: &ConfigArgs, cfg: &T) -> Result<bool> {
    if a.print_only() {
        println!("{}", config::to_toml(cfg)?);
        return Ok(true);
    }
    Ok(false)
}
