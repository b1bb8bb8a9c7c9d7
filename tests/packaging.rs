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
    assert!(df.contains("\"health\", \"--url\""));
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
