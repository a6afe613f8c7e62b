//! The flags that say how signed OPA bundles are verified, shared by `serve` and `eval` (OPA's
//! own names: `--verification-key`, `--verification-key-id`, `--signing-alg`, `--scope`).

use anyhow::{Result, bail};
use docket_server::bundle::{SIGNING_ALGORITHMS, Verification};
use std::path::Path;

#[derive(clap::Args, Clone, Debug)]
pub struct VerificationArgs {
    /// Verify signed bundles (.signatures.json) with this key: the path of a PEM public key
    /// or certificate (RS*, PS*, ES*, EdDSA), or the HMAC secret (HS*) itself or a file
    /// holding it. With it, unsigned bundles are refused.
    #[arg(long)]
    verification_key: Option<String>,
    /// The key's id, as OPA's --verification-key-id.
    #[arg(long, default_value = "default")]
    verification_key_id: String,
    /// The signature algorithm the key verifies, as OPA's --signing-alg.
    #[arg(long, default_value = "RS256")]
    signing_alg: String,
    /// The scope a bundle's signature must name, as OPA's --scope.
    #[arg(long, default_value = "")]
    scope: String,
}

impl VerificationArgs {
    /// The verification configuration, if a key was given.
    pub fn config(&self) -> Result<Option<Verification>> {
        let Some(key) = &self.verification_key else {
            return Ok(None);
        };
        if !SIGNING_ALGORITHMS.contains(&self.signing_alg.as_str()) {
            bail!(
                "--signing-alg {:?} is not one of {}",
                self.signing_alg,
                SIGNING_ALGORITHMS.join(", ")
            );
        }
        let key = if Path::new(key).is_file() {
            std::fs::read_to_string(key)?
        } else {
            key.clone()
        };
        Ok(Some(Verification {
            key,
            key_id: self.verification_key_id.clone(),
            algorithm: self.signing_alg.clone(),
            scope: self.scope.clone(),
        }))
    }
}
