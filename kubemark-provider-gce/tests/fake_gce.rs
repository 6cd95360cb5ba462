//! The gce provider against the fake Compute Engine of the test tree (`kubemark_tests::gce`),
//! which speaks the Compute and Artifact Registry REST wire format and requires the OAuth token
//! its token endpoint issued: the provider conformance suite, ownership, paging, retries and
//! error mapping.

use std::sync::Arc;

use kubemark_core::provider::conformance::Conformance;
use kubemark_core::provider::{
    ClusterName, DiskSpec, ErrorKind, InfrastructureSpec, MasterSpec, Provider, ProviderExt,
};
use kubemark_provider_gce::{GceProvider, GceProviderBuilder};
use kubemark_tests::gce::{Failure, FakeGce, Fault, PROJECT, ZONE};
use serde_json::json;

fn credentials(json: serde_json::Value) -> google_cloud_auth::credentials::AccessTokenCredentials {
    google_cloud_auth::credentials::user_account::Builder::new(json)
        .build_access_token_credentials()
        .unwrap()
}

fn provider_at(fake: &FakeGce, endpoint: &str, creds: serde_json::Value) -> GceProvider {
    GceProviderBuilder::new()
        .with_project(PROJECT)
        .with_zone(ZONE)
        .with_endpoint(endpoint)
        .with_registry_endpoint(&fake.url)
        .with_credentials(credentials(creds))
        .with_polling_interval(std::time::Duration::from_millis(20))
        .build()
        .unwrap()
}

fn provider(fake: &FakeGce) -> GceProvider {
    provider_at(fake, &fake.url, fake.credentials_json())
}

fn spec() -> InfrastructureSpec {
    InfrastructureSpec {
        etcd_events_disk: Some(DiskSpec::etcd_events(10)),
        firewall: kubemark_core::provider::FirewallSpec {
            ssh_source_ranges: vec!["127.0.0.1/32".into()],
            ..Default::default()
        },
        master: MasterSpec {
            ssh_public_key: Some(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBIZJLqkEZWfiLcVVlsyxYKqJhCd6r+Y4BEIgDnWy4wl kubemark-test".into(),
            ),
            ..MasterSpec::default()
        },
        ..InfrastructureSpec::default()
    }
}

