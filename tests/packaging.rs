//! Packaging files parse and say what the deployment docs promise. (No Docker engine runs on
//! the build machines, so `docker compose config` is replaced by an equivalent YAML parse.)
use std::path::PathBuf;

fn read(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

#[test]
fn compose_file_declares_the_sync_service() {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read("docker-compose.yml")).unwrap();
    let svc = &doc["services"]["sync-service"];
    assert!(svc.is_mapping(), "service sync-service missing");
    let strings = |v: &serde_yaml_ng::Value| -> Vec<String> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(strings(&svc["ports"]), vec!["8080:8080"]);
    let volumes = strings(&svc["volumes"]);
    assert!(volumes.contains(&"./data:/app/data".to_string()));
    assert!(volumes.contains(&"./config:/app/config:ro".to_string()));
    assert_eq!(svc["env_file"].as_str(), Some(".env"));
    assert_eq!(svc["restart"].as_str(), Some("unless-stopped"));
}

#[test]
fn dockerfile_builds_the_tested_binary_and_checks_its_own_health() {
    let df = read("Dockerfile");
    assert!(df.contains("cargo build --release --locked"));
    assert!(df.contains("FROM debian:bookworm-slim"));
    assert!(df.contains("ca-certificates"));
    assert!(df.contains("USER sync"));
    assert!(df.contains("VOLUME [\"/app/data\"]"));
    assert!(df.contains("EXPOSE 8080"));
    assert!(df.contains("HEALTHCHECK --interval=30s --timeout=10s --retries=3"));
    // Without --url the check asks the configured port (SYNC_SERVER__PORT may move it).
    assert!(df.contains("CMD [\"ado-clickup-sync\", \"health\"]"));
}

#[test]
fn env_example_lists_every_supported_variable() {
    let env = read(".env.example");
    for var in [
        "ADO_ORGANIZATION",
        "ADO_PROJECT",
        "ADO_PAT",
        "CLICKUP_API_TOKEN",
        "CLICKUP_WORKSPACE_ID",
        "WEBHOOK_SECRET",
        "PUBLIC_URL",
        "LOG_LEVEL",
        "DATABASE_URL",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(&format!("{var}="))),
            "{var} missing from .env.example"
        );
    }
}

/// The dependency-layer step builds a dummy crate, then must delete everything cargo keeps of
/// that dummy (fingerprints, the lib's rlib, the bin): `COPY` keeps the real sources' mtimes,
/// older than the dummy build, so a fingerprint left behind makes cargo link the empty lib and
/// the image build fails. Without a Docker engine here, this runs the Dockerfile's own cleanup
/// command on a target tree laid out as cargo lays out the dummy build, and checks that the
/// package's artefacts go and the dependencies' stay (the cached layer).
#[test]
fn dockerfile_dependency_layer_drops_every_artefact_of_the_dummy_crate() {
    let df = read("Dockerfile");
    let first_run: String = df
        .split("\nRUN ")
        .nth(1)
        .expect("the Dockerfile has a RUN step")
        .lines()
        .scan(true, |more, line| {
            let keep = *more;
            *more = line.trim_end().ends_with('\\');
            keep.then(|| line.trim_end().trim_end_matches('\\').to_string())
        })
        .collect::<Vec<_>>()
        .join(" ");
    let cleanup = first_run
        .split("&&")
        .map(str::trim)
        .find(|c| c.starts_with("rm "))
        .unwrap_or_else(|| panic!("no rm in the dependency step: {first_run}"));

    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("target/release");
    let package = [
        ".fingerprint/ado-clickup-sync-1a2b3c/lib-ado_clickup_sync",
        ".fingerprint/ado-clickup-sync-4d5e6f/bin-ado-clickup-sync",
        "deps/libado_clickup_sync-1a2b3c.rlib",
        "deps/libado_clickup_sync-1a2b3c.rmeta",
        "deps/ado_clickup_sync-1a2b3c.d",
        "deps/ado_clickup_sync-4d5e6f",
        "ado-clickup-sync",
        "ado-clickup-sync.d",
    ];
    let deps = [
        ".fingerprint/serde-0a0b0c/lib-serde",
        "deps/libserde-0a0b0c.rlib",
        "deps/serde-0a0b0c.d",
    ];
    for f in package.iter().chain(&deps) {
        let p = r.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"x").unwrap();
    }
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(cleanup)
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "`{cleanup}` failed");
    for f in package {
        assert!(
            !r.join(f).exists(),
            "`{cleanup}` leaves {f} of the dummy crate"
        );
    }
    for f in deps {
        assert!(
            r.join(f).exists(),
            "`{cleanup}` removes the dependency's {f}"
        );
    }
    assert!(!dir.path().join("src").exists());
}
