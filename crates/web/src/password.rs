//! Password hashing: argon2id with the crate's default parameters (19 MiB, 2 passes), a random
//! salt per password, stored as a PHC string.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

/// Longest password accepted (bytes): argon2 takes any length, but a megabyte "password" is
/// a denial of service, not a secret.
pub const MAX_PASSWORD: usize = 1024;

/// The PHC string (`$argon2id$v=19$...`) of `password`.
pub fn hash_password(password: &str) -> Result<String, String> {
    if password.chars().count() < 8 {
        return Err("a password must have at least 8 characters".into());
    }
    if password.len() > MAX_PASSWORD {
        return Err(format!("a password must be at most {MAX_PASSWORD} bytes"));
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password: {e}"))
}

/// Does `password` match the PHC string `hash`? (False for a malformed hash.)
pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.len() > MAX_PASSWORD {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// A random password of 20 characters from an unambiguous alphabet (~114 bits).
pub fn random_password() -> String {
    const A: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut raw = [0u8; 20];
    let _ = getrandom::fill(&mut raw);
    raw.iter()
        .map(|b| A[(*b as usize) % A.len()] as char)
        .collect()
}

/// A hash of a random password: verified against when the user does not exist, so a wrong
/// name costs as much time as a wrong password.
pub(crate) fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password(&random_password()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsf", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(hash_password("short").is_err());
        assert_eq!(random_password().len(), 20);
        assert_ne!(random_password(), random_password());
    }
}
