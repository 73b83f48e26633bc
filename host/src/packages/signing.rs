//! Publisher keys and signatures, in minisign's format: a publisher can sign with
//! `wasmbot plugin sign` or with `minisign -Sm statement.json`, and an operator trusts a
//! key (`[[packages.keys]]`) for the plugin names it may sign.

use std::io::Cursor;

use minisign::{KeyPair, PublicKey, PublicKeyBox, SecretKeyBox, SignatureBox};
use serde::{Deserialize, Serialize};

use crate::packages::Statement;

/// A key the operator trusts, and the plugins it may sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    /// The public key: minisign's base64 line (`RW...`) or its whole `.pub` file.
    pub key: String,
    /// Plugin names it may sign; `prefix-*` matches by prefix, `*` any.
    pub plugins: Vec<String>,
}

impl TrustedKey {
    fn allows(&self, plugin: &str) -> bool {
        self.plugins
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => plugin.starts_with(prefix),
                None => pattern == plugin,
            })
    }
}

/// Why a package's signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The package carries none.
    #[error("it is not signed (install it unsigned only with --allow-unsigned)")]
    Missing,
    /// The signature is not minisign's format.
    #[error("its signature cannot be read: {0}")]
    Malformed(String),
    /// No trusted key has the signature's key id.
    #[error("it is signed by key {0}, which is not a trusted key")]
    Untrusted(String),
    /// The key is trusted, but not for this plugin.
    #[error("key {key} is trusted, but not to sign {plugin:?}")]
    NotAllowed {
        /// The key's id.
        key: String,
        /// The plugin's name.
        plugin: String,
    },
    /// The signature does not match the package.
    #[error("its signature by key {0} does not match the package")]
    Bad(String),
}

/// The public key in `text` (a base64 line or a `.pub` file).
pub fn public_key(text: &str) -> Result<PublicKey, String> {
    let text = text.trim();
    let parsed = if text.contains('\n') {
        PublicKeyBox::from_string(text).and_then(PublicKeyBox::into_public_key)
    } else {
        PublicKey::from_base64(text)
    };
    parsed.map_err(|e| format!("not a minisign public key: {e}"))
}

/// A key's id as minisign prints it (16 hex digits).
pub fn key_id(keynum: &[u8]) -> String {
    keynum.iter().rev().map(|b| format!("{b:02X}")).collect()
}

/// Checks every trusted key parses, so a typo is found at start-up.
pub fn check_keys(keys: &[TrustedKey]) -> Result<(), String> {
    for (index, trusted) in keys.iter().enumerate() {
        public_key(&trusted.key).map_err(|e| format!("packages.keys[{index}]: {e}"))?;
        if trusted.plugins.is_empty() {
            return Err(format!(
                "packages.keys[{index}]: list the plugins it may sign (\"*\" for any)"
            ));
        }
    }
    Ok(())
}

/// Verifies `signature` over `data` by a trusted key allowed for `plugin`; the key's id.
pub fn verify(
    keys: &[TrustedKey],
    plugin: &str,
    data: &[u8],
    signature: &str,
) -> Result<String, SignatureError> {
    let signature = SignatureBox::from_string(signature)
        .map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let id = key_id(signature.keynum());
    let mut untrusted = true;
    for trusted in keys {
        let Ok(key) = public_key(&trusted.key) else {
            continue;
        };
        if key.keynum() != signature.keynum() {
            continue;
        }
        untrusted = false;
        if !trusted.allows(plugin) {
            continue;
        }
        return minisign::verify(&key, &signature, Cursor::new(data), true, false, false)
            .map(|()| id.clone())
            .map_err(|_| SignatureError::Bad(id.clone()));
    }
    Err(match untrusted {
        true => SignatureError::Untrusted(id),
        false => SignatureError::NotAllowed {
            key: id,
            plugin: plugin.to_owned(),
        },
    })
}

/// A new key pair as minisign's files: (public, secret). With a password the secret key
/// is encrypted with it, as minisign does.
pub fn generate(password: Option<String>) -> anyhow::Result<(String, String)> {
    let pair = match password {
        Some(password) => KeyPair::generate_encrypted_keypair(Some(password))?,
        None => KeyPair::generate_unencrypted_keypair()?,
    };
    let public = pair.pk.to_box()?.into_string();
    let secret = pair.sk.to_box(Some("wasmbot publisher key"))?.into_string();
    Ok((public, secret))
}

/// Signs `data` with the secret key file `secret` (its password if encrypted); `comment`
/// is the signature's trusted comment.
pub fn sign(
    secret: &str,
    password: Option<String>,
    data: &[u8],
    comment: &str,
) -> anyhow::Result<String> {
    let secret = SecretKeyBox::from_string(secret)?;
    // Without a password, never minisign's interactive prompt: a script would hang on it.
    let key = match password {
        Some(password) => secret.into_secret_key(Some(password))?,
        None => secret.into_unencrypted_secret_key()?,
    };
    anyhow::ensure!(
        !key.is_encrypted(),
        "the secret key is encrypted: give its password (--password-env VAR)"
    );
    let signature = minisign::sign(None, &key, Cursor::new(data), Some(comment), None)?;
    Ok(signature.into_string())
}

/// Signs a package's statement.
pub fn sign_statement(
    secret: &str,
    password: Option<String>,
    statement: &Statement,
) -> anyhow::Result<String> {
    let comment = format!("wasmbot plugin {} {}", statement.plugin, statement.version);
    sign(secret, password, &statement.to_bytes(), &comment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement() -> Statement {
        Statement {
            plugin: "echo".into(),
            version: "1.0.0".into(),
            wasm: "sha256:aa".into(),
            manifest: "sha256:bb".into(),
        }
    }

    #[test]
    fn a_trusted_key_verifies_only_what_it_signed_and_only_for_its_names() {
        let (public, secret) = generate(None).unwrap();
        let signature = sign_statement(&secret, None, &statement()).unwrap();
        let trusted = |plugins: &[&str]| {
            vec![TrustedKey {
                key: public.clone(),
                plugins: plugins.iter().map(|p| p.to_string()).collect(),
            }]
        };
        let data = statement().to_bytes();
        assert!(verify(&trusted(&["echo"]), "echo", &data, &signature).is_ok());
        assert!(verify(&trusted(&["ec*"]), "echo", &data, &signature).is_ok());
        assert!(matches!(
            verify(&trusted(&["other"]), "echo", &data, &signature),
            Err(SignatureError::NotAllowed { .. })
        ));
        let mut changed = statement();
        changed.version = "1.0.1".into();
        assert!(matches!(
            verify(&trusted(&["*"]), "echo", &changed.to_bytes(), &signature),
            Err(SignatureError::Bad(_))
        ));
        let (stranger, _) = generate(None).unwrap();
        let strangers = vec![TrustedKey {
            key: stranger,
            plugins: vec!["*".into()],
        }];
        assert!(matches!(
            verify(&strangers, "echo", &data, &signature),
            Err(SignatureError::Untrusted(_))
        ));
        assert!(matches!(
            verify(&strangers, "echo", &data, "junk"),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn an_encrypted_key_signs_with_its_password() {
        let (public, secret) = generate(Some("hunter2".into())).unwrap();
        assert!(sign_statement(&secret, Some("wrong".into()), &statement()).is_err());
        let signature = sign_statement(&secret, Some("hunter2".into()), &statement()).unwrap();
        let keys = vec![TrustedKey {
            key: public,
            plugins: vec!["*".into()],
        }];
        assert!(verify(&keys, "echo", &statement().to_bytes(), &signature).is_ok());
    }
}
