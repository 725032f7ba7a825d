//! SOPS documents through the directory renderer: carried encrypted, decrypted after the render.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::directory::DirectoryOptions;
use crate::sops::AgeKeys;

fn fixture(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/sops");
    fs::read_to_string(dir.join(name)).expect("fixture")
}

fn keys(file: &str) -> AgeKeys {
    let data = BTreeMap::from([(file.to_string(), fixture(file).into_bytes())]);
    AgeKeys::from_secret_data(&data).expect("keys")
}

/// The objects the directory renderer makes of a repository holding `files`.
fn rendered(files: &[(&str, String)]) -> Vec<Value> {
    let repo = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let full = repo.path().join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, text).unwrap();
    }
    directory::render(repo.path(), ".", &DirectoryOptions::default()).expect("render")
}

fn plain(name: &str) -> Vec<Value> {
    directory::decode_manifest_stream(fixture(name).as_bytes()).expect("plain fixture")
}

#[test]
fn encrypted_documents_stay_encrypted_in_the_render_and_decrypt_in_place() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: before\n".to_string();
    let objects = rendered(&[
        ("a.yaml", cm),
        ("b.enc.yaml", fixture("secret.enc.yaml")),
        ("c.enc.yaml", fixture("multi.enc.yaml")),
        ("d.enc.json", fixture("secret.enc.json")),
    ]);
    assert!(has_encrypted(&objects));
    let carried = serde_json::to_string(&objects).unwrap();
    assert!(!carried.contains("hunter2"), "the render holds ciphertext only");
    let out = reveal_sops(objects, Some(&keys("test.agekey"))).expect("decrypts");
    assert!(!has_encrypted(&out));
    let mut want = vec![out[0].clone()];
    want.extend(plain("secret.plain.yaml"));
    want.extend(plain("multi.plain.yaml"));
    want.extend(directory::decode_manifest_stream(fixture("secret.plain.json").as_bytes()).unwrap());
    assert_eq!(out, want);
    assert_eq!(out[0]["metadata"]["name"], "before");
}

#[test]
fn without_keys_or_with_the_wrong_ones_the_error_names_the_document_and_no_value() {
    let objects = rendered(&[("s.yaml", fixture("secret.enc.yaml"))]);
    let missing = reveal_sops(objects.clone(), None).unwrap_err();
    assert!(missing.contains("Secret/db-credentials"), "{missing}");
    assert!(missing.contains(DECRYPTION_SECRET_ANNOTATION), "{missing}");
    let wrong = reveal_sops(objects, Some(&keys("other.agekey"))).unwrap_err();
    assert!(wrong.contains("Secret/db-credentials"), "{wrong}");
    for message in [missing, wrong] {
        assert!(
            !message.contains("hunter2") && !message.contains("AGE-SECRET-KEY"),
            "{message}"
        );
    }
}

#[test]
fn plain_renders_pass_through_untouched() {
    let objects = rendered(&[(
        "a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n".into(),
    )]);
    assert!(!has_encrypted(&objects));
    assert_eq!(reveal_sops(objects.clone(), None).unwrap(), objects);
}
