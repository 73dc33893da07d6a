//! The baselines come from Debian's packages, installed with apt-get by
//! the benchmark itself when they are missing (a fresh clone needs no
//! other step).

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// `binary` on the PATH, after installing `package` (which provides it)
/// if it is not there, and `also` (packages it needs at run time that a
/// binary alone does not show) if dpkg says they are missing.
pub fn ensure(binary: &str, package: &str, also: &[&str]) -> Result<PathBuf> {
    let mut missing: Vec<&str> = also.iter().copied().filter(|p| !installed(p)).collect();
    if on_path(binary).is_none() {
        missing.insert(0, package);
    }
    if !missing.is_empty() {
        let list = missing.join(" ");
        eprintln!("installing the baseline's packages: apt-get install -y {list}");
        let status = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .with_context(|| {
                format!("running apt-get (install {list} yourself if this is not Debian)")
            })?;
        if !status.success() {
            bail!("apt-get install {list} failed ({status}); install them and run again");
        }
    }
    on_path(binary).with_context(|| format!("{package} installed no `{binary}` on the PATH"))
}

fn on_path(binary: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|d| d.join(binary))
        .find(|f| f.exists())
}

/// Whether dpkg has `package` installed; true where there is no dpkg (the
/// binary on the PATH is then all that can be checked).
fn installed(package: &str) -> bool {
    match Command::new("dpkg-query").args(["-W", "-f=${Status}", package]).output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).contains("install ok installed"),
        Err(_) => true,
    }
}
