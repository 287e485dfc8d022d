//! TLS for the throwaway PostgreSQL cluster ([`crate::postgres`]): a CA of
//! its own, a server certificate for `localhost` only (so a client that
//! connects to `127.0.0.1` must refuse it: the name is checked), and one
//! role that may connect only over TLS, so a test can prove
//! that a connection was encrypted (the server refuses it otherwise) and
//! verified (a client that does not trust the CA is refused).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, chown};
use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// The role the server accepts only over TLS (`hostnossl ... reject`).
pub const TLS_ONLY_ROLE: &str = "xgate_tls_only";
/// The CA's certificate, in the cluster's directory.
pub const CA_FILE: &str = "tls-ca.crt";

/// Writes the CA (`dir/tls-ca.crt`), the server's certificate and key
/// (`data/server.crt`, `data/server.key`, 0600, owned by `owner` when the
/// server runs as another user) and the rule refusing [`TLS_ONLY_ROLE`]
/// without TLS at the head of `data/pg_hba.conf`.
///
/// # Errors
/// A certificate that cannot be made, or a file that cannot be written.
pub fn prepare(dir: &Path, data: &Path, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    let (ca_pem, cert_pem, key_pem) =
        certificates().map_err(|e| std::io::Error::other(e.to_string()))?;
    write(&dir.join(CA_FILE), ca_pem.as_bytes(), 0o644, None)?;
    write(&data.join("server.crt"), cert_pem.as_bytes(), 0o644, owner)?;
    write(&data.join("server.key"), key_pem.as_bytes(), 0o600, owner)?;
    let hba = data.join("pg_hba.conf");
    let rules = fs::read_to_string(&hba)?;
    fs::write(
        &hba,
        format!("hostnossl all {TLS_ONLY_ROLE} all reject\n{rules}"),
    )
}

/// The CA's PEM, and the server's certificate and key, PEM.
fn certificates() -> Result<(String, String, String), rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "xgate test PostgreSQL CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut server = CertificateParams::new(["localhost".to_owned()])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = server.signed_by(&key, &issuer)?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}

fn write(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(bytes)?;
    if let Some((uid, gid)) = owner {
        chown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}
