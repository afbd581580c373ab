//! The deploy/ files agree with zdel itself: every Kubernetes manifest
//! parses, probes hit the paths and port zdel serves, the grace period
//! outlasts zdel's shutdown grace, and the systemd unit keeps its promises.

use std::path::{Path, PathBuf};

use serde_yaml::Value;
use zdel::config::Config;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The config the pod runs with: zdel's defaults plus the ConfigMap's zdel.toml.
fn pod_config() -> Config {
    let cm = yaml(&deploy("k8s/configmap.yaml"));
    let toml = cm["data"]["zdel.toml"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("zdel.toml");
    std::fs::write(&file, toml).unwrap();
    // Loading refuses unknown keys: this also proves the ConfigMap has none.
    Config::load_with_env(Some(&file), Vec::new()).unwrap()
}

fn listen_port(config: &Config) -> u64 {
    config
        .http
        .listen
        .parse::<std::net::SocketAddr>()
        .unwrap()
        .port()
        .into()
}

/// A container's port, by number or by name.
fn resolve_port(container: &Value, port: &Value) -> u64 {
    match port {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::String(name) => container["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("no container port named {name}")),
        other => panic!("bad port {other:?}"),
    }
}

fn check_pod(spec: &Value, config: &Config, what: &str) {
    let grace_s = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace_s * 1000 > config.worker.shutdown_grace_ms,
        "{what}: grace {grace_s}s must exceed shutdown_grace_ms"
    );
    assert_eq!(
        spec["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true),
        "{what}"
    );
    let container = &spec["containers"][0];
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true),
        "{what}"
    );
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false),
        "{what}"
    );
    assert!(
        container["resources"]["requests"]["memory"].is_string(),
        "{what}: resource requests"
    );
    assert!(
        container["resources"]["limits"]["memory"].is_string(),
        "{what}: resource limits"
    );
    assert_eq!(
        container["envFrom"][0]["secretRef"]["name"].as_str(),
        Some("zdel-credentials"),
        "{what}"
    );
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    let db_dir = Path::new(&config.database.url)
        .parent()
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        mounts.contains(&db_dir),
        "{what}: the database directory {db_dir} must be a volume"
    );
    assert!(
        mounts.contains(&"/etc/zdel") && mounts.contains(&"/tmp"),
        "{what}: {mounts:?}"
    );
}

#[test]
fn every_manifest_parses_and_the_kustomization_lists_what_exists() {
    let k = yaml(&deploy("k8s/kustomization.yaml"));
    for resource in k["resources"].as_sequence().unwrap() {
        let doc = yaml(&deploy(&format!("k8s/{}", resource.as_str().unwrap())));
        assert!(
            doc["kind"].is_string() && doc["apiVersion"].is_string(),
            "{resource:?}"
        );
    }
    let job = yaml(&deploy("k8s/jobs/drain-job.yaml"));
    assert_eq!(job["kind"].as_str(), Some("Job"));
    // The drain Job's image is set through its own kustomization, the same
    // way (and to the same image) as the StatefulSet's.
    let jobs = yaml(&deploy("k8s/jobs/kustomization.yaml"));
    assert_eq!(
        jobs["resources"].as_sequence().unwrap()[0].as_str(),
        Some("drain-job.yaml")
    );
    assert_eq!(jobs["images"], k["images"]);
    // The StatefulSet is valid without kustomize too: it names its selector.
    let sts = yaml(&deploy("k8s/statefulset.yaml"));
    assert_eq!(
        sts["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"].as_str(),
        Some("zdel")
    );
    assert_eq!(
        sts["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"].as_str(),
        Some("zdel")
    );
}

#[test]
fn the_statefulset_matches_zdels_config() {
    let config = pod_config();
    let sts = yaml(&deploy("k8s/statefulset.yaml"));
    assert_eq!(sts["kind"].as_str(), Some("StatefulSet"));
    assert_eq!(
        sts["spec"]["replicas"].as_u64(),
        Some(1),
        "SQLite has one writer: one replica"
    );
    let claim = &sts["spec"]["volumeClaimTemplates"][0];
    assert_eq!(
        claim["spec"]["accessModes"][0].as_str(),
        Some("ReadWriteOncePod")
    );
    let spec = &sts["spec"]["template"]["spec"];
    check_pod(spec, &config, "statefulset");
    let container = &spec["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(args, ["serve", "--config", "/etc/zdel/zdel.toml"]);
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(
            resolve_port(container, &get["port"]),
            listen_port(&config),
            "{probe} port"
        );
    }
    assert!(
        !config.http.listen.starts_with("127."),
        "probes come from outside the pod: listen on all interfaces"
    );
    let svc = yaml(&deploy("k8s/service.yaml"));
    assert_eq!(
        svc["spec"]["ports"][0]["port"].as_u64(),
        Some(listen_port(&config))
    );
}

#[test]
fn the_drain_job_runs_drain_on_the_statefulsets_volume() {
    let config = pod_config();
    let job = yaml(&deploy("k8s/jobs/drain-job.yaml"));
    let spec = &job["spec"]["template"]["spec"];
    check_pod(spec, &config, "drain job");
    assert_eq!(spec["containers"][0]["args"][0].as_str(), Some("drain"));
    assert_eq!(spec["restartPolicy"].as_str(), Some("Never"));
    let claim = spec["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "data")
        .unwrap();
    // volumeClaimTemplates "data" of StatefulSet "zdel", pod 0.
    assert_eq!(
        claim["persistentVolumeClaim"]["claimName"].as_str(),
        Some("data-zdel-0")
    );
}

#[test]
fn the_systemd_unit_keeps_its_promises() {
    let unit = std::fs::read_to_string(deploy("systemd/zdel.service")).unwrap();
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "User=zdel",
        "StateDirectory=zdel",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "EnvironmentFile=/etc/zdel/secrets.env",
    ] {
        assert!(has(line), "missing: {line}");
    }
    assert!(
        !unit.contains("DynamicUser=yes"),
        "a static user, so operators can sudo -u zdel sqlite3"
    );
    let config = Config::load_with_env(None, Vec::new()).unwrap();
    let stop_s: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .unwrap()
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(stop_s * 1000 > config.worker.shutdown_grace_ms);
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    assert!(exec.contains(" serve"), "{exec}");
}

#[test]
fn the_dockerfile_runs_the_binary_as_a_non_root_user_with_a_data_volume() {
    let dockerfile = std::fs::read_to_string(deploy("Dockerfile")).unwrap();
    assert!(dockerfile.matches("FROM ").count() >= 2, "multi-stage");
    assert!(dockerfile.contains("USER 10001"));
    assert!(dockerfile.contains("VOLUME /var/lib/zdel"));
    assert!(dockerfile.contains("ENTRYPOINT [\"zdel\"]"));
}