fn http_fault(method: &'static str, path: &str, times: usize, status: u16, reason: &str) -> Fault {
    Fault {
        method,
        path_contains: path.into(),
        times,
        failure: Failure::Http {
            status,
            reason: reason.into(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_provider_conformance_suite_against_the_fake() {
    let fake = FakeGce::start().await;
    // Small pages: every list must follow nextPageToken to be right.
    fake.set_page_size(2);
    // The entry builds with Application Default Credentials, which the fake does not issue: its
    // declaration is checked, the suite runs on the provider built with the fake's.
    let settings = kubemark_core::registry::ProviderSettings::new()
        .with("project", "p")
        .with("zone", "us-central1-b")
        .with("endpoint", fake.url.clone());
    kubemark_core::registry::conformance::check_entry(&kubemark_provider_gce::GceEntry, &settings);
    Conformance::new(Arc::new(provider(&fake)))
        .with_spec(spec())
        .run()
        .await;
    let log = fake.requests();
    assert!(
        log.iter().any(|r| r.contains("pageToken=page-2")),
        "lists were paged: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|r| r.contains("/zones/us-central1-b/operations/operation-")),
        "operations were polled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_the_master_as_upstream_does_and_tears_it_all_down() {
    let fake = FakeGce::start().await;
    let p = provider(&fake);
    let cluster = ClusterName::new("shape").unwrap();
    let infra = p.ensure_infrastructure(&cluster, &spec()).await.unwrap();
    let ip = infra.static_ip.clone().unwrap();
    let vm = infra.master.clone().unwrap();
    assert_eq!(
        vm.public_ip,
        Some(ip.address),
        "the master answers on its static IP"
    );
    assert!(ip.address.to_string().starts_with("127.0.1."));
    assert_eq!(vm.ssh.as_ref().unwrap().user, "kubemark");

    let instance = fake.get("instances", "kubemark-shape-master").unwrap();
    assert!(
        instance["machineType"]
            .as_str()
            .unwrap()
            .ends_with("/machineTypes/n2-standard-4")
    );
    assert_eq!(instance["tags"]["items"], json!(["kubemark-shape-master"]));
    assert_eq!(instance["labels"]["kubemark_cluster"], "shape");
    assert_eq!(instance["labels"]["kubemark_role"], "master");
    let disks: Vec<&str> = instance["disks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["deviceName"].as_str())
        .collect();
    assert_eq!(disks, ["master-pd", "master-event-pd"]);
    let keys = &instance["metadata"]["items"][0];
    assert_eq!(keys["key"], "ssh-keys");
    assert!(
        keys["value"]
            .as_str()
            .unwrap()
            .starts_with("kubemark:ssh-ed25519 ")
    );
    assert_eq!(
        fake.get("addresses", "kubemark-shape-master-ip").unwrap()["status"],
        "IN_USE"
    );
    let https = fake
        .get("firewalls", "kubemark-shape-master-https")
        .unwrap();
    assert_eq!(https["allowed"][0]["ports"], json!(["443"]));
    assert_eq!(https["targetTags"], json!(["kubemark-shape-master"]));
    assert!(
        https["description"]
            .as_str()
            .unwrap()
            .contains("kubemark.io/cluster=shape")
    );
    let ssh = fake.get("firewalls", "kubemark-shape-master-ssh").unwrap();
    assert_eq!(ssh["sourceRanges"], json!(["127.0.0.1/32"]));
    let disk = fake.get("disks", "kubemark-shape-master-pd").unwrap();
    assert!(
        disk["type"]
            .as_str()
            .unwrap()
            .ends_with("/diskTypes/pd-ssd")
    );

    // The registry: a labelled Docker repository and an OAuth token to push with.
    let registry = p.ensure_registry(&cluster).await.unwrap();
    assert_eq!(
        registry.repository,
        format!("us-central1-docker.pkg.dev/{PROJECT}/kubemark-shape-images/hollow-node")
    );
    let creds = registry.credentials.unwrap();
    assert_eq!(creds.username, "oauth2accesstoken");
    assert_eq!(creds.password, fake.token());
    assert!(
        !format!("{creds:?}").contains(fake.token()),
        "Debug hides the token"
    );
    assert_eq!(
        fake.get("repositories", "kubemark-shape-images").unwrap()["format"],
        "DOCKER"
    );

    let owned = p.list_owned(&cluster).await.unwrap();
    // master, 2 disks (the boot disk belongs to the instance), address, 2 rules, repository.
    assert_eq!(owned.len(), 7, "{owned:#?}");
    p.teardown(&cluster, Default::default()).await.unwrap();
    for kind in [
        "instances",
        "disks",
        "addresses",
        "firewalls",
        "repositories",
    ] {
        assert!(
            fake.names(kind).is_empty(),
            "{kind}: {:?}",
            fake.names(kind)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_resources_are_never_listed_or_deleted() {
    let fake = FakeGce::start().await;
    let p = provider(&fake);
    let cluster = ClusterName::new("mine").unwrap();
    fake.insert_foreign("disks", "data", json!({ "team": "db" }));
    fake.insert_foreign("addresses", "lb", json!({}));
    // A name that looks like ours without the description marker, and another cluster's disk.
    fake.insert_foreign("firewalls", "kubemark-mine-master-extra", json!(null));
    fake.insert_foreign(
        "disks",
        "kubemark-other-master-pd",
        json!({ "kubemark_cluster": "other", "kubemark_role": "master-disk", "kubemark_managed_by": "kubemark" }),
    );
    p.ensure_infrastructure(&cluster, &spec()).await.unwrap();
    let owned = p.list_owned(&cluster).await.unwrap();
    assert!(owned.iter().all(|r| r.cluster == cluster), "{owned:?}");
    // master, 2 disks, address, 2 rules, repository.
    assert_eq!(owned.len(), 7, "{owned:#?}");
    p.teardown(&cluster, Default::default()).await.unwrap();
    assert_eq!(fake.names("disks"), ["data", "kubemark-other-master-pd"]);
    assert_eq!(fake.names("addresses"), ["lb"]);
    assert_eq!(fake.names("firewalls"), ["kubemark-mine-master-extra"]);

    // A taken name is refused, not adopted.
    fake.insert_foreign("addresses", "kubemark-mine-master-ip", json!({}));
    let e = p.ensure_static_ip(&cluster).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_and_a_retried_insert_creates_once() {
    let fake = FakeGce::start().await;
    let p = provider(&fake);
    let cluster = ClusterName::new("retry").unwrap();
    fake.inject(http_fault("POST", "/disks", 2, 429, "rateLimitExceeded"));
    fake.inject(http_fault("GET", "/operations/", 1, 503, "backendError"));
    p.ensure_disk(&cluster, &DiskSpec::master(20))
        .await
        .unwrap();
    let inserts = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST") && r.contains("/disks"))
        .count();
    assert_eq!(inserts, 3, "two throttled, one accepted");
    assert_eq!(fake.names("disks"), ["kubemark-retry-master-pd"]);

    // An attached disk cannot go until its instance has; the delete waits that out.
    p.ensure_infrastructure(&cluster, &spec()).await.unwrap();
    fake.inject(http_fault(
        "DELETE",
        "/disks/",
        1,
        400,
        "resourceInUseByAnotherResource",
    ));
    p.teardown(&cluster, Default::default()).await.unwrap();
    assert!(fake.names("disks").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_line_with_googles_reason_and_no_token() {
    let fake = FakeGce::start().await;
    let p = provider(&fake);
    let cluster = ClusterName::new("errs").unwrap();
    let one_line = |e: &kubemark_core::provider::Error| {
        let s = e.to_string();
        assert_eq!(s.lines().count(), 1, "{s}");
        assert!(s.contains("gce"), "{s}");
        assert!(
            !s.contains(fake.token()) && !s.contains("fake-refresh-token"),
            "no secrets: {s}"
        );
        s
    };

    // Quota: the insert is accepted, its operation fails.
    fake.inject(Fault {
        method: "POST",
        path_contains: "/instances".into(),
        times: 1,
        failure: Failure::Operation {
            code: "QUOTA_EXCEEDED".into(),
            http_status: 403,
        },
    });
    let e = p
        .ensure_master(&cluster, &MasterSpec::default())
        .await
        .unwrap_err();
    let s = one_line(&e);
    assert!(
        s.contains("QUOTA_EXCEEDED") && s.contains("instances.insert"),
        "{s}"
    );

    fake.inject(http_fault("POST", "/addresses", 1, 403, "forbidden"));
    let e = p.ensure_static_ip(&cluster).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(one_line(&e).contains("reason=forbidden"));

    // A disk that does not exist, attached to the master: Compute's own 404.
    let e = p
        .ensure_master(
            &cluster,
            &MasterSpec {
                disks: vec![kubemark_core::provider::Disk {
                    role: kubemark_core::provider::Role::MasterDisk,
                    name: "missing".into(),
                    id: "1".into(),
                    size_gb: 1,
                }],
                ..MasterSpec::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(one_line(&e).contains("disks/missing"));

    // Credentials the token endpoint refuses.
    let mut bad = fake.credentials_json();
    bad["refresh_token"] = json!("revoked");
    let e = provider_at(&fake, &fake.url, bad)
        .list_owned(&cluster)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    one_line(&e);

    // Nothing listens: temporary, one line.
    let e = provider_at(&fake, "http://127.0.0.1:9", fake.credentials_json())
        .ensure_disk(&cluster, &DiskSpec::master(1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Temporary, "{e}");
    one_line(&e);
}
