//! Organization data: teams become `Group` entities and members become
//! `User` entities, as Backstage's GitHub org provider models them.
//!
//! - A team is `group:{namespace}/{slug}` with `spec.type: team`, its name
//!   as display name, its parent team as `spec.parent`, its child teams as
//!   `spec.children` and its direct members as `spec.members`; annotated
//!   `github.com/team-slug: {org}/{slug}`.
//! - A member is `user:default/{login}` with name, email and avatar in its
//!   profile and every team it is in as `spec.memberOf`; annotated
//!   `github.com/user-login: {login}`.
//! - With one organization, groups live in the `default` namespace; with
//!   several, each organization's groups live in a namespace named after it
//!   (so two orgs may both have a `platform` team) while users, one person
//!   across orgs, stay in `default`.
//!
//! Each team and user is a location of its own (`github-team:{host}/{org}/{slug}`,
//! `github-user:{host}/{login}`) whose content is the generated entity as
//! JSON, so the processor validates it like any descriptor and a change to
//! one team re-ships one location.

use super::client::{ApiError, Client, json};
use proto::LocationKey;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Team {
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parent: Option<ParentTeam>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParentTeam {
    pub slug: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub login: String,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDetail {
    pub login: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

/// One organization's teams (with direct members) and members.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrgData {
    pub org: String,
    pub teams: Vec<(Team, Vec<String>)>,
    pub members: Vec<Member>,
}

/// Reads an organization's teams, their members and the org's members.
pub async fn read_org(client: &Client, org: &str) -> Result<OrgData, ApiError> {
    let teams = client
        .get_all(
            &format!("/orgs/{org}/teams?per_page=100"),
            json::<Vec<Team>>,
        )
        .await?;
    let mut out = OrgData {
        org: org.into(),
        ..OrgData::default()
    };
    for t in teams {
        let members = client
            .get_all(
                &format!("/orgs/{org}/teams/{}/members?per_page=100", t.slug),
                json::<Vec<Member>>,
            )
            .await?;
        let mut logins: Vec<String> = members.into_iter().map(|m| m.login).collect();
        logins.sort();
        out.teams.push((t, logins));
    }
    let members = client
        .get_all(
            &format!("/orgs/{org}/members?per_page=100"),
            json::<Vec<Member>>,
        )
        .await?;
    out.members = members;
    out.teams.sort_by(|a, b| a.0.slug.cmp(&b.0.slug));
    Ok(out)
}

/// A user's profile (name, email), read through the cache.
pub async fn read_user(client: &Client, login: &str) -> Result<UserDetail, ApiError> {
    Ok(client
        .get(&format!("/users/{login}"), json::<UserDetail>)
        .await?
        .value)
}

pub fn team_location(host: &str, org: &str, slug: &str) -> LocationKey {
    LocationKey::new(format!("github-team:{host}/{org}/{slug}").to_lowercase())
}

pub fn user_location(host: &str, login: &str) -> LocationKey {
    LocationKey::new(format!("github-user:{host}/{login}").to_lowercase())
}

/// Prefixes of every org-data location of a source on `host`.
pub fn prefixes(host: &str) -> Vec<String> {
    vec![
        format!("github-team:{host}/").to_lowercase(),
        format!("github-user:{host}/").to_lowercase(),
    ]
}

/// The origin of org-data locations.
pub fn origin(host: &str, org: &str) -> LocationKey {
    LocationKey::new(format!("url:https://{host}/orgs/{org}"))
}

/// The generated entities of `orgs`, as (location, origin, JSON text).
pub fn entities(
    host: &str,
    orgs: &[OrgData],
    users: &BTreeMap<String, UserDetail>,
) -> Vec<(LocationKey, LocationKey, String)> {
    let multi = orgs.len() > 1;
    let ns = |org: &str| {
        if multi {
            org.to_lowercase()
        } else {
            "default".to_string()
        }
    };
    let mut out = Vec::new();
    let mut member_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut first_org: BTreeMap<String, String> = BTreeMap::new();
    for o in orgs {
        let namespace = ns(&o.org);
        let mut children: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (t, _) in &o.teams {
            if let Some(p) = &t.parent {
                children
                    .entry(p.slug.as_str())
                    .or_default()
                    .push(format!("group:{namespace}/{}", t.slug));
            }
        }
        for (t, members) in &o.teams {
            let mut spec = json!({
                "type": "team",
                "profile": { "displayName": t.name },
                "children": children.get(t.slug.as_str()).cloned().unwrap_or_default(),
                "members": members,
            });
            if let Some(p) = &t.parent {
                spec["parent"] = json!(format!("group:{namespace}/{}", p.slug));
            }
            let mut metadata = json!({
                "name": t.slug,
                "namespace": namespace,
                "annotations": {
                    "github.com/team-slug": format!("{}/{}", o.org, t.slug),
                },
            });
            if let Some(d) = t.description.as_ref().filter(|d| !d.is_empty()) {
                metadata["description"] = json!(d);
            }
            let entity = json!({
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Group",
                "metadata": metadata,
                "spec": spec,
            });
            for m in members {
                member_of
                    .entry(m.clone())
                    .or_default()
                    .insert(format!("group:{namespace}/{}", t.slug));
            }
            out.push((
                team_location(host, &o.org, &t.slug),
                origin(host, &o.org),
                serde_json::to_string_pretty(&entity).expect("json"),
            ));
        }
        for m in &o.members {
            member_of.entry(m.login.clone()).or_default();
            first_org
                .entry(m.login.clone())
                .or_insert_with(|| o.org.clone());
        }
    }
    for (login, groups) in member_of {
        let detail = users.get(&login);
        let mut profile = serde_json::Map::new();
        if let Some(n) = detail.and_then(|d| d.name.clone()) {
            profile.insert("displayName".into(), json!(n));
        }
        if let Some(e) = detail.and_then(|d| d.email.clone()) {
            profile.insert("email".into(), json!(e));
        }
        if let Some(a) = detail.and_then(|d| d.avatar_url.clone()) {
            profile.insert("picture".into(), json!(a));
        }
        let entity = json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "User",
            "metadata": {
                "name": login,
                "annotations": { "github.com/user-login": login },
            },
            "spec": {
                "profile": profile,
                "memberOf": groups.into_iter().collect::<Vec<_>>(),
            },
        });
        let org = first_org
            .get(&login)
            .cloned()
            .unwrap_or_else(|| orgs[0].org.clone());
        out.push((
            user_location(host, &login),
            origin(host, &org),
            serde_json::to_string_pretty(&entity).expect("json"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team(slug: &str, parent: Option<&str>) -> Team {
        Team {
            slug: slug.into(),
            name: slug.to_uppercase(),
            description: Some(format!("the {slug} team")),
            parent: parent.map(|p| ParentTeam { slug: p.into() }),
        }
    }

    fn text(t: &str) -> serde_json::Value {
        serde_json::from_str(t).unwrap()
    }

    #[test]
    fn teams_and_members_become_groups_and_users() {
        let org = OrgData {
            org: "acme".into(),
            teams: vec![
                (team("platform", None), vec!["ann".into()]),
                (
                    team("payments", Some("platform")),
                    vec!["ann".into(), "bob".into()],
                ),
            ],
            members: vec![
                Member {
                    login: "ann".into(),
                    avatar_url: None,
                },
                Member {
                    login: "bob".into(),
                    avatar_url: None,
                },
                Member {
                    login: "cy".into(),
                    avatar_url: None,
                },
            ],
        };
        let users = BTreeMap::from([(
            "ann".to_string(),
            UserDetail {
                login: "ann".into(),
                name: Some("Ann A".into()),
                email: Some("ann@acme.test".into()),
                avatar_url: Some("https://avatars/1".into()),
            },
        )]);
        let out = entities("github.com", std::slice::from_ref(&org), &users);
        let by: BTreeMap<String, serde_json::Value> = out
            .iter()
            .map(|(l, _, c)| (l.as_str().to_string(), text(c)))
            .collect();
        let pay = &by["github-team:github.com/acme/payments"];
        assert_eq!(pay["kind"], "Group");
        assert_eq!(pay["metadata"]["namespace"], "default");
        assert_eq!(pay["spec"]["parent"], "group:default/platform");
        assert_eq!(pay["spec"]["members"], json!(["ann", "bob"]));
        assert_eq!(
            pay["metadata"]["annotations"]["github.com/team-slug"],
            "acme/payments"
        );
        let plat = &by["github-team:github.com/acme/platform"];
        assert_eq!(plat["spec"]["children"], json!(["group:default/payments"]));
        let ann = &by["github-user:github.com/ann"];
        assert_eq!(
            ann["spec"]["memberOf"],
            json!(["group:default/payments", "group:default/platform"])
        );
        assert_eq!(ann["spec"]["profile"]["email"], "ann@acme.test");
        assert_eq!(
            ann["metadata"]["annotations"]["github.com/user-login"],
            "ann"
        );
        // A member in no team is still a user.
        assert_eq!(
            by["github-user:github.com/cy"]["spec"]["memberOf"],
            json!([])
        );

        // Two orgs: groups move to a namespace per org; users stay one.
        let mut other = org.clone();
        other.org = "Acme-Labs".into();
        let out = entities("github.com", &[org, other], &users);
        let by: BTreeMap<String, serde_json::Value> = out
            .iter()
            .map(|(l, _, c)| (l.as_str().to_string(), text(c)))
            .collect();
        assert_eq!(
            by["github-team:github.com/acme-labs/payments"]["metadata"]["namespace"],
            "acme-labs"
        );
        assert_eq!(
            by["github-user:github.com/bob"]["spec"]["memberOf"],
            json!(["group:acme-labs/payments", "group:acme/payments"])
        );
    }
}
