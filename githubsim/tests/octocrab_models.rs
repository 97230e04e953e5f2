//! The simulator's bodies deserialize into octocrab's models, which the
//! GitHub source uses: a check that the shapes carry every field a real
//! client requires.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use githubsim::{Protection, RepoSpec, Sim, TeamSpec, UserSpec};
use octocrab::models;
use serde::de::DeserializeOwned;

fn fetch<T: DeserializeOwned>(url: &str, headers: &[(&str, &str)], post: bool) -> T {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = if post {
        let mut req = agent.post(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send_empty().unwrap()
    } else {
        let mut req = agent.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.call().unwrap()
    };
    let body = resp.body_mut().read_to_string().unwrap();
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{url}: {e} into {}: {body}", std::any::type_name::<T>()))
}

#[test]
fn bodies_fit_octocrab_models() {
    let sim = Sim::new();
    let mut spec = RepoSpec::new("svc");
    spec.files.insert("docs/a.md".into(), "# a\n".into());
    spec.languages = vec![("Rust".into(), 10)];
    spec.alerts = vec!["high".into()];
    spec.protection = Protection::Protected {
        required_reviews: 1,
        enforce_admins: false,
        required_status_checks: vec!["ci".into()],
    };
    sim.add_repo("acme", spec);
    sim.put_member(
        "acme",
        UserSpec {
            login: "alice".into(),
            name: None,
            email: None,
        },
    );
    sim.put_team(
        "acme",
        TeamSpec {
            slug: "core".into(),
            name: "Core".into(),
            description: None,
            parent: None,
            members: vec!["alice".into()],
        },
    );
    sim.enable_app(5, 6, "acme");
    let server = sim.spawn();
    let u = |p: &str| server.url(p);

    let _: Vec<models::Repository> = fetch(&u("/orgs/acme/repos"), &[], false);
    let _: models::Repository = fetch(&u("/repos/acme/svc"), &[], false);
    let _: models::orgs::Organization = fetch(&u("/orgs/acme"), &[], false);
    let _: models::repos::Content = fetch(&u("/repos/acme/svc/contents/docs/a.md"), &[], false);
    let _: Vec<models::repos::Content> = fetch(&u("/repos/acme/svc/contents/"), &[], false);
    let _: models::git::GitTree =
        fetch(&u("/repos/acme/svc/git/trees/main?recursive=1"), &[], false);
    let _: BTreeMap<String, u64> = fetch(&u("/repos/acme/svc/languages"), &[], false);
    let _: models::repos::branches::BranchProtection =
        fetch(&u("/repos/acme/svc/branches/main/protection"), &[], false);
    let _: Vec<models::repos::dependabot::DependabotAlert> = fetch(
        &u("/repos/acme/svc/dependabot/alerts?state=open"),
        &[],
        false,
    );
    let _: Vec<models::teams::Team> = fetch(&u("/orgs/acme/teams"), &[], false);
    let _: models::teams::Team = fetch(&u("/orgs/acme/teams/core"), &[], false);
    let _: Vec<models::Author> = fetch(&u("/orgs/acme/teams/core/members"), &[], false);
    let _: Vec<models::Author> = fetch(&u("/orgs/acme/members"), &[], false);
    let _: models::UserProfile = fetch(&u("/users/alice"), &[], false);
    let _: models::RateLimit = fetch(&u("/rate_limit"), &[], false);

    let claims = URL_SAFE_NO_PAD.encode(br#"{"iss":5}"#);
    let jwt = format!("Bearer e30.{claims}.sig");
    let auth = [("Authorization", jwt.as_str())];
    let inst: models::Installation = fetch(&u("/orgs/acme/installation"), &auth, false);
    let token: models::InstallationToken =
        fetch(inst.access_tokens_url.as_deref().unwrap(), &auth, true);
    assert!(token.token.starts_with("ghs_"));
}
