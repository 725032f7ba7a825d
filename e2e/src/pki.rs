//! Certificates and the kubeconfig of a local cluster.
//!
//! One CA signs the API server's serving certificate and an admin client certificate in `system:masters`;
//! a separate key signs service-account tokens. All keys are ECDSA P-256 (accepted by the Go components and by
//! rustls, which rejects X.509 v1 certificates: rcgen always writes v3 with the extensions below).

use std::{fs, path::Path};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};

/// File names of the generated material, relative to the PKI directory.
pub struct Pki {
    /// The CA certificate (PEM).
    pub ca_crt: std::path::PathBuf,
    /// The API server's serving certificate and key.
    pub apiserver_crt: std::path::PathBuf,
    /// The API server's serving key.
    pub apiserver_key: std::path::PathBuf,
    /// The service-account signing key.
    pub sa_key: std::path::PathBuf,
    /// The service-account public key.
    pub sa_pub: std::path::PathBuf,
    /// Admin client certificate (PEM).
    pub admin_crt: String,
    /// Admin client key (PEM).
    pub admin_key: String,
    /// CA certificate (PEM).
    pub ca_pem: String,
}

/// Writes a CA, the API server's serving pair, an admin client pair and a service-account key pair into `dir`.
pub fn generate(dir: &Path) -> Result<Pki> {
    fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = name("sluice-e2e-ca", None);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(
        [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "127.0.0.1",
            "10.0.0.1",
        ]
        .map(String::from)
        .to_vec(),
    )?;
    server.distinguished_name = name("kube-apiserver", None);
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let admin_key = KeyPair::generate()?;
    let mut admin = CertificateParams::new(Vec::<String>::new())?;
    admin.distinguished_name = name("sluice-e2e-admin", Some("system:masters"));
    admin.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin.signed_by(&admin_key, &issuer)?;

    let sa_key = KeyPair::generate()?;

    let pki = Pki {
        ca_crt: dir.join("ca.crt"),
        apiserver_crt: dir.join("apiserver.crt"),
        apiserver_key: dir.join("apiserver.key"),
        sa_key: dir.join("sa.key"),
        sa_pub: dir.join("sa.pub"),
        admin_crt: admin_cert.pem(),
        admin_key: admin_key.serialize_pem(),
        ca_pem: ca_cert.pem(),
    };
    write(&pki.ca_crt, &pki.ca_pem)?;
    write(&pki.apiserver_crt, &server_cert.pem())?;
    write(&pki.apiserver_key, &server_key.serialize_pem())?;
    write(&pki.sa_key, &sa_key.serialize_pem())?;
    write(&pki.sa_pub, &sa_key.public_key_pem())?;
    write(&dir.join("admin.crt"), &pki.admin_crt)?;
    write(&dir.join("admin.key"), &pki.admin_key)?;
    Ok(pki)
}

/// A kubeconfig for the admin user against `server`, with every credential embedded.
pub fn kubeconfig(pki: &Pki, server: &str) -> String {
    use base64_encode as b64;
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: sluice-e2e
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    client-certificate-data: {crt}
    client-key-data: {key}
contexts:
- name: sluice-e2e
  context:
    cluster: sluice-e2e
    user: admin
    namespace: default
current-context: sluice-e2e
",
        ca = b64(pki.ca_pem.as_bytes()),
        crt = b64(pki.admin_crt.as_bytes()),
        key = b64(pki.admin_key.as_bytes()),
    )
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

fn write(path: &Path, content: &str) -> Result<()> {
    fs::write(path, content).with_context(|| format!("writing {}", path.display()))
}

/// Standard base64 with padding (the kubeconfig's `*-data` fields).
fn base64_encode(input: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_file_and_a_kubeconfig_that_parses() {
        let dir = std::env::temp_dir().join(format!("sluice-pki-test-{}", std::process::id()));
        let pki = generate(&dir).unwrap();
        for f in [
            &pki.ca_crt,
            &pki.apiserver_crt,
            &pki.apiserver_key,
            &pki.sa_key,
            &pki.sa_pub,
        ] {
            assert!(
                fs::read_to_string(f).unwrap().starts_with("-----BEGIN"),
                "{}",
                f.display()
            );
        }
        let kc: kube::config::Kubeconfig =
            serde_yaml::from_str(&kubeconfig(&pki, "https://127.0.0.1:6443")).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("sluice-e2e"));
        assert_eq!(
            kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("https://127.0.0.1:6443")
        );
        fs::remove_dir_all(dir).ok();
    }
}
